"""Honest endings: a run that answered nothing never exits 0, the errors are shown, the hint works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import evalkit
from evalkit.runner.ending import ERROR_RATE_EXCEEDED

from .test_cli_inputs import fleet_yaml, jsonl, run_cli, with_


def test_a_run_where_every_call_failed_exits_3_with_the_error_kinds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.jsonl").write_text(jsonl(*[with_(id=f"q{i}") for i in range(6)]))
    (tmp_path / "fleet.yaml").write_text(fleet_yaml("sim-down", faults="{server: 1.0}"))
    code, err = run_cli(tmp_path, ["--suite", "ok.jsonl", "--fleet", "fleet.yaml", "--time-scale", "0",
                                   "--retries", "1", "--run-id", "d"], monkeypatch, capsys)
    assert code == ERROR_RATE_EXCEEDED, err
    assert "6 of 6 cells failed (every cell failed)" in err and "--retry-failed" in err
    results = evalkit.results_df(tmp_path / "runs/d")
    assert (results["n_attempts"] == 2).all(), "--retries 1: two attempts per cell"


def test_errors_are_printed_per_target_with_a_sample_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from evalkit.cli import main

    (tmp_path / "ok.jsonl").write_text(jsonl(*[with_(id=f"q{i}") for i in range(4)]))
    (tmp_path / "fleet.yaml").write_text(fleet_yaml("sim-down", faults="{server: 1.0}"))
    code = main(["run", "--no-progress", "--suite", "ok.jsonl", "--fleet", "fleet.yaml", "--time-scale", "0",
                 "--retries", "0"])
    out = capsys.readouterr().out
    assert code == ERROR_RATE_EXCEEDED
    # The sample is the vendor's own message, not the retry chain's summary of its attempts.
    assert "openai:sim-down" in out and "server" in out and "The server had an error" in out, out


def test_max_error_rate_fails_a_run_with_more_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.jsonl").write_text(jsonl(*[with_(id=f"q{i}") for i in range(20)]))
    (tmp_path / "fleet.yaml").write_text(fleet_yaml("sim-flaky", faults="{server: 0.5}"))
    args = ["--suite", "ok.jsonl", "--fleet", "fleet.yaml", "--time-scale", "0", "--retries", "0"]
    code, err = run_cli(tmp_path, [*args, "--run-id", "lenient"], monkeypatch, capsys)
    assert code == 0, "some cells answered and no --max-error-rate: the run is complete"
    code, err = run_cli(tmp_path, [*args, "--run-id", "strict", "--max-error-rate", "5%"], monkeypatch, capsys)
    assert code == ERROR_RATE_EXCEEDED and "more than 5.0% failed" in err, err


def test_the_printed_hint_is_a_call_that_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    from evalkit.cli import main

    assert main(["run", "--no-progress", "--suite", "smoke", "--limit", "2", "--time-scale", "0"]) == 0
    out = capsys.readouterr().out
    calls = re.findall(r"evalkit\.(results_df|attempts_df)\('([^']+)'\)", out)
    assert {name for name, _ in calls} == {"results_df", "attempts_df"}, out
    for name, where in calls:
        assert getattr(evalkit, name)(where).height > 0


def test_a_judge_that_fails_every_call_is_not_a_silent_success(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml
    from importlib.resources import files

    fleet = yaml.safe_load(files("evalkit.emulator").joinpath("default_fleet.yaml").read_text())
    for model in fleet["models"]:
        if model["name"] == "sim-large":  # the default judge: every call a 500
            model["faults"] = {"server": 1.0}
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--fleet", "fleet.yaml", "--targets", "emulator:sim-small",
                                   "--time-scale", "0", "--retries", "0", "--run-id", "j"], monkeypatch, capsys)
    results = evalkit.results_df(tmp_path / "runs/j")
    judged = results.filter(results["grade_reason"].str.starts_with("judge failed: server"))
    assert judged.height > 0 and (results["status"] == "ok").all()
    assert f"{judged.height} answers are ungraded because the judge failed (server {judged.height})" in err, err
    assert f"evalkit regrade {Path('runs/j')}" in err
    assert code == 0, "most answers are graded: without --max-error-rate only a run with nothing usable fails"
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--fleet", "fleet.yaml", "--targets", "emulator:sim-small",
                                   "--time-scale", "0", "--retries", "0", "--run-id", "j2", "--max-error-rate",
                                   "0.05"], monkeypatch, capsys)
    assert code == ERROR_RATE_EXCEEDED, "ungraded by a failing judge counts as failed for --max-error-rate"
