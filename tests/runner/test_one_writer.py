"""A run directory has one writer: a second process gets one clear error, a crashed one leaves no stale lock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from evalkit.runner import parse_shard, results_df
from evalkit.runner.run import RunOptions

from .test_run import TARGETS, run, small_suite

EVALKIT = [sys.executable, "-m", "evalkit.cli"]


def half_done_run(tmp_path: Path, time_scale: float) -> Path:
    """A run with half its cells done, as if interrupted; a resume asks the rest at ``time_scale``."""
    first = run(tmp_path, small_suite(tmp_path, n_per_type=4), run_id="r",
                options=RunOptions(concurrency=4, shard=parse_shard("1/2")))
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    manifest["config"].update(shard="1/1", concurrency=2)
    manifest["config"]["emulator"]["time_scale"] = time_scale
    manifest["status"] = "running"
    (first.run_dir / "manifest.json").write_text(json.dumps(manifest))
    return first.run_dir


def _logged_lines(run_dir: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (run_dir / "log").glob("*.jsonl")) if (
        run_dir / "log").is_dir() else 0


def test_two_resumes_at_once_the_second_gets_one_clear_error(tmp_path: Path) -> None:
    run_dir = half_done_run(tmp_path, time_scale=0.3)
    cells = results_df(run_dir).height * 2
    first = subprocess.Popen([*EVALKIT, "run", "--resume", str(run_dir), "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _logged_lines(run_dir) < 1 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first resume ended before the second started; slow it down"

    second = subprocess.run([*EVALKIT, "run", "--resume", str(run_dir), "--no-progress"],
                            capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first was still writing while the second was refused"
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert str(run_dir) in second.stderr and "another evalkit process is writing" in second.stderr

    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    results = results_df(run_dir)
    assert results.height == cells and results.select("item_id", "target", "repeat").is_duplicated().sum() == 0
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


@contextlib.contextmanager
def lock_held_by_another_process(run_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate process that holds the run's lock until it is killed."""
    hold = ("import time; from evalkit.runner.lock import RunLock; "
            f"RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def _commands(run_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {"resume": ["run", "--resume", str(run_dir), "--no-progress"],
            "regrade": ["regrade", str(run_dir)],
            "merge": ["merge", str(run_dir), "-o", str(tmp_path / "merged")]}


@pytest.mark.parametrize("command", ["resume", "regrade", "merge"])
def test_a_run_another_process_writes_is_refused_until_that_process_dies(tmp_path: Path, command: str) -> None:
    run_dir = run(tmp_path, small_suite(tmp_path, 1), targets=TARGETS[:1], run_id="r").run_dir
    args = [*EVALKIT, *_commands(run_dir, tmp_path)[command]]
    with lock_held_by_another_process(run_dir) as holder:
        refused = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1 and "another evalkit process is writing" in refused.stderr
        assert str(run_dir) in refused.stderr
        assert not (tmp_path / "merged").exists()
        os.kill(holder.pid, signal.SIGKILL)  # a crash: the kernel releases the lock
        holder.wait()
        done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_new_run_holds_its_lock_while_it_runs(tmp_path: Path) -> None:
    """Started fresh (no --resume), a run is just as protected from a concurrent resume or regrade."""
    suite = small_suite(tmp_path, n_per_type=3)
    run_dir = tmp_path / "runs" / "new"
    first = subprocess.Popen([*EVALKIT, "run", "--suite", str(suite), "--targets", TARGETS[0], "--runs-dir",
                              str(tmp_path / "runs"), "--run-id", "new", "--time-scale", "0.3",
                              "--concurrency", "2", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _logged_lines(run_dir) < 1 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None
    regrade = subprocess.run([*EVALKIT, "regrade", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert regrade.returncode == 2 and "another evalkit process is writing" in regrade.stderr, regrade.stderr
    first.kill()
    first.wait()
