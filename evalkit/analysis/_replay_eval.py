"""Compile a policy into polars expressions over the wide frame, and evaluate them.

Every deterministic policy becomes an :class:`Outcome`: four expressions giving,
per request, whether it was served, its quality (0 when failed), what it cost
(null when a needed cost is unpriced: ``+`` propagates nulls, a horizontal sum
would drop them) and how long it took. Chains are vectorised: a step is
*reached* when every earlier step failed, and the outcome adds up the reached
steps. Random draws come from numpy (seeded) as extra columns of the frame.

An expected-value :class:`~._replay_policies.Weighted` mix becomes a
:class:`Mixture` instead: weighted components, evaluated as several rows per
request that the report averages with their weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from ._replay_policies import CostAware, Fallback, Oracle, PolicyLike, Random, TaskTable, Threshold, Weighted

__all__ = ["Context", "Mixture", "Outcome", "compile_policy", "evaluate"]


@dataclass(frozen=True)
class Outcome:
    """Per-request expressions: served (Boolean), quality, cost (null = unpriced), latency (ms)."""

    ok: Any
    score: Any
    cost: Any
    latency: Any


@dataclass(frozen=True)
class Mixture:
    """Weighted components; ``mask`` (or None: every request) says where a component applies."""

    components: tuple[tuple[float, Any, Outcome], ...]


class Context:
    """The wide frame's columns, per-target means and the seeded draws the policies add."""

    def __init__(self, wide: Any, targets: Sequence[str], seed_salt: int = 0) -> None:
        import polars as pl

        self.wide, self.index = wide, {t: i for i, t in enumerate(targets)}
        self.extra: dict[str, Any] = {}
        self.salt, self._draws = seed_salt, 0
        means = wide.select(*[pl.col(f"score{i}").mean().alias(f"q{i}") for i in range(len(targets))],
                            *[pl.col(f"cost{i}").mean().alias(f"c{i}") for i in range(len(targets))],
                            *[pl.col(f"cost{i}").null_count().alias(f"u{i}") for i in range(len(targets))]).row(0)
        k = len(targets)
        self.quality = {t: means[i] for t, i in self.index.items()}
        # A target with any unpriced row has no mean cost (unknown is not 0).
        self.cost = {t: (means[k + i] if means[2 * k + i] == 0 else None) for t, i in self.index.items()}

    def leaf(self, target: str) -> Outcome:
        import polars as pl

        i = self.index[target]
        return Outcome(pl.col(f"ok{i}"), pl.col(f"score{i}"), pl.col(f"cost{i}"), pl.col(f"lat{i}"))

    def uniforms(self, seed: int, k: int) -> list[Any]:
        """``k`` columns of seeded uniform draws, one per request; a fresh stream per call."""
        import numpy as np
        import polars as pl

        self._draws += 1
        draws = np.random.default_rng([seed, self.salt, self._draws]).random((self.wide.height, k))
        names = [f"_u{self._draws}_{j}" for j in range(k)]
        for j, name in enumerate(names):
            self.extra[name] = pl.Series(name, draws[:, j])
        return [pl.col(name) for name in names]


def _refused() -> Outcome:
    import polars as pl

    return Outcome(pl.lit(False), pl.lit(0.0), pl.lit(0.0), pl.lit(0.0))


def _add(values: list[Any]) -> Any:
    return reduce(lambda a, b: a + b, values)


def steps_outcome(steps: Sequence[tuple[Any, Outcome]]) -> Outcome:
    """The outcome of trying ``steps`` (reached mask, outcome) where at most one reached step serves."""
    import polars as pl

    served = [reached & o.ok for reached, o in steps]
    return Outcome(
        ok=pl.any_horizontal(served),
        score=_add([pl.when(s).then(o.score).otherwise(0.0) for s, (_, o) in zip(served, steps)]),
        cost=_add([pl.when(r).then(o.cost).otherwise(0.0) for r, o in steps]),
        latency=_add([pl.when(r).then(o.latency).otherwise(0.0) for r, o in steps]),
    )


def _select(choices: Sequence[tuple[Any, Outcome]], otherwise: Outcome) -> Outcome:
    """The outcome of the first choice whose mask holds (when/then over all four fields)."""
    import polars as pl

    if not choices:
        return otherwise

    def field(name: str) -> Any:
        expr = pl
        for mask, o in choices:
            expr = expr.when(mask).then(getattr(o, name))
        return expr.otherwise(getattr(otherwise, name))

    return Outcome(*(field(name) for name in ("ok", "score", "cost", "latency")))


def compile_policy(policy: PolicyLike, ctx: Context, active: Any = None) -> Outcome | Mixture:
    """``policy`` as expressions; ``active`` masks the requests that reach it (budgets count only those)."""
    import polars as pl

    active = pl.lit(True) if active is None else active
    if isinstance(policy, str):
        return ctx.leaf(policy)
    compile_one = _COMPILERS.get(type(policy))
    if compile_one is None:
        raise TypeError(f"not a replayable policy: {policy!r}")
    return compile_one(policy, ctx, active)


