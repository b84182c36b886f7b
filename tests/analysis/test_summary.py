"""Summaries a user reads to pick a target: rates with intervals, cost per success, pass@k, paired tests."""

from __future__ import annotations

import asyncio
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evalkit.analysis.compare import paired_comparison
from evalkit.analysis.summary import BOOTSTRAP_MAX_N, pass_at_k, pass_hat_k, summary_df
from evalkit.runner.schema import result_schema


def results(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A results_df-shaped frame: the given columns, every other column null."""
    schema = result_schema()
    base = {"task_type": "qa", "repeat": 0, "status": "ok", "latency_ms": 100.0, "input_tokens": 10,
            "cached_input_tokens": 0, "cache_write_tokens": 0, "output_tokens": 5, "reasoning_tokens": 0}
    full = [{name: {**base, **row}.get(name) for name in schema} for row in rows]
    return pl.DataFrame(full, schema=schema)


def graded(target: str, outcomes: list[bool], cost: str | None = "0.01", **extra: Any) -> list[dict]:
    return [{"item_id": f"i{i}", "target": target, "score": float(ok), "passed": ok,
             "cost_usd": None if cost is None else Decimal(cost), **extra} for i, ok in enumerate(outcomes)]


def errors(target: str, n: int, kind: str = "timeout") -> list[dict]:
    return [{"item_id": f"i{i}", "target": target, "status": "error", "error_kind": kind,
             "cost_usd": Decimal(0)} for i in range(n)]


def row_of(summary: pl.DataFrame, target: str) -> dict[str, Any]:
    return summary.filter(pl.col("target") == target).row(0, named=True)


def test_rates_come_with_intervals_that_contain_them() -> None:
    frame = results(graded("a", [True] * 7 + [False] * 3) + graded("b", [True, False] * 20)
                    + errors("b", 4, "rate_limit") + errors("b", 1, "timeout"))
    summary = summary_df(frame)
    assert summary.height == 2 and summary["target"].to_list() == ["a", "b"]
    for row in summary.iter_rows(named=True):
        assert row["success_low"] <= row["success_rate"] <= row["success_high"]
        assert row["pass_low"] <= row["pass_rate"] <= row["pass_high"]
        assert row["quality_low"] <= row["quality"] <= row["quality_high"]
    b = row_of(summary, "b")
    assert (b["n"], b["successes"], b["graded"], b["passed"]) == (45, 40, 40, 20)
    assert b["success_rate"] == pytest.approx(40 / 45) and b["quality"] == pytest.approx(0.5)
    assert b["error_kinds"] == "rate_limit:4, timeout:1"
    assert row_of(summary, "a")["error_kinds"] == ""


def test_a_target_that_always_failed_has_no_quality_and_no_cost_per_success() -> None:
    summary = summary_df(results(graded("good", [True, True]) + errors("down", 5)))
    down = row_of(summary, "down")
    assert down["success_rate"] == 0 and down["successes"] == 0
    assert down["quality"] is None and down["quality_low"] is None and down["pass_rate"] is None
    assert down["cost_per_success"] is None  # never a division by zero
    assert down["cost_usd_total"] == Decimal(0) and down["cost_per_item"] == 0
    assert down["error_kinds"] == "timeout:5"


def test_unpriced_rows_make_cost_unknown_not_zero() -> None:
    rows = graded("a", [True, True, False]) + graded("b", [True, False], cost=None)
    rows[0]["cost_usd"] = None  # one unpriced row in a
    rows += graded("c", [True, True, False, False], cost="0.03")
    summary = summary_df(results(rows))
    for target, unpriced in (("a", 1), ("b", 2)):
        row = row_of(summary, target)
        assert row["unpriced"] == unpriced
        assert row["cost_usd_total"] is None and row["cost_per_item"] is None
        assert row["cost_per_success"] is None
    c = row_of(summary, "c")
    assert c["unpriced"] == 0 and c["cost_usd_total"] == Decimal("0.12")
    assert c["cost_per_item"] == pytest.approx(0.03) and c["cost_per_success"] == pytest.approx(0.06)


def test_latency_tokens_and_grouping() -> None:
    rows = [{**r, "latency_ms": float(10 * (i + 1)), "ttft_ms": float(i + 1)}
            for i, r in enumerate(graded("a", [True] * 100))]
    rows[0]["output_tokens"] = None  # one unknown count: the total is unknown too
    summary = summary_df(results(rows), by="target")
    a = summary.row(0, named=True)
    assert a["latency_p50_ms"] == pytest.approx(505) and a["latency_p99_ms"] == pytest.approx(990.1)
    assert a["ttft_p95_ms"] == pytest.approx(95.05)
    assert a["input_tokens_total"] == 1000 and a["input_tokens_per_item"] == 10
    assert a["output_tokens_total"] is None


def test_large_groups_use_the_clt_interval() -> None:
    n = BOOTSTRAP_MAX_N
    frame = results(graded("big", [i % 4 != 0 for i in range(n)]) + graded("small", [True, False] * 50))
    summary = summary_df(frame)
    big, small = row_of(summary, "big"), row_of(summary, "small")
    assert (big["quality_method"], small["quality_method"]) == ("clt", "bootstrap")
    half = 1.959964 * math.sqrt(0.75 * 0.25 * n / (n - 1)) / math.sqrt(n)
    assert big["quality_low"] == pytest.approx(0.75 - half, abs=1e-6)
    # the bootstrap of a 50 % rate over 100 items: about ±0.098
    assert small["quality_low"] == pytest.approx(0.402, abs=0.02)
    assert small["quality_high"] == pytest.approx(0.598, abs=0.02)


def test_pass_at_k_and_pass_hat_k_match_a_hand_computation() -> None:
    # item x: 5 repeats, 2 passed; item y: 5 repeats, none passed; item z: 1 repeat (too few for k=2)
    outcomes = {"x": [True, True, False, False, False], "y": [False] * 5, "z": [True]}
    rows = [{"item_id": item, "target": "t", "repeat": r, "score": float(ok), "passed": ok}
            for item, seq in outcomes.items() for r, ok in enumerate(seq)]
    rows[-2]["passed"], rows[-2]["status"], rows[-2]["score"] = None, "error", None  # an error is a fail
    frame = results(rows)
    at2 = pass_at_k(frame, 2).row(0, named=True)
    # x: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7; y: 0
    assert at2["items"] == 2 and at2["pass_at_k"] == pytest.approx((0.7 + 0) / 2)
    hat2 = pass_hat_k(frame, 2).row(0, named=True)
    # x: C(2,2)/C(5,2) = 0.1; y: 0
    assert hat2["pass_hat_k"] == pytest.approx(0.05)
    assert pass_at_k(frame, 1).row(0, named=True)["pass_at_k"] == pytest.approx((2 / 5 + 0 + 1) / 3)
    with pytest.raises(ValueError):
        pass_at_k(frame, 0)


def test_paired_comparison_of_identical_targets_finds_nothing() -> None:
    outcomes = [i % 3 != 0 for i in range(60)]
    frame = results(graded("a", outcomes) + graded("b", outcomes))
    for metric in ("passed", "score"):
        row = paired_comparison(frame, "a", "b", metric=metric).row(0, named=True)
        assert row["n_pairs"] == 60 and row["p_value"] == 1.0
        assert row["diff"] == 0 and row["diff_low"] == 0 and row["diff_high"] == 0


def test_paired_comparison_detects_a_clearly_better_target() -> None:
    strong = [i % 10 != 0 for i in range(80)]
    weak = [i % 2 == 0 for i in range(80)]
    rows = graded("strong", strong) + graded("weak", weak)
    rows.append({"item_id": "only-strong", "target": "strong", "score": 1.0, "passed": True})
    rows.append({"item_id": "weak-failed", "target": "strong", "score": 1.0, "passed": True})
    rows.append({"item_id": "weak-failed", "target": "weak", "status": "error", "error_kind": "timeout"})
    frame = results(rows)
    binary = paired_comparison(frame, "strong", "weak", metric="passed", by=None).row(0, named=True)
    # unpaired and ungraded items are left out
    assert binary["test"] == "mcnemar_exact" and binary["n_pairs"] == 80
    # 40 items only the strong target passed, 8 only the weak one: binomial p ≈ 3e-6
    assert (binary["a_better"], binary["b_better"]) == (40, 8)
    assert binary["p_value"] < 1e-4 and binary["diff"] == pytest.approx(0.4)
    assert binary["diff_low"] < 0.4 < binary["diff_high"] and binary["diff_low"] > 0.2
    scores = paired_comparison(frame, "strong", "weak", metric="score", by=None).row(0, named=True)
    assert scores["test"] == "paired_bootstrap" and scores["p_value"] < 0.001
    flipped = paired_comparison(frame, "weak", "strong", metric="passed").row(0, named=True)
    assert flipped["task_type"] == "qa" and flipped["diff"] == pytest.approx(-0.4)
    with pytest.raises(ValueError):
        paired_comparison(frame, "strong", "weak", metric="latency_ms")


def test_summary_of_a_real_emulator_run_with_repeats(tmp_path: Path) -> None:
    from evalkit.datasets import load_dataset
    from evalkit.runner import RunOptions, results_df, run_suite

    rows, seen = [], {}
    for line in Path(load_dataset("smoke").path).read_text().splitlines():
        task = json.loads(line)["task_type"]
        if seen.get(task, 0) < 2:
            seen[task] = seen.get(task, 0) + 1
            rows.append(line)
    suite = tmp_path / "suite.jsonl"
    suite.write_text("\n".join(rows) + "\n")
    targets = ["emulator:sim-small", "emulator:sim-large"]
    run = asyncio.run(run_suite(suite, targets, runs_dir=tmp_path / "runs", judge_spec="emulator:sim-large",
                                emulator={"seed": 0, "time_scale": 0.0}, progress=False,
                                options=RunOptions(concurrency=8, repeats=3)))
    frame = results_df(run.run_dir)
    summary = summary_df(frame)
    assert summary.height == len(seen) * 2 and (summary["n"] == 6).all()
    assert summary["cost_per_item"].is_not_null().all() and (summary["unpriced"] == 0).all()
    at1 = pass_at_k(frame, 1).join(summary, on=["task_type", "target"])
    # pass@1 over repeats is the pass rate when nothing errored
    assert at1["pass_at_k"].to_list() == pytest.approx((at1["passed"] / at1["n"]).to_list())
    at3 = pass_at_k(frame, 3)
    assert (at3["pass_at_k"] >= at1["pass_at_k"] - 1e-12).all()


def test_intervals_do_not_depend_on_row_order() -> None:
    rows = graded("a", [i % 3 == 0 for i in range(30)]) + graded("b", [i % 5 != 0 for i in range(30)])
    for i, row in enumerate(rows):
        row["score"] = [0.0, 0.25, 0.5, 1.0][i % 4] if row["passed"] else 0.0
    frame = results(rows)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=7)
    assert summary_df(frame).equals(summary_df(shuffled))
    assert paired_comparison(frame, "a", "b", metric="score").equals(
        paired_comparison(shuffled, "a", "b", metric="score"))
