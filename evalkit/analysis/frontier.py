"""Cost–quality frontiers and the router-sweep metrics of RouterBench and RouteLLM.

* :func:`pareto_frontier` — which (target, cost, quality) points no other point beats.
* :func:`aiq` — RouterBench's Average Improvement in Quality (Hu et al. 2024,
  "RouterBench: A Benchmark for Multi-LLM Routing System", §4): the area under
  the non-decreasing convex hull of a router's (cost, quality) points over a
  cost range, divided by the range::

      AIQ = 1 / (c_max - c_min) · ∫_{c_min}^{c_max} Q̃(c) dc

  Q̃ is the upper concave hull of the points — any point on a segment between
  two configurations is reachable by choosing between them at random per
  request — made non-decreasing (a larger budget can always be spent like a
  smaller one) and held flat after its highest point up to ``c_max``. Below
  the cheapest point nothing is affordable, so Q̃ counts as 0 there. The
  default range is [cheapest point, dearest point].
* :func:`apgr` and :func:`cpt` — RouteLLM (Ong et al. 2024, "RouteLLM: Learning
  to Route LLMs with Preference Data", §5): for a strong/weak router swept
  over thresholds, with x the share of calls sent to the strong model,
  ``PGR(x) = (q(x) - q_weak) / (q_strong - q_weak)``;
  ``APGR = ∫_0^1 PGR(x) dx`` (trapezoid rule over the sweep) and
  ``CPT(p)`` = the smallest strong-call share whose PGR reaches p (linear
  interpolation between sweep points).
* :func:`baseline_sweep` — the random router (its expectation) and the
  budget-limited oracle of RouteLLM's ``get_optimal_accuracy`` at given
  strong-call shares, from recorded per-item results of the two models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["aiq", "apgr", "baseline_sweep", "cpt", "pareto_frontier"]


def pareto_frontier(points: Any, cost: str = "cost_per_item", quality: str = "quality",
                    by: str | Sequence[str] | None = "task_type") -> Any:
    """``points`` with a boolean ``on_frontier`` column, computed within each group of ``by``.

    A point is dominated when another is no dearer and no worse and strictly
    better on one of the two; identical points are all on the frontier.
    Points with a null cost (unpriced) or quality get a null ``on_frontier``:
    where they sit is unknown. Works directly on :func:`summary_df` output.
    """
    import polars as pl

    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    known = pl.col(cost).is_not_null() & pl.col(quality).is_not_null()
    frame = points.with_row_index("_row")
    levels = (frame.filter(known).group_by([*keys, cost]).agg(pl.col(quality).max().alias("_best_here"))
              .sort([*keys, cost]))
    # Best quality at any strictly lower cost: cumulative max over the cost levels before this one.
    previous = pl.col("_best_here").cum_max().shift(1)
    levels = levels.with_columns((previous.over(keys) if keys else previous).alias("_best_cheaper"))
    flagged = frame.join(levels, on=[*keys, cost], how="left", nulls_equal=True).with_columns(
        pl.when(known).then((pl.col(quality) == pl.col("_best_here"))
                            & (pl.col("_best_cheaper").is_null()
                               | (pl.col(quality) > pl.col("_best_cheaper"))))
        .alias("on_frontier"))
    return flagged.sort("_row").drop("_row", "_best_here", "_best_cheaper")


def _upper_hull(costs: Any, qualities: Any) -> tuple[Any, Any]:
    """Vertices of the non-decreasing upper concave hull, sorted by cost."""
    import numpy as np

    order = np.lexsort((-qualities, costs))
    xs, ys = costs[order], qualities[order]
    hull: list[tuple[float, float]] = []
    for x, y in zip(xs.tolist(), ys.tolist()):
        if hull and x == hull[-1][0]:
            continue  # same cost, lower quality (sorted): never on the upper hull
        # Pop while the last vertex lies on or under the chord to the new point (Andrew's monotone chain).
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append((x, y))
    peak = max(range(len(hull)), key=lambda i: (hull[i][1], -i))
    kept = hull[:peak + 1]  # after the peak the hull falls; the non-decreasing hull stays flat
    return np.array([p[0] for p in kept]), np.array([p[1] for p in kept])


def aiq(costs: Sequence[float], qualities: Sequence[float],
        cost_range: tuple[float, float] | None = None) -> float:
    """RouterBench's AIQ of one router's (cost, quality) points; see the module docstring.

    A single point (or a zero-width range) gives that point's hull quality.
    """
    import numpy as np

    c, q = np.asarray(costs, float), np.asarray(qualities, float)
    if c.size == 0 or c.shape != q.shape:
        raise ValueError("aiq needs as many qualities as costs, at least one")
    hull_c, hull_q = _upper_hull(c, q)
    low, high = cost_range if cost_range is not None else (float(c.min()), float(c.max()))
    if high < low:
        raise ValueError(f"cost_range must be (low, high), got {cost_range}")

    if high == low:
        return 0.0 if low < hull_c[0] else float(np.interp(low, hull_c, hull_q))
    # Q̃ is 0 before the cheapest point and continuous piecewise-linear after it (np.interp
    # holds the last vertex flat), so the trapezoid rule over its vertices is exact.
    start = max(low, float(hull_c[0]))
    if start >= high:
        return 0.0
    inside = hull_c[(hull_c > start) & (hull_c < high)]
    xs = np.concatenate([[start], inside, [high]])
    return _trapezoid(np.interp(xs, hull_c, hull_q), xs) / (high - low)


def _trapezoid(ys: Any, xs: Any) -> float:
    """Trapezoid-rule area (numpy renamed ``trapz`` to ``trapezoid`` in 2.0; we support 1.26)."""
    return float(((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1])).sum() / 2)


def _sweep(shares: Sequence[float], qualities: Sequence[float], q_weak: float,
           q_strong: float) -> tuple[Any, Any]:
    """Sorted (share, PGR) arrays with the sweep's ends added: share 0 is the weak model, 1 the strong."""
    import numpy as np

    x, q = np.asarray(shares, float), np.asarray(qualities, float)
    if x.shape != q.shape or ((x < 0) | (x > 1)).any():
        raise ValueError("shares must be in [0, 1], one per quality")
    if q_strong == q_weak:
        raise ValueError("q_strong equals q_weak: no gap to recover")
    if not (x == 0).any():
        x, q = np.append(x, 0.0), np.append(q, q_weak)
    if not (x == 1).any():
        x, q = np.append(x, 1.0), np.append(q, q_strong)
    order = np.lexsort((q, x))
    return x[order], (q[order] - q_weak) / (q_strong - q_weak)


