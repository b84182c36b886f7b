"""Counterfactual replay of routing policies: hand-made frames for every policy kind, and replay vs a live chain."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evalkit.analysis.replay import (
    CostAware,
    Fallback,
    Oracle,
    Random,
    ReplayReport,
    TaskTable,
    Threshold,
    Weighted,
    policy_from_config,
    replay_policy,
)


def _frame(rows: list[tuple], extra: dict[str, list] | None = None) -> pl.DataFrame:
    """Rows of (item_id, target, status, score, cost, latency_ms[, task_type[, repeat]])."""
    columns: dict[str, list] = {k: [] for k in ("item_id", "target", "status", "score", "cost_usd", "latency_ms",
                                                "task_type", "repeat")}
    for row in rows:
        item, target, status, score, cost, latency, *rest = row
        task = rest[0] if rest else "qa"
        repeat = rest[1] if len(rest) > 1 else 0
        for key, value in zip(columns, (item, target, status, score if status == "ok" else None,
                                        None if cost is None else Decimal(str(cost)), latency, task, repeat)):
            columns[key].append(value)
    frame = pl.DataFrame(columns, schema_overrides={"cost_usd": pl.Decimal(38, 12), "score": pl.Float64})
    return frame.with_columns(**{k: pl.Series(v) for k, v in (extra or {}).items()})


# a is cheap and flaky, b is dear and reliable
CHAIN_ROWS = [
    ("i1", "a", "error", None, 0.001, 100.0), ("i1", "b", "ok", 1.0, 0.010, 300.0),
    ("i2", "a", "ok", 0.0, 0.002, 50.0), ("i2", "b", "ok", 1.0, 0.020, 200.0),
    ("i3", "a", "error", None, 0.0, 10.0), ("i3", "b", "error", None, 0.0, 20.0),
    ("i4", "a", "ok", 1.0, 0.002, 60.0), ("i4", "b", "ok", 1.0, 0.010, 250.0),
]


def test_fallback_costs_and_latencies_add_up_over_failed_attempts() -> None:
    report = replay_policy(_frame(CHAIN_ROWS), Fallback(["a", "b"]), n_boot=200)
    row = report.policy
    assert row.n == 4
    assert row.success_rate == pytest.approx(3 / 4)  # i3 failed on both
    assert row.quality == pytest.approx((1.0 + 0.0 + 0.0 + 1.0) / 4)  # i1 from b, i2 and i4 from a
    # i1: a's failed call and b's; i2, i4: a only; i3: both failed calls
    assert row.cost_total_usd == pytest.approx(0.001 + 0.010 + 0.002 + 0.0 + 0.0 + 0.002)
    latencies = sorted([100 + 300, 50, 10 + 20, 60])
    assert row.latency_p50_ms == pytest.approx((latencies[1] + latencies[2]) / 2)
    assert row.quality_answered == pytest.approx(2 / 3)


def test_a_needed_unpriced_cost_makes_the_policy_cost_unknown_not_zero() -> None:
    rows = [r if r[:2] != ("i1", "a") else ("i1", "a", "error", None, None, 100.0) for r in CHAIN_ROWS]
    assert replay_policy(_frame(rows), Fallback(["a", "b"]), n_boot=50).policy.cost_total_usd is None
    # b first: b serves i1, so a's unknown cost there is never incurred (a is only reached on i3, priced)
    known = replay_policy(_frame(rows), Fallback(["b", "a"]), n_boot=50, baselines=())
    assert known.policy.cost_total_usd == pytest.approx(0.010 + 0.020 + 0.0 + 0.0 + 0.010)


def test_repeats_are_separate_requests() -> None:
    rows = [("i1", "a", "ok", 1.0, 0.001, 10.0, "qa", 0), ("i1", "a", "error", None, 0.0, 10.0, "qa", 1),
            ("i1", "b", "ok", 0.0, 0.01, 10.0, "qa", 0), ("i1", "b", "ok", 1.0, 0.01, 10.0, "qa", 1)]
    row = replay_policy(_frame(rows), Fallback(["a", "b"]), n_boot=50).policy
    assert row.n == 2
    assert row.quality == pytest.approx(1.0)  # repeat 0 from a, repeat 1 falls back to b
    assert row.cost_total_usd == pytest.approx(0.001 + 0.0 + 0.01)


def _random_results(n_items: int = 400, seed: int = 3) -> pl.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        for target, skill, price, fail in (("small", 0.5, 0.001, 0.1), ("mid", 0.7, 0.004, 0.05),
                                           ("large", 0.85, 0.02, 0.02)):
            failed = rng.random() < fail
            rows.append((f"i{i}", target, "error" if failed else "ok", float(rng.random() < skill),
                         0.0 if failed else price, float(rng.lognormal(5, 0.5)), ("math", "code")[i % 2]))
    return _frame(rows)


def test_oracle_is_at_least_as_good_as_the_best_target_and_picks_the_cheapest_right_answer() -> None:
    report = replay_policy(_random_results(), Fallback(["small", "mid", "large"]), n_boot=300)
    best, oracle = report.baseline("best"), report.baseline("oracle")
    assert best.policy == "large"
    assert oracle.quality >= best.quality
    assert oracle.success_rate >= best.success_rate
    assert oracle.quality_delta is not None and oracle.quality_delta <= 0  # policy - oracle
    hand = replay_policy(_frame(CHAIN_ROWS), Oracle(["a", "b"]), baselines=(), n_boot=50).policy
    # i1: only b right; i2: b right; i3: nothing answered (cheapest failed call, a at 0); i4: both right, a cheaper
    assert hand.quality == pytest.approx(3 / 4)
    assert hand.cost_total_usd == pytest.approx(0.010 + 0.020 + 0.0 + 0.002)


def test_random_with_probability_one_is_that_target() -> None:
    frame = _random_results()
    alone = replay_policy(frame, "mid", n_boot=100).policy
    random = replay_policy(frame, Random({"mid": 1.0, "large": 0.0}, seed=5), n_boot=100).policy
    for field in ("quality", "success_rate", "cost_total_usd", "latency_p95_ms", "quality_low"):
        assert getattr(random, field) == pytest.approx(getattr(alone, field))


def test_random_mix_is_seeded_and_lands_between_its_targets() -> None:
    frame = _random_results(1000)
    policy = Random({"small": 0.5, "large": 0.5}, seed=1)
    first, again = replay_policy(frame, policy, n_boot=50), replay_policy(frame, policy, n_boot=50)
    assert first.to_frame().equals(again.to_frame())
    small, large = replay_policy(frame, "small", baselines=(), n_boot=10), replay_policy(frame, "large", n_boot=10)
    expected = (small.policy.cost_per_request_usd + large.policy.cost_per_request_usd) / 2
    assert first.policy.cost_per_request_usd == pytest.approx(expected, rel=0.1)


def test_threshold_routes_high_scores_to_the_strong_target() -> None:
    frame = _frame(CHAIN_ROWS, extra={"router_score": [0.9, 0.9, 0.1, 0.1, 0.5, 0.5, 0.2, 0.2]})
    row = replay_policy(frame, Threshold("router_score", strong="b", weak="a", threshold=0.5), n_boot=50).policy
    # i1, i3 (score >= 0.5) to b; i2, i4 to a
    assert row.cost_total_usd == pytest.approx(0.010 + 0.002 + 0.0 + 0.002)
    assert row.quality == pytest.approx((1.0 + 0.0 + 0.0 + 1.0) / 4)
    assert row.success_rate == pytest.approx(3 / 4)

    def by_item(requests: pl.DataFrame) -> list[float]:
        return [1.0 if item in ("i2", "i4") else 0.0 for item in requests["item_id"]]

    called = replay_policy(_frame(CHAIN_ROWS), Threshold(by_item, "b", "a", 0.5), n_boot=50).policy
    assert called.cost_total_usd == pytest.approx(0.001 + 0.020 + 0.0 + 0.010)


def test_cost_aware_picks_the_cheapest_adequate_candidate_and_respects_the_budget() -> None:
    rows = [(f"i{i}", target, "ok", 1.0 if target == "b" else 0.0, price, 10.0)
            for i in range(10) for target, price in (("a", 0.001), ("b", 0.010))]
    frame = _frame(rows)
    candidates = {"a": "basic", "b": 0.9}
    unlimited = replay_policy(frame, CostAware(candidates, min_quality=0.8), n_boot=50).policy
    assert unlimited.cost_total_usd == pytest.approx(0.1) and unlimited.quality == 1.0
    cheap = replay_policy(frame, CostAware(candidates, min_quality=0.2), n_boot=50).policy
    assert cheap.cost_total_usd == pytest.approx(0.01)

    refuse = replay_policy(frame, CostAware(candidates, min_quality=0.8, budget_usd=0.0355,
                                            on_over_budget="refuse"), n_boot=50).policy
    assert refuse.success_rate == pytest.approx(0.3)  # three requests fit, the rest are refused
    assert refuse.cost_total_usd == pytest.approx(0.03)

    reroute = replay_policy(frame, CostAware(candidates, min_quality=0.8, budget_usd=0.0355,
                                             on_over_budget="reroute"), n_boot=50).policy
    # three to b (0.030); the 0.0055 left pays for five of a (0.001 each); the last two are refused
    assert reroute.cost_total_usd == pytest.approx(0.035)
    assert reroute.cost_total_usd <= 0.0355
    assert reroute.success_rate == pytest.approx(0.8)
    assert reroute.quality == pytest.approx(0.3)


def test_cost_aware_budget_needs_priced_results() -> None:
    rows = [r if r[:2] != ("i2", "b") else ("i2", "b", "ok", 1.0, None, 1.0) for r in CHAIN_ROWS]
    with pytest.raises(ValueError, match="priced"):
        replay_policy(_frame(rows), CostAware({"a": 0.5, "b": 0.9}, budget_usd=1.0), n_boot=10)


def test_task_table_dispatches_on_task_type() -> None:
    rows = [("m1", "a", "ok", 1.0, 0.001, 10.0, "math"), ("m1", "b", "ok", 0.0, 0.010, 10.0, "math"),
            ("c1", "a", "ok", 0.0, 0.001, 10.0, "code"), ("c1", "b", "ok", 1.0, 0.010, 10.0, "code"),
            ("q1", "a", "ok", 0.0, 0.001, 10.0, "qa"), ("q1", "b", "ok", 1.0, 0.010, 10.0, "qa")]
    row = replay_policy(_frame(rows), TaskTable({"math": "a", "code": "b"}, default="a"), n_boot=50).policy
    assert row.quality == pytest.approx(2 / 3)
    assert row.cost_total_usd == pytest.approx(0.001 + 0.010 + 0.001)


def test_expected_weighted_mix_averages_its_components() -> None:
    frame = _frame(CHAIN_ROWS)
    a = replay_policy(frame, "a", baselines=(), n_boot=10).policy
    b = replay_policy(frame, "b", baselines=(), n_boot=10).policy
    mix = replay_policy(frame, Weighted({"a": 3, "b": 1}), n_boot=50)
    assert mix.policy.quality == pytest.approx(0.75 * a.quality + 0.25 * b.quality)
    assert mix.policy.cost_total_usd == pytest.approx(0.75 * a.cost_total_usd + 0.25 * b.cost_total_usd)
    assert mix.policy.success_rate == pytest.approx(0.75 * a.success_rate + 0.25 * b.success_rate)
    assert any("expected" in note for note in mix.notes)
    with pytest.raises(TypeError, match="mode='sample'"):
        replay_policy(frame, Fallback([Weighted({"a": 1, "b": 1}), "b"]), n_boot=10)


def test_expected_mix_latency_percentiles_are_those_of_the_mixture() -> None:
    rows = [(f"i{i}", t, "ok", 1.0, 0.001, latency) for i in range(20) for t, latency in (("a", 10.0), ("b", 1000.0))]
    row = replay_policy(_frame(rows), Weighted({"a": 3, "b": 1}), baselines=(), n_boot=10).policy
    assert (row.latency_p50_ms, row.latency_p95_ms) == (10.0, 1000.0)  # not the 257.5 ms of an averaged request
    one_sided = TaskTable({"qa": Weighted({"a": 0, "b": 1})}, default="a")
    assert replay_policy(_frame(rows), one_sided, baselines=(), n_boot=10).policy.latency_p50_ms == 1000.0


def test_repeats_of_an_item_are_resampled_together() -> None:
    """Identical repeats add no information: the interval must not shrink as if they were new items."""
    frame = _random_results(300)
    repeated = pl.concat([frame.with_columns(repeat=pl.lit(r, pl.Int64)) for r in range(4)])
    once = replay_policy(frame, "mid", baselines=(), n_boot=400).policy
    four = replay_policy(repeated, "mid", baselines=(), n_boot=400).policy
    assert four.n == 4 * once.n and four.quality == pytest.approx(once.quality)
    width_once, width_four = once.quality_high - once.quality_low, four.quality_high - four.quality_low
    assert width_four == pytest.approx(width_once, rel=0.2)  # resampling requests would halve it


def test_large_runs_get_a_poisson_bootstrap_of_the_right_width() -> None:
    import numpy as np

    n = 60_000  # × 1000 resamples is above the index-resampling budget
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"item_id": [f"i{i}" for i in range(n)], "target": "a", "status": "ok",
                          "score": (rng.random(n) < 0.7).astype(float), "cost_usd": rng.lognormal(-7, 1, n)})
    report = replay_policy(frame, "a", baselines=(), n_boot=1000)
    assert report.bootstrap == "poisson"
    row = report.policy
    clt = 2 * 1.959964 * frame["score"].std() / math.sqrt(n)
    assert row.quality_high - row.quality_low == pytest.approx(clt, rel=0.1)
    assert row.quality_low < row.quality < row.quality_high
    cost_clt = 2 * 1.959964 * frame["cost_usd"].std() / math.sqrt(n)
    assert row.cost_high_usd - row.cost_low_usd == pytest.approx(cost_clt, rel=0.15)


def test_balanced_pair_with_failover_fails_only_when_both_fail() -> None:
    frame = _random_results(2000)
    balance = Weighted({"small": 1, "mid": 1}, mode="sample", failover=True, seed=2)
    row = replay_policy(frame, balance, n_boot=50).policy
    both_failed = frame.filter(pl.col("target").is_in(["small", "mid"])).group_by("item_id") \
        .agg((pl.col("status") == "error").all().alias("x"))["x"].mean()
    assert row.success_rate == pytest.approx(1 - both_failed)
    single = replay_policy(frame, Weighted({"small": 1, "mid": 1}, mode="sample", seed=2), n_boot=50).policy
    assert single.success_rate < row.success_rate


def test_policy_from_config_maps_a_task_tree_of_fallbacks() -> None:
    config = {
        "version": 1,
        "targets": {"strong": {"model": "anthropic:big"}, "fast": {"model": "openai:small"}},
        "router": {"type": "task",
                   "routes": {"code": {"type": "fallback", "targets": ["strong", "fast"],
                                       "retry": {"retries_per_target": 2}},
                              "qa": {"type": "balance", "targets": ["fast", "groq:llama"], "weights": [3, 1]}},
                   "default": {"type": "fallback", "targets": ["fast", "strong"]}},
    }
    policy = policy_from_config(config)
    assert isinstance(policy, TaskTable)
    routes = dict(policy.routes)
    assert routes["code"] == Fallback(("anthropic:big", "openai:small"))
    assert isinstance(routes["qa"], Weighted) and routes["qa"].failover and routes["qa"].mode == "sample"
    assert routes["qa"].weights == (("openai:small", 3.0), ("groq:llama", 1.0))
    assert policy.default == Fallback(("openai:small", "anthropic:big"))
    with pytest.raises(ValueError, match="hedge"):
        policy_from_config({"router": {"type": "hedge", "targets": ["openai:a", "openai:b"]}})


def test_policy_given_as_a_routing_yaml(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("version: 1\nrouter: {type: fallback, targets: ['a:x', 'b:y']}\n")
    frame = _frame(CHAIN_ROWS).with_columns(pl.col("target").replace({"a": "a:x", "b": "b:y"}))
    from_yaml = replay_policy(frame, str(path), n_boot=50).policy
    direct = replay_policy(frame, Fallback(["a:x", "b:y"]), n_boot=50).policy
    assert from_yaml.cost_total_usd == direct.cost_total_usd and from_yaml.quality == direct.quality


def test_first_attempts_replace_cells_when_attempts_are_given() -> None:
    # a's cell served after one retry; with attempts, a counts as failed (its first attempt did)
    results = _frame([("i1", "a", "ok", 1.0, 0.003, 300.0), ("i1", "b", "ok", 0.5, 0.010, 100.0)])
    attempts = pl.DataFrame({
        "item_id": ["i1", "i1", "i1"], "repeat": [0, 0, 0], "target": ["a", "a", "b"],
        "attempt": [0, 1, 0], "attempt_target": ["a", "a", "b"], "error_kind": ["server", None, None],
        "sent": [True, True, True], "cost_usd": [None, Decimal("0.003"), Decimal("0.010")],
        "latency_ms": [50.0, 250.0, 100.0]}, schema_overrides={"cost_usd": pl.Decimal(38, 12)})
    cells = replay_policy(results, Fallback(["a", "b"]), baselines=(), n_boot=10).policy
    first = replay_policy(results, Fallback(["a", "b"]), attempts=attempts, baselines=(), n_boot=10).policy
    assert cells.quality == 1.0 and cells.cost_total_usd == pytest.approx(0.003)
    assert first.quality == 0.5 and first.cost_total_usd == pytest.approx(0.010)
    assert first.latency_p50_ms == pytest.approx(150.0)


def test_report_frame_render_and_paired_deltas() -> None:
    frame = _random_results()
    report = replay_policy(frame, "large", n_boot=300)
    assert isinstance(report, ReplayReport)
    assert [r.role for r in report.rows] == ["policy", "best", "cheapest", "oracle"]
    best = report.baseline("best")
    # the policy is the best target itself: the paired difference is exactly 0 in every resample
    assert (best.quality_delta, best.quality_delta_low, best.quality_delta_high) == (0.0, 0.0, 0.0)
    cheapest = report.baseline("cheapest")
    assert cheapest.policy == "small"
    assert cheapest.cost_delta_low_usd > 0  # large is surely dearer
    table = report.to_frame()
    assert table.height == 4 and {"quality_low", "cost_delta_high_usd", "latency_p99_ms"} <= set(table.columns)
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(report.render())
    assert "oracle" in console.export_text() and "fallback" not in console.export_text()
    assert report.bootstrap == "multinomial"
    low, high = report.policy.quality_low, report.policy.quality_high
    assert low < report.policy.quality < high


def test_requests_missing_a_target_are_dropped_and_counted() -> None:
    rows = [*CHAIN_ROWS, ("i5", "a", "ok", 1.0, 0.001, 1.0)]
    report = replay_policy(_frame(rows), Fallback(["a", "b"]), n_boot=20)
    assert (report.n_requests, report.n_dropped) == (4, 1)
    with pytest.raises(ValueError, match="no results for target"):
        replay_policy(_frame(rows), Fallback(["a", "zzz"]), n_boot=20)


# ---------------------------------------------------------------------------------------------------------------
# Replay vs a live run of the same chain against the emulator.

P_FAIL_A, P_FAIL_B = 0.3, 0.2
REPEATS = 8
FLEET = f"""\
version: 1
models:
  - name: sim-a
    wires: [openai]
    price: {{input: 1.0, output: 2.0}}
    context_window: 100000
    latency: {{ttft_ms: 1, tokens_per_s: 100000}}
    output_tokens: 20
    skills: {{default: 0.6}}
    faults: {{"500": {P_FAIL_A}}}
  - name: sim-b
    wires: [openai]
    price: {{input: 5.0, output: 10.0}}
    context_window: 100000
    latency: {{ttft_ms: 1, tokens_per_s: 100000}}
    output_tokens: 20
    skills: {{default: 0.9}}
    faults: {{"500": {P_FAIL_B}}}
