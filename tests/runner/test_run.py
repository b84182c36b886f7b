"""The runner end to end against the in-process emulator: rows, attempts, failures, repeats, shards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

import evalkit
from evalkit.datasets import load_dataset
from evalkit.runner import RunOptions, attempts_df, parse_shard, results_df, run_suite
from evalkit.runner.merge import merge_runs
from evalkit.runner.schema import ATTEMPT_COLUMNS, RESULT_COLUMNS

EMU = {"seed": 0, "time_scale": 0.0}
TARGETS = ["emulator:sim-small", "emulator:sim-large"]


def small_suite(tmp_path: Path, n_per_type: int = 2) -> Path:
    """A few items of every task type of the smoke suite (judge items included)."""
    rows, seen = [], {}
    for line in Path(load_dataset("smoke").path).read_text().splitlines():
        row = json.loads(line)
        if seen.get(row["task_type"], 0) < n_per_type:
            seen[row["task_type"]] = seen.get(row["task_type"], 0) + 1
            rows.append(line)
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def run(tmp_path: Path, suite: Path, **kwargs) -> evalkit.runner.RunResult:
    kwargs.setdefault("options", RunOptions(concurrency=8))
    kwargs.setdefault("emulator", EMU)
    kwargs.setdefault("progress", False)
    return asyncio.run(run_suite(suite, kwargs.pop("targets", TARGETS), runs_dir=tmp_path / "runs",
                                 judge_spec="emulator:sim-large", **kwargs))


def test_one_graded_row_per_cell_with_its_attempts(tmp_path: Path) -> None:
    suite = small_suite(tmp_path)
    result = run(tmp_path, suite, options=RunOptions(concurrency=8, repeats=2))
    results, attempts = results_df(result.run_dir), attempts_df(result.run_dir)
    n_items = len(load_dataset(suite))
    assert results.height == n_items * 2 * 2 == result.totals.done
    assert list(results.columns) == list(RESULT_COLUMNS) and list(attempts.columns) == list(ATTEMPT_COLUMNS)
    assert results.select("item_id", "target", "repeat").is_duplicated().sum() == 0
    ok = results.filter(pl.col("status") == "ok")
    assert ok.height == results.height
    assert ok["score"].is_between(0, 1).all() and ok["passed"].is_not_null().all()
    assert ok["cost_usd"].is_not_null().all() and ok["tokens_exact"].all()
    assert attempts.height >= results.height and attempts["sent"].all()
    assert set(results["task_type"]) == set(load_dataset(suite).task_types)
    # repeats are independent samples: each asks with its own seed
    seeds = results.group_by("item_id", "target").agg(pl.col("seed").n_unique())
    assert (seeds["seed"] == 2).all()
    assert results.to_pandas().shape == results.shape


def test_manifest_says_what_was_run(tmp_path: Path) -> None:
    result = run(tmp_path, small_suite(tmp_path, 1))
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["ended_at"]
    assert manifest["targets"] == TARGETS and manifest["simulated_targets"] == ["openai:sim-small",
                                                                                 "openai:sim-large"]
    assert manifest["dataset"]["sha256"] == load_dataset(small_suite(tmp_path, 1)).sha256
    assert manifest["price_data_version"].startswith("genai-prices")
    assert not (result.run_dir / "log").exists(), "the log is compacted into Parquet at the end"
    assert list((result.run_dir / "results").glob("*.parquet"))


def test_failed_calls_are_rows_with_typed_errors_and_keys_stay_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.emulator import Emulator

    fake_key = "sk-test-RUNSECRET-7f3a9c1e5b2d8f4a6c0e"
    suite = small_suite(tmp_path, 1)
    with Emulator(seed=0, time_scale=0.0) as emu:
        monkeypatch.setenv("OPENAI_API_KEY", fake_key)
        monkeypatch.setenv("OPENAI_BASE_URL", emu.openai_base_url)
        emu.script("sim-small", ["500"] * 3)
        result = asyncio.run(run_suite(suite, ["openai:sim-small", "openai:sim-missing"],
                                       options=RunOptions(concurrency=1, retries=0), runs_dir=tmp_path / "runs",
                                       judge_spec="openai:sim-large", progress=False))
    results = results_df(result.run_dir)
    assert results.height == 2 * len(load_dataset(suite))
    missing = results.filter(pl.col("target") == "openai:sim-missing")
    assert (missing["status"] == "error").all() and (missing["error_kind"] == "not_found").all()
    assert missing["score"].is_null().all()
    assert (missing["cost_usd"] == 0).all(), "a refused call consumed nothing: it costs 0, it is not unpriced"
    small = results.filter(pl.col("target") == "openai:sim-small")
    assert small.filter(pl.col("status") == "error")["error_kind"].to_list() == ["server"] * 3
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert fake_key.encode() not in path.read_bytes(), f"the key leaked into {path}"


def test_unknown_emulator_model_is_a_config_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(evalkit.ConfigError, match="no model 'sim-nope'"):
        run(tmp_path, small_suite(tmp_path, 1), targets=["emulator:sim-nope"])
    assert not (tmp_path / "runs").exists()


def test_shards_partition_the_cells_and_merge(tmp_path: Path) -> None:
    suite = small_suite(tmp_path)
    full = results_df(run(tmp_path, suite, run_id="full").run_dir)
    parts = [run(tmp_path, suite, run_id=f"shard{k}",
                 options=RunOptions(concurrency=8, shard=parse_shard(f"{k}/3"))).run_dir for k in (1, 2, 3)]
    sizes = [results_df(p).height for p in parts]
    assert sum(sizes) == full.height and min(sizes) > 0
    merged = merge_runs(parts, tmp_path / "runs" / "merged").output
    together = results_df(merged)
    key = ["item_id", "target", "repeat"]
    assert together.select(key).sort(key).equals(full.select(key).sort(key))
    compare = ["item_id", "target", "repeat", "status", "output", "score"]
    assert together.select(compare).sort(key).equals(full.select(compare).sort(key))


def test_resume_completes_only_missing_cells(tmp_path: Path) -> None:
    suite = small_suite(tmp_path)
    first = run(tmp_path, suite, run_id="r", options=RunOptions(concurrency=4, shard=parse_shard("1/2")))
    before = results_df(first.run_dir).height
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    manifest["config"]["shard"] = "1/1"  # as if the first run had been interrupted half-way
    (first.run_dir / "manifest.json").write_text(json.dumps(manifest))
    again = asyncio.run(run_suite(suite, [], resume=first.run_dir, progress=False))
    assert again.totals.skipped == before and again.totals.done > 0
    results = results_df(first.run_dir)
    assert results.height == before + again.totals.done
    assert results.select("item_id", "target", "repeat").is_duplicated().sum() == 0


def test_regrade_grades_saved_answers_again_without_calling_models(tmp_path: Path) -> None:
    from evalkit.runner.regrade import regrade

    result = run(tmp_path, small_suite(tmp_path, 1), targets=["emulator:sim-small"])
    before = results_df(result.run_dir)
    for part in (result.run_dir / "results").glob("*.parquet"):  # as if the grader had been broken
        pl.read_parquet(part).with_columns(pl.lit(None, pl.Float64).alias("score"),
                                           pl.lit(None, pl.Boolean).alias("passed")).write_parquet(part)
    # No emulator runs now and no judge is given: regrading reads the saved answers and calls nothing.
    graded = asyncio.run(regrade(result.run_dir, judge=None)).graded
    after = results_df(result.run_dir)
    key = ["item_id", "target", "repeat"]
    both = before.join(after, on=key, suffix="_again")
    judged = both["grade_reason_again"].str.contains("judge")
    assert graded == (~judged).sum() > 0
    assert (both.filter(~judged)["score"] == both.filter(~judged)["score_again"]).all()
    assert both.filter(judged)["score_again"].is_null().all(), "judge items without a judge stay ungraded"
    assert after.select("output", "latency_ms", "cost_usd").equals(before.select("output", "latency_ms", "cost_usd"))


def test_progress_can_be_the_callers_own_callback(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    suite = small_suite(tmp_path, 1)
    result = run(tmp_path, suite, progress=lambda row, totals: seen.append((row["target"], totals.done, totals.total)))
    n_cells = len(load_dataset(suite)) * len(TARGETS)
    assert [done for _, done, _ in seen] == list(range(1, n_cells + 1))
    assert {total for _, _, total in seen} == {n_cells} and result.totals.done == n_cells
    assert {target for target, _, _ in seen} == {"openai:sim-small", "openai:sim-large"}


def test_notebook_progress_is_one_line_updated_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    import IPython.display

    from evalkit.runner.progress import NotebookProgress
    from evalkit.runner.run import RunTotals

    shown: list[str] = []

    class Handle:
        def update(self, text: IPython.display.Pretty) -> None:
            shown.append(text.data)

    monkeypatch.setattr(IPython.display, "display", lambda text, display_id: shown.append(text.data) or Handle())
    totals = RunTotals(total=4, errors=1, spend=Decimal("0.12345"), judge_spend=Decimal("0.5"), unpriced=2)
    with NotebookProgress("smoke", min_interval_s=0) as bar:
        for _ in range(4):
            totals.done += 1
            bar.update({}, totals)
    assert shown[0] == "smoke: starting" and len(shown) == 6
    assert shown[-1].startswith("smoke " + "█" * 30 + " 4/4 cells")
    assert shown[-1].endswith("1 errors · $0.1234 + judge $0.5000 (+2 unpriced)")


def test_a_refused_resume_still_closes_every_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.providers._http import HTTPProvider

    suite = small_suite(tmp_path, 1)
    first = run(tmp_path, suite, run_id="r")
    suite.write_text("\n".join(suite.read_text().splitlines()[:-1]) + "\n")  # the dataset changed since
    closed: list[str] = []
    aclose = HTTPProvider.aclose

    async def recorded(self: HTTPProvider) -> None:
        closed.append(self.name)
        await aclose(self)

    monkeypatch.setattr(HTTPProvider, "aclose", recorded)
    with pytest.raises(evalkit.ConfigError, match="dataset changed"):
        run(tmp_path, suite, resume=first.run_dir)
    assert sorted(closed) == ["openai:sim-large", "openai:sim-large", "openai:sim-small"]  # targets and judge
