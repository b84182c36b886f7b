"""The run directory on disk survives crashes at any point of compaction, full disks and read-only mounts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evalkit.runner import RunStore, attempts_df, results_df, run_suite

from .test_run import EMU, TARGETS, small_suite

# Runs a suite in a fresh interpreter that dies (os._exit, as a SIGKILL would) at one exact point of compaction.
CRASHING_RUN = textwrap.dedent("""
    import asyncio, os, pathlib, sys
    from evalkit.runner import RunOptions, run_suite

    point, suite, runs_dir = sys.argv[1:4]
    real_unlink, real_replace = pathlib.Path.unlink, os.replace

    def unlink(self, *args, **kwargs):
        if point == "before-log-removed" and self.suffix == ".jsonl":
            os._exit(9)
        return real_unlink(self, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        if point == "between-parquet-parts" and "attempts" in str(dst):
            os._exit(9)
        return real_replace(src, dst, *args, **kwargs)

    pathlib.Path.unlink, os.replace = unlink, replace
    asyncio.run(run_suite(suite, {targets!r}, options=RunOptions(concurrency=4), runs_dir=runs_dir,
                          run_id="crashed", emulator={emu!r}, judge_spec="emulator:sim-large", progress=False))
""").format(targets=TARGETS, emu=EMU)


def _suite_without_code(tmp_path: Path, n_per_type: int = 2) -> Path:
    """small_suite without code_exec items: what is tested here does not depend on a sandbox."""
    path = small_suite(tmp_path, n_per_type)
    lines = [line for line in path.read_text().splitlines() if json.loads(line)["grader"]["type"] != "code_exec"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _logged(run_dir: Path) -> tuple[int, int]:
    """(cells, attempts) in the run's log parts."""
    rows = [json.loads(line) for part in (run_dir / "log").glob("*.jsonl")
            for line in part.read_text().splitlines()]
    return len(rows), sum(len(r["attempts"]) for r in rows)


@pytest.mark.parametrize("point", ["before-log-removed", "between-parquet-parts"])
def test_a_crash_during_compaction_never_counts_a_row_twice(tmp_path: Path, point: str) -> None:
    suite = _suite_without_code(tmp_path)
    crashed = subprocess.run([sys.executable, "-c", CRASHING_RUN, point, str(suite), str(tmp_path / "runs")],
                             capture_output=True, text=True, timeout=300)
    assert crashed.returncode == 9, crashed.stderr
    run_dir = tmp_path / "runs" / "crashed"
    cells, attempts = _logged(run_dir)
    assert cells > 0 and (run_dir / "results" / "part-0000.parquet").is_file(), "the crash hit its point"

    # Read as it was left: every cell and every attempt exactly once.
    assert results_df(run_dir).height == cells
    assert attempts_df(run_dir).height == attempts
    assert len(RunStore(run_dir).done_keys()) == cells

    # Resuming asks nothing, finishes the compaction and still counts each row once.
    again = asyncio.run(run_suite(suite, [], resume=run_dir, progress=False))
    assert again.totals.done == 0 and again.totals.skipped == cells
    assert results_df(run_dir).height == cells and attempts_df(run_dir).height == attempts
    assert not (run_dir / "log").exists()
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.parametrize("parquet_listed", [True, False], ids=["parquet-listed", "parquet-not-yet-listed"])
def test_a_log_part_compacted_while_it_is_read_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             parquet_listed: bool) -> None:
    """A reader (a notebook watching a run) lists a log part that the writer compacts away before it is read."""
    from .test_run import run

    run_dir = run(tmp_path, small_suite(tmp_path, 1)).run_dir
    expected = results_df(run_dir).height, attempts_df(run_dir).height
    gone = run_dir / "log" / "part-0000.jsonl"  # compacted: its Parquet parts exist, the log is removed
    monkeypatch.setattr(RunStore, "log_parts", lambda self: [gone])
    if not parquet_listed:  # listed before the writer renamed the Parquet part into place
        monkeypatch.setattr(RunStore, "parquet_parts", lambda self, table: [])
    assert (results_df(run_dir).height, attempts_df(run_dir).height) == expected


# -- a full disk and a read-only runs directory -----------------------------------------------------------

def _namespace_tools() -> str | None:
    """Why this machine cannot build a private mount (then the test skips), or None."""
    if not shutil.which("unshare"):
        return "no unshare(1)"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"no private mounts here: {probe.stderr.strip()}"