"""
LEAVES = {"a": ("openai:sim-a", "{input: 1.0, output: 2.0}"), "b": ("openai:sim-b", "{input: 5.0, output: 10.0}")}


def _routing_yaml(path: Path, chain: list[str]) -> str:
    """A routing config over the leaves in ``chain``, no retries (a single leaf is a one-step chain).

    No breakers: the faults are independent draws per attempt, which replay models; a breaker that
    opens on a run of them would skip a target for its cooldown, which replay does not model.
    """
    targets = "".join(f"  {name}: {{model: \"{LEAVES[name][0]}\", api_key_env: OPENAI_API_KEY, "
                      f"base_url_env: OPENAI_BASE_URL, prices: {LEAVES[name][1]}}}\n" for name in chain)
    path.write_text(f"version: 1\ntargets:\n{targets}"
                    f"router: {{type: fallback, targets: [{', '.join(chain)}], retry: {{retries_per_target: 0}}, "
                    f"breaker: off}}\n")
    return str(path)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Single-target runs of a and b, a live a → b chain run; then both again, the chain with the same draws."""
    from evalkit.emulator import Emulator
    from evalkit.runner import RunOptions, results_df, run_suite

    root = tmp_path_factory.mktemp("replay_live")
    (root / "fleet.yaml").write_text(FLEET)
    singles = [_routing_yaml(root / f"{n}.yaml", [n]) for n in ("a", "b")]
    chain = _routing_yaml(root / "chain.yaml", ["a", "b"])
    patch = pytest.MonkeyPatch()
    request.addfinalizer(patch.undo)

    def run(specs: list[str], repeats: int = REPEATS) -> pl.DataFrame:
        options = RunOptions(repeats=repeats, concurrency=8, no_judge=True)
        result = asyncio.run(run_suite("smoke", specs, options=options, runs_dir=root / "runs", progress=False))
        return results_df(result.run_dir).with_columns(pl.col("target").replace(rename))

    rename = {"config:a": "openai:sim-a", "config:b": "openai:sim-b"}
    with Emulator(root / "fleet.yaml", seed=7, time_scale=0.0) as emu:
        patch.setenv("OPENAI_BASE_URL", emu.openai_base_url)
        patch.setenv("OPENAI_API_KEY", "test-key")
        single = run(singles)
        # The emulator numbers the calls of one request to one model (0, 1, ...) and draws a fault per
        # number; repeats are the same request, so without a reset the chain's calls get fresh,
        # independent draws.
        live = run([chain])
        # With one repeat and a reset before each run, every call repeats the single run's draw.
        emu.reset()
        single_once = run(singles, repeats=1)
        emu.reset()
        same_draws = run([chain], repeats=1)
    return {"single": single, "live": live, "single_once": single_once, "same_draws": same_draws,
            "chain_yaml": chain}


