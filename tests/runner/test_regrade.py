"""``evalkit regrade`` leaves a record in the manifest and says what it changed, per target."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from evalkit.runner import results_df
from evalkit.runner.regrade import regrade
from evalkit.runner.session import _maybe_emulator
from evalkit.runner.targets import resolve_targets

from .test_run import EMU, run, small_suite

KEY = ["item_id", "target", "repeat"]


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("regrade")
    return run(tmp, small_suite(tmp, 2)).run_dir  # judged by emulator:sim-large


@pytest.fixture()
def run_dir(graded_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(graded_run, copy)
    return copy


def _break_grades(run_dir: Path, rows: int) -> None:
    """Clear the grades of the first ``rows`` answered rows, as a grader bug would have left them."""
    for part in (run_dir / "results").glob("*.parquet"):
        frame = pl.read_parquet(part).with_row_index("_i")
        broken = pl.col("_i") < rows
        frame.with_columns(pl.when(~broken).then(pl.col(c)).alias(c) for c in ("score", "passed")).drop(
            "_i").write_parquet(part)


def _regrade_with(run_dir: Path, spec: str):
    async def go():
        with _maybe_emulator([], spec, EMU) as emu:
            judge = resolve_targets([spec], emulator=emu)[0]
            try:
                return await regrade(run_dir, judge=judge, judge_spec=spec)
            finally:
                await judge.aclose()

    return asyncio.run(go())


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_a_regrade_with_another_judge_is_recorded_and_says_what_changed(run_dir: Path) -> None:
    _break_grades(run_dir, 6)
    before = results_df(run_dir, exact_money=True)
    result = _regrade_with(run_dir, "emulator:sim-small")
    after = results_df(run_dir, exact_money=True)

    manifest = _manifest(run_dir)
    record = manifest["regrades"][-1]
    assert record["judge"] == "emulator:sim-small" and record["previous_judge"] == "emulator:sim-large"
    assert Decimal(record["judge_cost_usd"]) == result.judge_cost_usd
    assert manifest["config"]["judge"] == "emulator:sim-small", "a resume grades new cells with the same judge"
    # What it says changed is what changed, target by target.
    both = before.join(after, on=KEY, suffix="_after")
    was, now = pl.col("passed").fill_null(False), pl.col("passed_after").fill_null(False)
    expected = both.group_by("target").agg(
        scores_changed=pl.col("score").ne_missing(pl.col("score_after")).sum(),
        passed_before=was.sum(), passed_after=now.sum(),
        now_passed=(now & ~was).sum(), now_not_passed=(was & ~now).sum(),
        graded=pl.col("score_after").is_not_null().sum())
    for row in expected.iter_rows(named=True):
        assert vars(result.by_target[row.pop("target")]) == row
    assert result.scores_changed >= 6 and result.graded == after["score"].count()
    assert sum(c.now_passed for c in result.by_target.values()) > 0, "the broken grades were restored"
    assert result.judge_cost_usd == after["judge_cost_usd"].sum() > 0
    assert result.replaced_judge_cost_usd == before["judge_cost_usd"].sum() > 0

    assert record == {**result.record(), "status": "complete"}
    lines = result.lines()
    assert lines[0].startswith(f"graded {result.graded} answered cells of {run_dir} again with emulator:sim-small "
                               f"(was emulator:sim-large): {result.scores_changed} scores changed")
    assert any(line.strip().startswith(("openai:sim-small:", "openai:sim-large:")) for line in lines[1:])

    again = _regrade_with(run_dir, "emulator:sim-small")
    assert again.scores_changed == 0 and len(_manifest(run_dir)["regrades"]) == 2, "every regrade is on record"
    assert again.lines()[1:] == [], "nothing changed: no per-target lines"


def test_a_regrade_without_a_judge_records_that_and_keeps_the_runs_judge(run_dir: Path) -> None:
    before = results_df(run_dir)
    result = asyncio.run(regrade(run_dir))
    judged = before.filter(pl.col("grade_reason").str.contains("judge") | pl.col("judge_cost_usd").is_not_null())
    lost = judged.filter(pl.col("passed")).group_by("target").len()
    for target, n in lost.iter_rows():
        assert result.by_target[target].now_not_passed == n, "judge items without a judge are no longer graded"
    record = _manifest(run_dir)["regrades"][-1]
    assert record["judge"] is None and record["previous_judge"] == "emulator:sim-large"
    assert _manifest(run_dir)["config"]["judge"] == "emulator:sim-large"
    assert result.judge_cost_usd == 0 and result.replaced_judge_cost_usd > 0


def test_a_regrade_that_fails_part_way_is_on_record_as_unfinished(run_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.runner import regrade as module

    before = results_df(run_dir)

    def full_disk(frame, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(module, "write_parquet", full_disk)
    with pytest.raises(OSError, match="No space"):
        asyncio.run(regrade(run_dir))
    record = _manifest(run_dir)["regrades"][-1]
    assert record["status"] == "running" and record["judge"] is None, "started, never finished"
    assert results_df(run_dir).equals(before), "no part was rewritten"
