"""A run killed with SIGKILL half-way, then resumed, has exactly one row per cell."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evalkit.datasets import load_dataset
from evalkit.runner import results_df

from .test_run import small_suite

TARGETS = "emulator:sim-small,emulator:sim-fast"


def _log_lines(run_dir: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (run_dir / "log").glob("*.jsonl")) if (
        run_dir / "log").is_dir() else 0


def test_sigkill_half_way_then_resume(tmp_path: Path) -> None:
    suite = small_suite(tmp_path, n_per_type=3)
    cells = len(load_dataset(suite)) * 2
    run_dir = tmp_path / "runs" / "killed"
    command = [sys.executable, "-m", "evalkit.cli", "run", "--suite", str(suite), "--targets", TARGETS,
               "--runs-dir", str(tmp_path / "runs"), "--run-id", "killed", "--no-progress",
               "--concurrency", "2", "--time-scale", "0.3"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _log_lines(run_dir) < cells // 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; slow it down"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = _log_lines(run_dir)
    assert 0 < finished_before < cells
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"

    resumed = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", "--resume", str(run_dir),
                              "--no-progress"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "already done" in resumed.stdout
    results = results_df(run_dir)
    assert results.height == cells
    assert results.select("item_id", "target", "repeat").is_duplicated().sum() == 0
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
