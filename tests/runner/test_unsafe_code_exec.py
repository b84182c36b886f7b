"""Without a sandbox, code_exec answers stay ungraded (said once, counted once) unless --unsafe-code-exec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from evalkit.datasets import load_dataset
from evalkit.runner import results_df

EVALKIT = [sys.executable, "-m", "evalkit.cli"]
NO_SANDBOX = {**os.environ, "EVALKIT_BWRAP": "/nonexistent/bwrap"}  # as on a machine without bubblewrap
WARNING = "code_exec items will be ungraded"


def code_suite(tmp_path: Path, n: int = 3) -> Path:
    """The smoke suite's first ``n`` code items and one numeric item (graded either way)."""
    lines = Path(load_dataset("smoke").path).read_text().splitlines()
    code = [line for line in lines if json.loads(line)["grader"]["type"] == "code_exec"][:n]
    other = [line for line in lines if json.loads(line)["grader"]["type"] == "numeric"][:1]
    path = tmp_path / "code.jsonl"
    path.write_text("\n".join(code + other) + "\n")
    return path


def evalkit(*args: str, env: dict[str, str] = NO_SANDBOX) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVALKIT, *args], capture_output=True, text=True, env=env, timeout=300)


def run_args(tmp_path: Path, run_id: str, *extra: str) -> list[str]:
    return ["run", "--suite", str(code_suite(tmp_path)), "--targets", "emulator:sim-large", "--runs-dir",
            str(tmp_path / "runs"), "--run-id", run_id, "--time-scale", "0", "--no-progress", *extra]


def code_rows(run_dir: Path) -> pl.DataFrame:
    return results_df(run_dir).filter(pl.col("task_type") == "code")


def test_without_a_sandbox_code_answers_are_ungraded_and_said_so_once(tmp_path: Path) -> None:
    ran = evalkit(*run_args(tmp_path, "plain"))
    assert ran.returncode == 0, ran.stderr
    rows = code_rows(tmp_path / "runs" / "plain")
    assert rows.height == 3 and rows["status"].to_list() == ["ok"] * 3
    assert rows["score"].is_null().all() and rows["passed"].is_null().all()
    assert rows["grade_reason"].str.starts_with("ungraded: ").all(), rows["grade_reason"].to_list()
    assert not rows["grade_reason"].str.contains("grader error").any()
    others = results_df(tmp_path / "runs" / "plain").filter(pl.col("task_type") != "code")
    assert others["score"].is_not_null().all()
    assert ran.stderr.count(WARNING) == 1, ran.stderr
    assert "--unsafe-code-exec" in ran.stderr
    assert ran.stderr.count("3 code_exec answers are ungraded") == 1, ran.stderr


def test_unsafe_code_exec_grades_them_and_is_recorded(tmp_path: Path) -> None:
    ran = evalkit(*run_args(tmp_path, "unsafe", "--unsafe-code-exec"))
    assert ran.returncode == 0, ran.stderr
    rows = code_rows(tmp_path / "runs" / "unsafe")
    assert rows["score"].is_not_null().all() and not rows["grade_reason"].str.starts_with("ungraded").any()
    assert WARNING not in ran.stderr and "ungraded" not in ran.stderr
    manifest = json.loads((tmp_path / "runs" / "unsafe" / "manifest.json").read_text())
    assert manifest["config"]["unsafe_code_exec"] is True


def test_the_flag_on_resume_is_applied_and_recorded_and_regrade_grades_the_rest(tmp_path: Path) -> None:
    first = evalkit(*run_args(tmp_path, "r", "--shard", "1/2"))
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "runs" / "r"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["unsafe_code_exec"] is False
    manifest["config"]["shard"] = "1/1"  # as if the first run had been interrupted half-way
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    ungraded_before = code_rows(run_dir)["score"].is_null().sum()
    assert ungraded_before > 0

    resumed = evalkit("run", "--resume", str(run_dir), "--no-progress", "--unsafe-code-exec")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["config"]["unsafe_code_exec"] is True
    rows = code_rows(run_dir)
    assert rows.height == 3 and rows["score"].is_null().sum() == ungraded_before, "new cells graded, old kept"

    regraded = evalkit("regrade", str(run_dir), "--unsafe-code-exec")
    assert regraded.returncode == 0, regraded.stderr
    assert code_rows(run_dir)["score"].is_not_null().all()


@pytest.mark.parametrize("command", ["run", "regrade"])
def test_the_flag_is_documented(command: str) -> None:
    shown = evalkit(command, "--help")
    assert "--unsafe-code-exec" in shown.stdout and "without isolation" in " ".join(shown.stdout.split())
