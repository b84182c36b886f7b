"""Cost–quality frontiers and router-sweep metrics (RouterBench AIQ, RouteLLM APGR/CPT)."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from evalkit.analysis.frontier import aiq, apgr, baseline_sweep, cpt, pareto_frontier
from evalkit.analysis.summary import summary_df
from evalkit.runner.schema import result_schema


def points(rows: list[tuple[str, str, float | None, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["task_type", "target", "cost_per_item", "quality"], orient="row")


def frontier_targets(frame: pl.DataFrame, task_type: str = "qa") -> set[str]:
    marked = pareto_frontier(frame)
    return set(marked.filter((pl.col("task_type") == task_type) & pl.col("on_frontier"))["target"])


def test_dominated_points_are_off_the_frontier() -> None:
    frame = points([("qa", "cheap", 1.0, 0.60), ("qa", "mid", 2.0, 0.80), ("qa", "pricey", 5.0, 0.95),
                    ("qa", "worse-and-dearer", 3.0, 0.70), ("qa", "same-cost-worse", 2.0, 0.75),
                    ("qa", "same-quality-dearer", 4.0, 0.80)])
    assert frontier_targets(frame) == {"cheap", "mid", "pricey"}
    assert pareto_frontier(frame)["target"].to_list() == frame["target"].to_list()  # order kept


def test_ties_stay_on_the_frontier_and_task_types_are_separate() -> None:
    frame = points([("qa", "a", 1.0, 0.7), ("qa", "a-twin", 1.0, 0.7), ("qa", "b", 2.0, 0.6),
                    ("math", "b", 2.0, 0.6), ("math", "unpriced", None, 0.99)])
    marked = pareto_frontier(frame)
    assert frontier_targets(frame) == {"a", "a-twin"}
    math = dict(marked.filter(pl.col("task_type") == "math").select("target", "on_frontier").iter_rows())
    assert math == {"b": True, "unpriced": None}  # b is only dominated in qa; unpriced: unknown
    everywhere = pareto_frontier(frame, by=None)
    assert set(everywhere.filter(pl.col("on_frontier"))["target"]) == {"a", "a-twin"}


def test_frontier_of_a_summary() -> None:
    schema = result_schema()
    rows = []
    for target, cost, outcomes in (("small", "0.001", [True, False]), ("large", "0.01", [True, True]),
                                   ("wasteful", "0.02", [True, False])):
        for i, ok in enumerate(outcomes):
            rows.append({name: None for name in schema} | {
                "item_id": f"i{i}", "task_type": "qa", "target": target, "repeat": 0, "status": "ok",
                "score": float(ok), "passed": ok, "cost_usd": Decimal(cost), "latency_ms": 1.0})
    summary = summary_df(pl.DataFrame(rows, schema=schema))
    assert frontier_targets(summary) == {"small", "large"}


def test_aiq_of_simple_curves() -> None:
    assert aiq([3.0], [0.7]) == pytest.approx(0.7)  # a single point is its own quality
    assert aiq([1.0, 2.0], [0.5, 0.9]) == pytest.approx(0.7)  # a straight segment: its mean height
    # a point under the hull changes nothing; a dearer, worse point keeps the curve flat
    assert aiq([1.0, 2.0, 3.0], [0.5, 0.6, 0.9]) == pytest.approx(0.7)
    assert aiq([1.0, 2.0, 3.0], [0.5, 0.9, 0.6]) == pytest.approx((0.7 + 0.9) / 2)
    # below the cheapest configuration nothing is affordable
    assert aiq([1.0, 2.0], [0.5, 0.9], cost_range=(0.0, 2.0)) == pytest.approx(0.35)
    assert aiq([1.0, 2.0], [0.5, 0.9], cost_range=(2.0, 4.0)) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        aiq([], [])


def test_aiq_ranks_a_router_that_reaches_quality_sooner_higher() -> None:
    costs = [1.0, 2.0, 3.0, 4.0]
    eager = aiq(costs, [0.5, 0.85, 0.9, 0.92], cost_range=(1.0, 4.0))
    slow = aiq(costs, [0.5, 0.55, 0.6, 0.92], cost_range=(1.0, 4.0))
    assert eager > slow


def test_apgr_of_the_strong_and_weak_models_and_a_random_router() -> None:
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert apgr(shares, [0.8] * 5, q_weak=0.6, q_strong=0.8) == pytest.approx(1.0)
    assert apgr(shares, [0.6] * 5, q_weak=0.6, q_strong=0.8) == pytest.approx(0.0)
    random = [0.6 + 0.2 * s for s in shares]
    assert apgr(shares, random, q_weak=0.6, q_strong=0.8) == pytest.approx(0.5)
    # a sweep without its ends gets the weak model at 0 and the strong one at 1
    assert apgr([0.5], [0.7], q_weak=0.6, q_strong=0.8) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        apgr([0.5], [0.7], q_weak=0.6, q_strong=0.6)


def test_cpt_is_the_strong_share_needed_for_a_quality_level() -> None:
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    random = [0.6 + 0.2 * s for s in shares]
    assert cpt(shares, random, 0.6, 0.8, pgr=0.5) == pytest.approx(0.5)
    assert cpt(shares, random, 0.6, 0.8, pgr=0.8) == pytest.approx(0.8)
    good = [0.6, 0.75, 0.79, 0.8, 0.8]
    # PGR climbs 0 → 0.75 over shares [0, 0.25]: 0.5 is reached two thirds of the way
    assert cpt(shares, good, 0.6, 0.8, pgr=0.5) == pytest.approx(0.25 * 0.5 / 0.75)
    assert cpt(shares, [0.6, 0.62, 0.64, 0.66, 0.7], 0.6, 0.9, pgr=0.5) is None


def test_baseline_sweep_random_and_oracle() -> None:
    # strong right on s1..s4, weak right on s1, s2, s5: oracle gains on s3, s4 only
    strong = {"s1": 1.0, "s2": 1.0, "s3": 1.0, "s4": 1.0, "s5": 0.0}
    weak = {"s1": 1.0, "s2": 1.0, "s3": 0.0, "s4": 0.0, "s5": 1.0}
    schema = result_schema()
    rows = [{name: None for name in schema} | {"item_id": item, "task_type": "qa", "target": target,
                                                  "repeat": 0, "status": "ok", "score": score}
            for target, scores in (("S", strong), ("W", weak)) for item, score in scores.items()]
    frame = pl.DataFrame(rows, schema=schema)
    # by=None pools every task type: with one task type here, the same curve, one row per share.
    for sweep in (baseline_sweep(frame, "S", "W", shares=[0.0, 0.2, 0.5, 1.0]),
                  baseline_sweep(frame, "S", "W", shares=[0.0, 0.2, 0.5, 1.0], by=None)):
        assert sweep["random"].to_list() == pytest.approx([0.6, 0.64, 0.7, 0.8])
        # 0.2 × 5 = 1 strong call: +1 item; 0.5 × 5 = 2.5 calls but only 2 items gain
        assert sweep["oracle"].to_list() == pytest.approx([0.6, 0.8, 1.0, 1.0])


def test_baseline_sweep_with_no_gain_is_the_weak_model_throughout() -> None:
    schema = result_schema()
    rows = [{name: None for name in schema} | {"item_id": f"i{i}", "task_type": "qa", "target": target,
                                                  "repeat": 0, "status": "ok", "score": score}
            for target, score in (("S", 0.0), ("W", 1.0)) for i in range(2)]
    sweep = baseline_sweep(pl.DataFrame(rows, schema=schema), "S", "W", shares=[0.0, 1.0], by=None)
    assert sweep["oracle"].to_list() == [1.0, 1.0] and sweep["random"].to_list() == [1.0, 0.0]