def test_replayed_chain_matches_a_live_chain_within_sampling_noise(recorded: dict[str, Any]) -> None:
    """Replay of ``fallback(a → b)`` over single-target results vs the live chain on the emulator.

    a fails 30 % and b 20 % of attempts (HTTP 500, drawn independently per
    attempt), no retries, 41 items × 8 repeats. Live and replay then differ by
    sampling noise only. Stated tolerance: for success rate, mean quality and
    cost per request, |replay − live| ≤ 4·sqrt(se_replay² + se_live²), the
    standard error of a difference of two independent means; se is the binomial
    sd sqrt(p(1−p)/n) for success, and the 95 % bootstrap interval's width /
    (2·1.96) for quality and cost (≈ 1 false alarm in 16,000 runs per metric).
    Both success rates also lie within 4 binomial sd of the theory, 1 − 0.3·0.2.
    """
    from evalkit.analysis.stats import z_for

    replay = replay_policy(recorded["single"], recorded["chain_yaml"], n_boot=1000).policy
    live = replay_policy(recorded["live"], "config:chain", baselines=(), n_boot=1000).policy
    n = replay.n
    assert n == live.n == 41 * REPEATS
    assert replay.policy == "fallback(openai:sim-a → openai:sim-b)"
    theory = 1 - P_FAIL_A * P_FAIL_B
    z = z_for(0.95)

    def standard_error(row: Any, field: str) -> float:
        if field == "success_rate":
            return math.sqrt(row.success_rate * (1 - row.success_rate) / n)
        low, high = {"quality": (row.quality_low, row.quality_high),
                     "cost_per_request_usd": (row.cost_low_usd, row.cost_high_usd)}[field]
        return (high - low) / (2 * z)

    for row in (replay, live):
        assert abs(row.success_rate - theory) <= 4 * math.sqrt(theory * (1 - theory) / n)
        assert row.cost_total_usd is not None, "every call is priced"
    for field in ("success_rate", "quality", "cost_per_request_usd"):
        difference = getattr(replay, field) - getattr(live, field)
        tolerance = 4 * math.hypot(standard_error(replay, field), standard_error(live, field))
        assert abs(difference) <= tolerance, f"{field}: replay − live = {difference:.4g}, tolerance {tolerance:.4g}"


def test_replay_equals_the_live_chain_with_the_same_fault_draws(recorded: dict[str, Any]) -> None:
    """Given the single runs' fault draws, the live chain serves, scores and costs exactly what replay says."""
    single = recorded["single_once"]
    replay = replay_policy(single, recorded["chain_yaml"], baselines=(), n_boot=10).policy
    live = replay_policy(recorded["same_draws"], "config:chain", baselines=(), n_boot=10).policy
    assert 0 < live.success_rate < 1
    assert live.success_rate == replay.success_rate
    assert live.quality == pytest.approx(replay.quality, abs=1e-12)
    assert live.cost_total_usd == pytest.approx(replay.cost_total_usd, rel=1e-9)
    calls = recorded["same_draws"]["n_attempts"].sum()
    a_failed = (single.filter(pl.col("target") == "openai:sim-a")["status"] == "error").sum()
    assert calls == replay.n + a_failed  # one call per request, plus b after each of a's failures