def _in_private_mount(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a new user and mount namespace (its mounts vanish with it)."""
    return subprocess.run(["unshare", "-rm", "sh", "-eu", "-c", script], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def _evalkit() -> str:
    return f"{sys.executable} -m evalkit.cli"


@pytest.mark.skipif(bool(_namespace_tools()), reason=str(_namespace_tools()))
@pytest.mark.parametrize(("free_kb", "failing_write"),
                         [(12, "log/part-0000.jsonl: No space"), (64, ".parquet: No space")],
                         ids=["while-asking", "while-compacting"])
def test_a_full_disk_is_one_line_leaves_no_tmp_and_resumes_once_space_is_freed(tmp_path: Path, free_kb: int,
                                                                              failing_write: str) -> None:
    suite = _suite_without_code(tmp_path, n_per_type=7)
    disk = tmp_path / "disk"
    disk.mkdir()
    # A small disk filled up to `free_kb`: the run needs ~50 kB for its log, then ~30 kB for its Parquet parts.
    # Removing the filler frees the space, and the resume finishes the run.
    script = f"""
        mount -t tmpfs -o size=1m tmpfs {disk}
        mkdir {disk}/runs
        head -c $(( $(df --output=avail -B1 {disk} | tail -1) - {free_kb * 1024} )) /dev/zero > {disk}/filler
        set +e
        {_evalkit()} run --suite {suite} --targets {TARGETS[0]} --runs-dir {disk}/runs --run-id full \\
            --no-progress --time-scale 0 --concurrency 2 >{tmp_path}/first.out 2>{tmp_path}/first.err
        echo $? > {tmp_path}/first.rc
        set -e
        find {disk}/runs > {tmp_path}/first.files
        rm {disk}/filler
        {_evalkit()} run --resume {disk}/runs/full --no-progress >{tmp_path}/second.out 2>{tmp_path}/second.err
        {sys.executable} -c "import evalkit.runner as r; print(r.results_df('{disk}/runs/full').height)" \\
            > {tmp_path}/rows
        find {disk}/runs > {tmp_path}/second.files
    """
    done = _in_private_mount(script)
    assert done.returncode == 0, done.stderr + (tmp_path / "second.err").read_text()
    err = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "1", err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert failing_write in err and f"evalkit run --resume {disk}/runs/full" in err, err
    assert ".tmp" not in (tmp_path / "first.files").read_text()
    from evalkit.datasets import load_dataset

    assert int((tmp_path / "rows").read_text()) == len(load_dataset(suite))
    assert ".tmp" not in (tmp_path / "second.files").read_text()
    assert "/log" not in (tmp_path / "second.files").read_text()


def _finished_run(tmp_path: Path, runs: Path, run_id: str) -> Path:
    done = subprocess.run([*_evalkit().split(), "run", "--suite", str(_suite_without_code(tmp_path, 1)), "--targets",
                           TARGETS[0], "--runs-dir", str(runs), "--run-id", run_id, "--time-scale", "0",
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return runs / run_id


def _read_only_script(folder: Path, command: str, tmp_path: Path) -> str:
    return f"""
        mount --bind {folder} {folder}
        mount -o remount,bind,ro {folder}
        set +e
        {_evalkit()} {command} >{tmp_path}/out 2>{tmp_path}/err
        echo $? > {tmp_path}/rc
    """


@pytest.mark.skipif(bool(_namespace_tools()), reason=str(_namespace_tools()))
@pytest.mark.parametrize("command", ["new-run", "resume", "regrade"])
def test_a_read_only_runs_dir_is_one_line_without_traceback(tmp_path: Path, command: str) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    if command == "new-run":  # a new run into a read-only runs directory
        args = f"run --suite {_suite_without_code(tmp_path, 1)} --targets {TARGETS[0]} --runs-dir {runs} --time-scale 0"
    else:  # a run whose directory became read-only
        _finished_run(tmp_path, runs, "r")
        args = f"run --resume {runs}/r" if command == "resume" else f"regrade {runs}/r"
    before = sorted(str(p) for p in runs.rglob("*"))
    args += " --no-progress" if args.startswith("run ") else ""
    done = _in_private_mount(_read_only_script(runs, args, tmp_path))
    assert done.returncode == 0, done.stderr
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "rc").read_text().strip() == "1", err
    assert err.count("\n") == 1 and "Traceback" not in err and "Read-only file system" in err, err
    assert sorted(str(p) for p in runs.rglob("*")) == before, "nothing written, nothing left behind"


@pytest.mark.skipif(bool(_namespace_tools()), reason=str(_namespace_tools()))
def test_shards_on_read_only_media_can_be_merged(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    _finished_run(tmp_path, shards, "a")
    done = _in_private_mount(_read_only_script(shards, f"merge {shards}/a -o {tmp_path}/merged", tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rc").read_text().strip() == "0", (tmp_path / "err").read_text()
    assert results_df(tmp_path / "merged").height == results_df(shards / "a").height


@pytest.mark.parametrize("key", ["sk-plain-0123456789abcdef", 'sk-"quoted"\\back\\slash-42',
                                 "sk-ключ-non-ascii-42"], ids=["plain", "json-escaped", "non-ascii"])
def test_a_secret_in_any_field_of_a_row_is_scrubbed_before_it_is_written(tmp_path: Path, key: str) -> None:
    """Every string of a row (new fields and nested attempts included), in whatever form JSON writes it."""
    from evalkit._secret import Secret

    Secret(key)  # as a provider holds its key
    store = RunStore(tmp_path / "r")
    row = {"item_id": "q1", "target": "t", "repeat": 0, "output": f"echo: {key}", "a_future_field": [key],
           "attempts": [{"error": f"401 for {key}", "sent": True}]}
    written = store.append(row)
    store.close()
    data = (tmp_path / "r" / "log" / "part-0000.jsonl").read_bytes()
    assert b"********" in data
    for form in (key, json.dumps(key)[1:-1], json.dumps(key, ensure_ascii=False)[1:-1]):
        assert form.encode() not in data
    assert written["output"] == "echo: ********" and written["attempts"][0]["error"] == "401 for ********"
    assert row["output"] == f"echo: {key}", "the caller's row is left as it was"