def _deterministic(policy: PolicyLike, ctx: Context, active: Any, where: str) -> Outcome:
    compiled = compile_policy(policy, ctx, active)
    if isinstance(compiled, Mixture):
        raise TypeError(f"{where}: an expected-value Weighted mix cannot sit inside another policy's choice; "
                         "use Weighted(..., mode='sample')")
    return compiled


def _fallback(policy: Fallback, ctx: Context, active: Any) -> Outcome:
    import polars as pl

    steps, reached = [], pl.lit(True)
    for i, step in enumerate(policy.chain):
        outcome = _deterministic(step, ctx, active & reached, f"Fallback.chain[{i}]")
        steps.append((reached, outcome))
        reached = reached & ~outcome.ok
    return steps_outcome(steps)


def _task_table(policy: TaskTable, ctx: Context, active: Any) -> Outcome | Mixture:
    import polars as pl

    task = pl.col("task_type")
    routes = [(task == name, route) for name, route in policy.routes]
    default_mask = ~task.is_in([name for name, _ in policy.routes]) if routes else pl.lit(True)
    compiled = [(mask, compile_policy(route, ctx, active & mask)) for mask, route in
                [*routes, (default_mask, policy.default)]]
    if not any(isinstance(c, Mixture) for _, c in compiled):
        return _select(compiled[:-1], compiled[-1][1])
    components = []
    for mask, c in compiled:
        parts = c.components if isinstance(c, Mixture) else ((1.0, None, c),)
        components += [(w, mask if sub is None else mask & sub, o) for w, sub, o in parts]
    return Mixture(tuple(components))


def _weighted(policy: Weighted, ctx: Context, active: Any) -> Outcome | Mixture:
    total = sum(w for _, w in policy.weights)
    if policy.mode == "expected":
        components = []
        for target, weight in policy.weights:
            c = compile_policy(target, ctx, active)
            parts = c.components if isinstance(c, Mixture) else ((1.0, None, c),)
            components += [(weight / total * w, mask, o) for w, mask, o in parts if weight > 0]
        return Mixture(tuple(components))
    if not policy.failover:
        return _draw_one(policy.weights, policy.seed, ctx, active, "Weighted")
    return _balance(policy, ctx, active)


def _draw_one(weights: Sequence[tuple[PolicyLike, float]], seed: int, ctx: Context, active: Any,
              where: str) -> Outcome:
    (u,) = ctx.uniforms(seed, 1)
    total, edge, choices = sum(w for _, w in weights), 0.0, []
    for i, (target, weight) in enumerate(weights):
        edge += weight / total
        picked = u < edge if i < len(weights) - 1 else u >= 0.0  # the last takes rounding's leftovers
        choices.append((picked, _deterministic(target, ctx, active & picked, f"{where}[{i}]")))
    return _select(choices[:-1], choices[-1][1])


def _balance(policy: Weighted, ctx: Context, active: Any) -> Outcome:
    """Weighted order without replacement per request (exponential keys), then a chain over that order."""
    import polars as pl

    weights = [w for _, w in policy.weights]
    # key_j = -ln(u_j) / w_j: sorting by key is a weighted draw without replacement (Efraimidis–Spirakis).
    keys = [(-u.log()) / w if w > 0 else pl.lit(float("inf")) for u, w in
            zip(ctx.uniforms(policy.seed, len(weights)), weights)]
    limit = policy.max_attempts or len(weights)
    outcomes = [_deterministic(t, ctx, active, f"Weighted.weights[{j}]") for j, (t, _) in enumerate(policy.weights)]
    steps = []
    for j, outcome in enumerate(outcomes):
        others = [s for s in range(len(weights)) if s != j]
        before = [keys[s] < keys[j] for s in others]
        if not others:
            steps.append((pl.lit(weights[j] > 0), outcome))
            continue
        # Reached when every target drawn before it failed, and the attempt limit is not used up.
        earlier_failed = pl.all_horizontal([~b | ~outcomes[s].ok for s, b in zip(others, before)])
        within = pl.sum_horizontal([b.cast(pl.Int32) for b in before]) < limit
        steps.append((earlier_failed & within & pl.lit(weights[j] > 0), outcome))
    return steps_outcome(steps)


def _random(policy: Random, ctx: Context, active: Any) -> Outcome:
    return _draw_one(policy.probabilities, policy.seed, ctx, active, "Random")


