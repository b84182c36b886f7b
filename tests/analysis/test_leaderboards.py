"""Publishers' leaderboard metrics computed from per-item results: small tables by hand, then the real ones."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from evalkit.analysis.external import load_alpaca_eval, load_results_table, load_wildbench
from evalkit.analysis.leaderboards import (
    alpaca_eval_win_rates,
    mt_bench_scores,
    read_alpaca_eval_leaderboard,
    read_wildbench_stats,
    wildbench_scores,
)
from tests.analysis.test_external import SHARED, needs_shared  # the shared/data these tests read


def scores(rows: dict[str, list[float | None]]) -> pl.DataFrame:
    frame = pl.DataFrame([{"item": f"i{i}", "model": model, "score": s}
                          for model, values in rows.items() for i, s in enumerate(values)],
                         schema={"item": pl.String, "model": pl.String, "score": pl.Float64})
    return load_results_table(frame, task_type=None, score="score")


def test_alpaca_eval_columns_by_hand() -> None:
    results = scores({"a": [1.0, 0.5, 0.0, 0.75], "b": [0.2, 0.2, None]})  # b has no grade for i2
    rows = {r["target"]: r for r in alpaca_eval_win_rates(results).iter_rows(named=True)}
    a, b = rows["a"], rows["b"]
    assert (a["n_total"], a["n_wins"], a["n_wins_base"], a["n_draws"]) == (4, 2, 1, 1)
    assert a["win_rate"] == pytest.approx(56.25)
    sd = math.sqrt(sum((x - 0.5625) ** 2 for x in (1.0, 0.5, 0.0, 0.75)) / 3)  # sample sd, n - 1
    assert a["standard_error"] == pytest.approx(100 * sd / 2)
    assert a["discrete_win_rate"] == pytest.approx(62.5)  # (2 wins + 1 draw / 2) / 4
    assert (b["n_total"], b["n_wins"], b["n_wins_base"], b["win_rate"], b["discrete_win_rate"]) == (
        2, 0, 2, pytest.approx(20.0), 0.0)
    overall = alpaca_eval_win_rates(results, by=None)
    assert overall.height == 1 and overall["n_total"].item() == 6


def test_wildbench_and_mt_bench_scores_by_hand() -> None:
    results = scores({"mid": [0.5, 0.5], "top": [1.0, 1.0], "mix": [0.5, 1.0, 0.1]})
    wb = dict(wildbench_scores(results).select("target", "WB_score").iter_rows())
    assert wb["mid"] == pytest.approx(0.0) and wb["top"] == pytest.approx(100.0)
    assert wb["mix"] == pytest.approx((16 / 3 - 5) * 20)  # judgments 5, 10, 1
    mt = dict(mt_bench_scores(results).select("target", "mean_judgment").iter_rows())
    assert mt == pytest.approx({"mid": 5.0, "top": 10.0, "mix": 16 / 3})


def test_leaderboards_are_read_as_printed(tmp_path: Path) -> None:
    (tmp_path / "alpaca_eval").mkdir()
    (tmp_path / "alpaca_eval" / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv").write_text(
        ",win_rate,n_wins\nm1,50.0,3\nm2,9.177999999999999,12\n")
    board = read_alpaca_eval_leaderboard(tmp_path)
    assert board.rows() == [("m1", "50.0", "3"), ("m2", "9.177999999999999", "12")]
    assert board.columns[0] == "target"
    (tmp_path / "wildbench").mkdir()
    (tmp_path / "wildbench" / "all_stat_wildbench.-1.json").write_text(
        '{"m": {"WB_score": 10.50, "Length": 1726, "AE2.0": "-"}}')
    assert read_wildbench_stats(tmp_path) == {"m": {"WB_score": "10.50", "Length": "1726", "AE2.0": "-"}}


@needs_shared
def test_every_alpaca_eval_leaderboard_row_is_reproduced() -> None:
    """57 models with per-instruction data and a leaderboard row: all six columns, at the data's precision."""
    ours = alpaca_eval_win_rates(load_alpaca_eval(SHARED))
    published = read_alpaca_eval_leaderboard(SHARED)
    joined = ours.join(published, on="target", suffix="_published")
    assert ours.height == 58 and joined.height == 57
    for row in joined.iter_rows(named=True):
        for column in ("n_wins", "n_wins_base", "n_draws", "n_total"):
            assert row[column] == int(row[f"{column}_published"]), (row["target"], column)
        # the shared preferences are rounded to 10 decimals: 100 × a mean of them moves by at most 5e-9
        for column in ("win_rate", "standard_error"):
            assert abs(row[column] - float(row[f"{column}_published"])) <= 5e-9, (row["target"], column)
        discrete = float(row["discrete_win_rate_published"])
        assert abs(row["discrete_win_rate"] - discrete) <= 4 * math.ulp(discrete), row["target"]


@needs_shared
def test_every_wildbench_score_is_reproduced() -> None:
    ours = dict(wildbench_scores(load_wildbench(SHARED)).select("target", "WB_score").iter_rows())
    stats = read_wildbench_stats(SHARED)
    checked = sorted(set(ours) & set(stats))
    assert len(ours) == 8 and len(checked) == 7  # Phi-3-mini-128k-instruct has no leaderboard row
    for model in checked:
        published = float(stats[model]["WB_score"])
        assert abs(ours[model] - published) <= 4 * math.ulp(published), model
    assert ours["gemma-7b-it"] == 10.17578125  # exact: a mean of 1,024 integer judgments