def apgr(shares: Sequence[float], qualities: Sequence[float], q_weak: float, q_strong: float) -> float:
    """RouteLLM's Average Performance Gap Recovered of a router sweep over strong-call shares.

    ``shares`` are the fractions of calls sent to the strong model (a cost
    normalised to [0, 1] between the weak-only and strong-only costs works
    the same way). Missing ends are added as (0, q_weak) and (1, q_strong),
    which is what a threshold router does at its extremes; with a sweep that
    spans [0, 1] this is exactly RouteLLM's ``(AUC - weak_AUC) / (strong_AUC - weak_AUC)``.
    """

    x, pgr = _sweep(shares, qualities, q_weak, q_strong)
    return _trapezoid(pgr, x)


def cpt(shares: Sequence[float], qualities: Sequence[float], q_weak: float, q_strong: float,
        pgr: float = 0.5) -> float | None:
    """RouteLLM's call-performance threshold: the least strong-call share reaching ``pgr`` (e.g. 0.5, 0.8).

    Walks the sweep from share 0 and interpolates linearly inside the first
    segment that crosses ``pgr``; None when the sweep never reaches it.
    """
    import numpy as np

    x, gap = _sweep(shares, qualities, q_weak, q_strong)
    reached = np.flatnonzero(gap >= pgr)
    if reached.size == 0:
        return None
    i = int(reached[0])
    if i == 0 or gap[i] == gap[i - 1]:
        return float(x[i])
    return float(x[i - 1] + (pgr - gap[i - 1]) * (x[i] - x[i - 1]) / (gap[i] - gap[i - 1]))


def baseline_sweep(results: Any, strong: str, weak: str, *, shares: Sequence[float] | None = None,
                   metric: str = "score", by: str | Sequence[str] | None = "task_type") -> Any:
    """Random-router and oracle quality at each strong-call share, per group of ``by``.

    Items are the (item_id, repeat) cells both targets have a ``metric`` for.
    ``random`` is the random router's expectation, ``(1 - s)·q_weak + s·q_strong``.
    ``oracle`` sends to the strong model the ``s·N`` items where it gains the most
    over the weak one (only items with a positive gain, fractional last item
    allowed) — RouteLLM's ``get_optimal_accuracy``; with enough budget it is
    "best of the two on every item".
    """
    import numpy as np
    import polars as pl

    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    grid = list(np.linspace(0, 1, 11)) if shares is None else list(shares)

    def side(target: str, name: str) -> Any:
        return (results.lazy().filter(pl.col("target") == target)
                .select(*keys, "item_id", "repeat", pl.col(metric).cast(pl.Float64).alias(name)))

    pairs = (side(strong, "s").join(side(weak, "w"), on=[*keys, "item_id", "repeat"], nulls_equal=True)
             .drop_nulls(["s", "w"]).with_columns((pl.col("s") - pl.col("w")).alias("gain")))
    aggs = [pl.len().alias("n"), pl.col("s").mean().alias("q_strong"), pl.col("w").mean().alias("q_weak"),
            pl.col("gain").filter(pl.col("gain") > 0).sort(descending=True).alias("gains")]
    # With no keys the whole table is one group: a constant key keeps `gains` one list, as group_by does.
    group_keys = keys or [pl.lit(0).alias("_all")]
    groups = pairs.group_by(group_keys).agg(aggs).collect()
    rows = []
    for group in groups.iter_rows(named=True):
        n, gains = group["n"], np.asarray(group["gains"], float)
        if n == 0:
            continue
        cumulative = np.concatenate([[0.0], np.cumsum(gains)])
        for share in grid:
            bonus = np.interp(share * n, np.arange(cumulative.size), cumulative)
            rows.append({**{k: group[k] for k in keys}, "share": float(share), "n": n,
                         "random": (1 - share) * group["q_weak"] + share * group["q_strong"],
                         "oracle": group["q_weak"] + bonus / n})
    schema = {**{k: groups.schema[k] for k in keys}, "share": pl.Float64, "n": pl.UInt32,
              "random": pl.Float64, "oracle": pl.Float64}
    out = pl.DataFrame(rows, schema=schema)
    return out.sort([*keys, "share"])