def _oracle(policy: Oracle, ctx: Context, active: Any) -> Outcome:
    import polars as pl

    leaves = [ctx.leaf(t) for t in policy.targets]
    best = pl.max_horizontal([pl.when(o.ok).then(o.score) for o in leaves])
    any_ok = pl.any_horizontal([o.ok for o in leaves])
    # Among the best answers (or, when nothing answered, among all), the cheapest; unpriced ranks last.
    eligible = [pl.when(any_ok).then(o.ok & (o.score == best)).otherwise(True) for o in leaves]
    price = [o.cost.fill_null(float("inf")) for o in leaves]
    cheapest = pl.min_horizontal([pl.when(e).then(p) for e, p in zip(eligible, price)])
    chosen = [e & (p == cheapest) for e, p in zip(eligible, price)]
    return _select(list(zip(chosen, leaves)), leaves[-1])


def _threshold(policy: Threshold, ctx: Context, active: Any) -> Outcome:
    import polars as pl

    if isinstance(policy.score, str):
        score = pl.col(policy.score).cast(pl.Float64)
    else:
        name = f"_score{len(ctx.extra)}"
        values = policy.score(ctx.wide.select("item_id", "repeat", "task_type"))
        ctx.extra[name] = pl.Series(name, values, dtype=pl.Float64)
        if len(ctx.extra[name]) != ctx.wide.height:
            raise ValueError(f"Threshold.score returned {len(ctx.extra[name])} scores for {ctx.wide.height} requests")
        score = pl.col(name)
    strong = (score >= policy.threshold).fill_null(False)
    return _select([(strong, _deterministic(policy.strong, ctx, active & strong, "Threshold.strong"))],
                   _deterministic(policy.weak, ctx, active & ~strong, "Threshold.weak"))


def _cost_aware(policy: CostAware, ctx: Context, active: Any) -> Outcome:
    import polars as pl

    order = _cost_order(policy, ctx)
    if policy.budget_usd is None:
        return _fallback(Fallback(tuple(order) if policy.fallback_on_error else (order[0],)), ctx, active)
    unpriced = [t for t, _ in policy.candidates if ctx.cost[t] is None]
    if unpriced:
        raise ValueError(f"CostAware with a budget needs priced costs; {unpriced[0]} has unpriced results")
    primary = _fallback(Fallback(tuple(order) if policy.fallback_on_error else (order[0],)), ctx, active)
    budget = policy.budget_usd
    spent = pl.when(active).then(primary.cost).otherwise(0.0).cum_sum()
    first_phase = spent <= budget  # costs are >= 0, so this holds on a prefix of the requests
    if policy.on_over_budget == "refuse":
        return _select([(first_phase, primary)], _refused())
    cheapest = ctx.leaf(min((t for t, _ in policy.candidates), key=lambda t: ctx.cost[t]))
    spent_first = pl.when(first_phase).then(spent).otherwise(0.0).max()
    rerouted = pl.when(active & ~first_phase).then(cheapest.cost).otherwise(0.0).cum_sum()
    second_phase = ~first_phase & (spent_first + rerouted <= budget)
    return _select([(first_phase, primary), (second_phase, cheapest)], _refused())


def _cost_order(policy: CostAware, ctx: Context) -> list[str]:
    def price(target: str) -> float:
        cost = ctx.cost[target]
        return float("inf") if cost is None else cost  # unpriced: unknown, so never "cheapest"

    given = {t: i for i, (t, _) in enumerate(policy.candidates)}
    adequate = [(t, q) for t, q in policy.candidates if q >= policy.min_quality]
    order = sorted(adequate, key=lambda tq: (price(tq[0]), -tq[1], given[tq[0]]))
    if policy.allow_downgrade:
        below = [(t, q) for t, q in policy.candidates if q < policy.min_quality]
        order += sorted(below, key=lambda tq: (-tq[1], price(tq[0]), given[tq[0]]))
    if not order:
        raise ValueError(f"CostAware: no candidate has quality >= {policy.min_quality}")
    return [t for t, _ in order]


_COMPILERS: dict[type, Callable[[Any, Context, Any], Outcome | Mixture]] = {
    Fallback: _fallback, TaskTable: _task_table, Weighted: _weighted, Random: _random,
    Oracle: _oracle, Threshold: _threshold, CostAware: _cost_aware,
}


def evaluate(compiled: Outcome | Mixture, ctx: Context) -> Any:
    """Rows ``_req, _w, ok (0/1 Float64), score, cost, lat``: one per request, or per component of a mix."""
    import polars as pl

    frame = ctx.wide.lazy().with_columns(**ctx.extra) if ctx.extra else ctx.wide.lazy()
    parts = compiled.components if isinstance(compiled, Mixture) else ((1.0, None, compiled),)
    selected = []
    for weight, mask, o in parts:
        rows = frame if mask is None else frame.filter(mask)
        selected.append(rows.select(
            "_req", pl.lit(weight, pl.Float64).alias("_w"), o.ok.cast(pl.Float64).alias("ok"),
            o.score.cast(pl.Float64).alias("score"), o.cost.cast(pl.Float64).alias("cost"),
            o.latency.cast(pl.Float64).alias("lat")))
    return pl.concat(selected).collect() if len(selected) > 1 else selected[0].collect()
