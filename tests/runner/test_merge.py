"""``evalkit merge`` says what is missing: shards not given, shards that did not finish; never "complete" for a part."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

from evalkit import ConfigError
from evalkit.runner import RunOptions, RunStore, attempts_df, parse_shard, results_df, run_suite
from evalkit.runner.merge import merge_runs

from .test_run import TARGETS, run, small_suite

KEY = ["item_id", "target", "repeat"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], int]:
    """(suite, the three shards 1/3 2/3 3/3 of one run, its number of cells)."""
    tmp = tmp_path_factory.mktemp("shards")
    suite = small_suite(tmp)
    parts = [run(tmp, suite, run_id=f"shard{k}", options=RunOptions(concurrency=8, shard=parse_shard(f"{k}/3"))).run_dir
             for k in (1, 2, 3)]
    return suite, parts, sum(results_df(p).height for p in parts)


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_every_shard_merges_into_a_complete_run(shards: tuple, tmp_path: Path) -> None:
    _, parts, cells = shards
    merged = merge_runs(parts, tmp_path / "merged")
    assert merged.complete and merged.missing_cells == 0 and merged.problems() == []
    manifest = _manifest(tmp_path / "merged")
    assert manifest["status"] == "complete" and "incomplete" not in manifest
    assert [s["shard"] for s in manifest["shards"]] == ["1/3", "2/3", "3/3"]
    assert all(s["cells"] == s["expected_cells"] for s in manifest["shards"])
    assert results_df(tmp_path / "merged").height == cells
    assert attempts_df(tmp_path / "merged").height == sum(attempts_df(p).height for p in parts)
    names = sorted(p.name for p in (tmp_path / "merged" / "results").iterdir())
    assert names == [f"part-{i:04d}.parquet" for i in range(len(names))], "renumbered in the order written"


def test_two_of_three_shards_are_an_incomplete_run_that_a_resume_completes(shards: tuple, tmp_path: Path) -> None:
    suite, parts, cells = shards
    out = tmp_path / "merged"
    merged = merge_runs([parts[0], parts[2]], out)
    shard2 = results_df(parts[1]).height
    manifest = _manifest(out)
    assert manifest["status"] == "incomplete"
    assert manifest["incomplete"] == {"missing_shards": ["2/3"], "incomplete_shards": [], "missing_cells": shard2}
    assert not merged.complete and merged.missing_shards == ("2/3",) and merged.missing_cells == shard2
    assert merged.problems() == [f"shard 2/3 not given ({shard2} cells)"]
    assert results_df(out).height == cells - shard2

    # The merged run is the whole 1/1 slice: resuming it asks exactly the missing shard's cells.
    again = asyncio.run(run_suite(suite, [], resume=out, progress=False))
    assert again.totals.done == shard2 and again.totals.skipped == cells - shard2
    assert results_df(out).height == cells and not results_df(out).select(KEY).is_duplicated().any()
    assert _manifest(out)["status"] == "complete"


def test_a_shard_that_did_not_finish_is_merged_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = small_suite(tmp_path, 1)
    done = run(tmp_path, suite, run_id="a", options=RunOptions(concurrency=4, shard=parse_shard("1/2"))).run_dir
    # Shard 2/2 crashed: its cells are in its log, never compacted, and its manifest still says running.
    monkeypatch.setattr(RunStore, "compact", lambda self: None)
    crashed = run(tmp_path, suite, run_id="b", options=RunOptions(concurrency=4, shard=parse_shard("2/2"))).run_dir
    monkeypatch.undo()
    manifest = _manifest(crashed)
    manifest["status"] = "running"
    (crashed / "manifest.json").write_text(json.dumps(manifest))
    logged = results_df(crashed).height
    assert list((crashed / "log").glob("*.jsonl")) and not (crashed / "results").exists()
    # ... and shard 1/2 lost a cell (as if it had been cut off before it).
    part = next((done / "results").glob("*.parquet"))
    kept = pl.read_parquet(part)
    lost = kept.row(0, named=True)
    kept.slice(1).write_parquet(part)

    merged = merge_runs([done, crashed], tmp_path / "merged")
    assert not merged.complete and merged.missing_shards == ()
    assert [(s.shard, s.status, s.missing_cells) for s in merged.incomplete_shards] == [
        ("1/2", "complete", 1), ("2/2", "running", 0)]
    assert merged.missing_cells == 1
    assert merged.problems()[0] == f"shard 1/2 ({done}) is complete: 1 of its {kept.height} cells missing"
    assert _manifest(tmp_path / "merged")["incomplete"]["incomplete_shards"] == ["1/2", "2/2"]
    together = results_df(tmp_path / "merged")
    assert together.height == kept.height - 1 + logged, "the crashed shard's logged cells are merged too"
    assert together.filter((pl.col("item_id") == lost["item_id"]) & (pl.col("target") == lost["target"])).is_empty()
    assert not (tmp_path / "merged" / "log").exists(), "written as Parquet parts"
    assert (crashed / "log").is_dir(), "a shard is read, never written"


def test_shards_that_do_not_add_up_are_refused(shards: tuple, tmp_path: Path) -> None:
    suite, parts, _ = shards
    with pytest.raises(ConfigError, match="shard 1/3 is given twice"):
        merge_runs([parts[0], parts[1], parts[0]], tmp_path / "twice")
    halves = run(tmp_path, suite, run_id="half", options=RunOptions(concurrency=8, shard=parse_shard("1/2")),
                 targets=TARGETS).run_dir
    with pytest.raises(ConfigError, match="shards of different splits"):
        merge_runs([parts[0], halves], tmp_path / "mixed")
    assert not (tmp_path / "twice").exists() and not (tmp_path / "mixed").exists()
