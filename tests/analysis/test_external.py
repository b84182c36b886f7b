"""Other people's result tables: the long-format loader, and the loaders of shared/data's published results.

The RouteLLM accuracies and means below are the data curator's recomputation (routellm/README.md), not
numbers RouteLLM published; the Martian/Unify scores are RouteLLM's own. Tolerances are half the last
printed digit.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from evalkit.analysis.external import (
    load_alpaca_eval,
    load_results_table,
    load_routellm,
    load_routellm_routers,
    load_wildbench,
)
from evalkit.analysis.frontier import apgr, baseline_sweep
from evalkit.analysis.leaderboards import mt_bench_scores
from evalkit.analysis.summary import summary_df
from evalkit.runner.schema import result_schema
from tests.shared import shared_path

GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


SHARED = shared_path("data", must_contain=("routellm", "alpaca_eval", "wildbench"))
needs_shared = pytest.mark.skipif(SHARED is None, reason="shared/data (RouteLLM, AlpacaEval, WildBench) not present")


def percent_by_target(results: pl.DataFrame, column: str = "quality") -> dict[str, float]:
    summary = summary_df(results, by="target")
    return {t: 100 * v for t, v in summary.select("target", column).iter_rows()}


def test_long_format_table_becomes_a_results_table(tmp_path: Path) -> None:
    path = tmp_path / "published.csv"
    path.write_text("question,kind,system,right,usd,ms\n"
                    "q1,math,m1,True,0.002,120\n"
                    "q2,math,m1,0,0.002,80\n"
                    "q1,math,m2,1,,95\n"
                    "q2,math,m2,,0.001,60\n")  # m2 has no result for q2
    frame = load_results_table(path, item="question", task_type="kind", model="system", correct="right",
                               cost="usd", latency_ms="ms")
    assert frame.schema == pl.Schema(result_schema())
    assert frame.height == 3 and set(frame["status"]) == {"ok"} and set(frame["repeat"]) == {0}
    m1 = frame.filter(pl.col("target") == "m1").sort("item_id")
    assert m1["passed"].to_list() == [True, False] and m1["score"].to_list() == [1.0, 0.0]
    assert m1["cost_usd"].to_list() == [Decimal("0.002"), Decimal("0.002")]
    summary = summary_df(frame)
    by_target = {r["target"]: r for r in summary.iter_rows(named=True)}
    assert by_target["m1"]["cost_per_success"] == pytest.approx(0.004)
    assert by_target["m2"]["cost_usd_total"] is None and by_target["m2"]["unpriced"] == 1
    assert by_target["m1"]["latency_p50_ms"] == pytest.approx(100)


def test_scores_only_and_frames_as_input() -> None:
    pandas_frame = pl.DataFrame({"item": [1, 2, 3], "model": ["x"] * 3, "grade": [0.2, 0.9, 0.7]}).to_pandas()
    frame = load_results_table(pandas_frame, task_type=None, score="grade")
    assert frame["task_type"].to_list() == ["all"] * 3 and frame["item_id"].to_list() == ["1", "2", "3"]
    assert frame["passed"].is_null().all()  # no pass/fail unless a threshold says so
    graded = load_results_table(pl.from_pandas(pandas_frame), task_type=None, score="grade",
                                pass_threshold=0.7)
    assert graded["passed"].to_list() == [False, True, True]
    with pytest.raises(ValueError):
        load_results_table(pandas_frame, task_type=None)


@needs_shared
@pytest.mark.parametrize(("benchmark", "decontaminate", "rows", "gpt4", "mixtral"), [
    ("mmlu", False, 14042, 80.58, 68.08),
    ("mmlu", True, 14037, 80.59, 68.09),
    ("gsm8k", False, 1319, 85.67, 63.84),
    ("gsm8k", True, 1307, 85.77, 63.73),
])
def test_routellm_accuracies_match_the_curators_numbers(benchmark: str, decontaminate: bool, rows: int,
                                                         gpt4: float, mixtral: float) -> None:
    results = load_routellm(SHARED, benchmark, decontaminate=decontaminate)
    assert results.group_by("target").len().sort("target").rows() == [(GPT4, rows), (MIXTRAL, rows)]
    for column in ("quality", "pass_rate"):
        accuracy = percent_by_target(results, column)
        assert accuracy[GPT4] == pytest.approx(gpt4, abs=0.005)
        assert accuracy[MIXTRAL] == pytest.approx(mixtral, abs=0.005)


@needs_shared
def test_routellm_mt_bench_means_match() -> None:
    results = load_routellm(SHARED, "mt_bench", decontaminate=False)
    assert results.height == 320 and results["score"].is_between(0.1, 1.0).all()
    mean = {t: v / 10 for t, v in percent_by_target(results).items()}  # score/10 back to the 1–10 scale
    assert mean[GPT4] == pytest.approx(9.228, abs=0.0005)
    assert mean[MIXTRAL] == pytest.approx(8.341, abs=0.0005)
    decontaminated = load_routellm(SHARED, "mt_bench")
    assert decontaminated.height == 288  # 8 questions × 2 turns × 2 models dropped
    by_category = load_routellm(SHARED, "mt_bench", decontaminate=False, by_subject=True)
    assert by_category["task_type"].n_unique() == 8


@needs_shared
def test_random_router_and_oracle_at_half_strong_calls() -> None:
    results = load_routellm(SHARED, "mmlu", decontaminate=False)
    sweep = baseline_sweep(results, GPT4, MIXTRAL, shares=[0.0, 0.5, 1.0])
    half = sweep.filter(pl.col("share") == 0.5).row(0, named=True)
    assert 100 * half["random"] == pytest.approx((80.58 + 68.08) / 2, abs=0.005)
    assert 100 * half["oracle"] == pytest.approx(85.86, abs=0.005)  # either model right
    # the random router recovers half the gap on average: APGR 0.5 by construction (a straight line)
    q_weak, q_strong = sweep["random"][0], sweep["random"][-1]
    assert apgr(sweep["share"], sweep["random"], q_weak, q_strong) == pytest.approx(0.5)
    gsm8k = baseline_sweep(load_routellm(SHARED, "gsm8k", decontaminate=False), GPT4, MIXTRAL, shares=[0.5])
    assert 100 * gsm8k["random"][0] == pytest.approx((85.67 + 63.84) / 2, abs=0.005)


@needs_shared
def test_alpaca_eval_preferences_become_scores() -> None:
    results = load_alpaca_eval(SHARED)
    assert results["target"].n_unique() == 58 and results["score"].is_between(0, 1).all()
    counts = results.group_by("target").len()
    assert counts["len"].max() == 805 and counts.filter(pl.col("len") < 805).height == 6  # 802–804 rows
    assert results.filter(pl.col("passed"))["score"].min() > 0.5  # passed = a discrete win
    # The leaderboard itself is checked column by column in test_leaderboards.py; these are the values
    # alpaca_eval/README.md cites, to the three decimals it prints.
    win_rate = percent_by_target(results)
    assert win_rate["gpt-3.5-turbo-1106"] == pytest.approx(9.178, abs=0.0005)
    assert win_rate["claude-2.1"] == pytest.approx(15.734, abs=0.0005)
    assert win_rate["gemma-7b-it"] == pytest.approx(6.937, abs=0.0005)


@needs_shared
def test_the_commercial_routers_mt_bench_scores_are_the_published_ones() -> None:
    """RouteLLM's benchmarks/README.md (quoted in routellm/README.md): Martian 8.3125, Unify 8.757862."""
    results = load_routellm_routers(SHARED)
    assert results.group_by("target").len().sort("target").rows() == [("martian", 160), ("unify", 159)]
    assert results["score"].is_between(0.1, 1.0).all()  # the -1 ("no rating") turn is gone
    scores = dict(mt_bench_scores(results).select("target", "mean_judgment").iter_rows())
    assert scores["martian"] == pytest.approx(8.3125, abs=0.00005)
    assert scores["unify"] == pytest.approx(8.757862, abs=0.0000005)
    by_category = load_routellm_routers(SHARED, by_subject=True)
    assert by_category["task_type"].n_unique() == 8


@needs_shared
def test_wildbench_judgments_become_scores() -> None:
    results = load_wildbench(SHARED)
    assert results["target"].n_unique() == 8 and set(results["task_type"]) == {"wildbench"}
    assert results.filter(pl.col("target") == "gemma-7b-it").height == 1024
    assert results.filter(pl.col("target") == "Phi-3-mini-128k-instruct").height == 1022  # blanks are no row
    assert ((results["score"] * 10).round(0) - results["score"] * 10).abs().max() < 1e-9  # judgments 1–10
    assert results["score"].is_between(0.1, 1.0).all() and results["passed"].is_null().all()
