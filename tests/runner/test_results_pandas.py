"""What a pandas user gets from ``results_df(run).to_pandas()``: float64 money and UTC datetimes; exact money on request."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import evalkit
from evalkit.runner import RunStore

from .test_results_reasked import attempt, row
from .test_run import TARGETS, run, small_suite


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pandas")
    before = time.time()
    result = run(tmp, small_suite(tmp, 1))
    assert result.totals.done == len(TARGETS) * len(evalkit.runner.results_df(result.run_dir)["item_id"].unique())
    (result.run_dir / "asked_between").write_text(f"{before} {time.time()}")
    return result.run_dir


def _window(run_dir: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = map(float, (run_dir / "asked_between").read_text().split())
    return pd.Timestamp(start, unit="s", tz="UTC"), pd.Timestamp(end, unit="s", tz="UTC")


def test_pandas_gets_float64_money_and_utc_datetimes(run_dir: Path) -> None:
    results = evalkit.results_df(run_dir).to_pandas()
    for column in ("cost_usd", "judge_cost_usd"):
        assert results[column].dtype == "float64", column
    assert results["cost_usd"].sum() > 0 and results["judge_cost_usd"].sum() > 0, "judge items were judged"
    start, end = _window(run_dir)
    for column in ("started_at", "ended_at"):
        dtype = results[column].dtype
        assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", (column, dtype)
        assert results[column].between(start, end).all(), column
    assert (results["ended_at"] >= results["started_at"]).all()
    # What a pandas user does with them: resample by time, total the money per target.
    per_target = results.groupby("target")["cost_usd"].sum()
    assert set(per_target.index) == set(results["target"]) and (per_target > 0).all()
    assert results.set_index("started_at").resample("1min")["cost_usd"].sum().sum() == pytest.approx(
        results["cost_usd"].sum())

    attempts = evalkit.attempts_df(run_dir).to_pandas()
    assert attempts["cost_usd"].dtype == "float64"
    assert isinstance(attempts["started_at"].dtype, pd.DatetimeTZDtype)
    assert attempts["started_at"].between(start, end).all()


def test_exact_money_is_the_decimal_the_run_stored(run_dir: Path) -> None:
    exact = evalkit.results_df(run_dir, exact_money=True)
    assert exact.schema["cost_usd"] == pl.Decimal(38, 12) and exact.schema["judge_cost_usd"] == pl.Decimal(38, 12)
    assert isinstance(exact["cost_usd"].sum(), Decimal)
    floats = evalkit.results_df(run_dir)
    assert float(exact["cost_usd"].sum()) == pytest.approx(floats["cost_usd"].sum(), rel=1e-12)
    as_pandas = exact.to_pandas()["cost_usd"]
    assert all(isinstance(v, Decimal) for v in as_pandas), "opted in: pandas holds the Decimals"
    assert evalkit.attempts_df(run_dir, exact_money=True).schema["cost_usd"] == pl.Decimal(38, 12)
    # Times are datetimes either way; the other columns do not depend on the option.
    assert exact.drop("cost_usd", "judge_cost_usd").equals(floats.drop("cost_usd", "judge_cost_usd"))


def test_unpriced_is_nan_not_zero_and_an_unrecorded_time_is_nat(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append(row("q1", [attempt(cost=None)]))  # the model is not in the price data
    store.append(row("q2", [{**attempt(), "started_at": 0.0}]))  # a custom target that sets no start time
    store.close()
    for _ in range(2):  # read from the log, then from Parquet
        results = evalkit.results_df(tmp_path).to_pandas().set_index("item_id")
        assert pd.isna(results.loc["q1", "cost_usd"]) and results.loc["q2", "cost_usd"] == 0.00125
        assert results["cost_usd"].sum(skipna=False) != results["cost_usd"].sum(skipna=False), "NaN, not a 0 sum"
        attempts = evalkit.attempts_df(tmp_path).to_pandas().set_index("item_id")
        assert attempts.loc["q1", "started_at"] == pd.Timestamp(datetime.fromtimestamp(1_780_000_000.0, timezone.utc))
        assert pd.isna(attempts.loc["q2", "started_at"]), "0.0 means not recorded: not 1970-01-01"
        store.compact()


def test_stored_types_are_unchanged_so_older_runs_read_the_same(run_dir: Path) -> None:
    """Parts keep money exact and times as epoch seconds (as every run before this wrote them)."""
    from evalkit.runner.schema import attempt_schema, result_schema

    part = next((run_dir / "results").glob("part-*.parquet"))
    assert pl.read_parquet_schema(part) == dict(result_schema())
    stored = pl.read_parquet(part)
    assert stored.schema["started_at"] == pl.Float64 and stored.schema["cost_usd"] == pl.Decimal(38, 12)
    shown = evalkit.results_df(run_dir)
    first = stored.sort("item_id", "target").row(0, named=True)
    same = shown.filter((pl.col("item_id") == first["item_id"]) & (pl.col("target") == first["target"]))
    assert abs(same["started_at"][0].timestamp() - first["started_at"]) < 1e-6
    attempts_part = next((run_dir / "attempts").glob("part-*.parquet"))
    assert pl.read_parquet_schema(attempts_part) == dict(attempt_schema())
