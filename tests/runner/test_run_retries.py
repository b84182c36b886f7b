"""A run against a faulty fleet answers: transient failures are retried, every attempt is recorded,
``--retry-failed`` asks failed cells again on resume, and the scheduler passes over a throttled target."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

import evalkit
from evalkit.runner import RunOptions, run_suite
from evalkit.runner._cells import Cell
from evalkit.runner._schedule import CellQueue
from evalkit.runner.cli import DEFAULT_RETRIES

from .test_cli_inputs import run_cli


def faulty_fleet(tmp_path: Path, faults: str = "{rate_limit: 0.1, server: 0.05, retry_after_s: 0.01}") -> Path:
    """The built-in fleet with every model failing some attempts (the issue's fault-heavy fleet)."""
    import yaml
    from importlib.resources import files

    fleet = yaml.safe_load(files("evalkit.emulator").joinpath("default_fleet.yaml").read_text())
    fleet.setdefault("defaults", {})["faults"] = yaml.safe_load(faults)
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


def test_the_fault_heavy_smoke_run_answers_and_records_every_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fleet = faulty_fleet(tmp_path)
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--fleet", str(fleet), "--run-id", "f"], monkeypatch, capsys)
    assert code == 0, err
    results, attempts = evalkit.results_df(tmp_path / "runs/f"), evalkit.attempts_df(tmp_path / "runs/f")
    answered = (results["status"] == "ok").mean()
    assert answered >= 0.99, results.filter(pl.col("status") == "error").select("target", "error").rows()
    retried = results.filter(pl.col("n_attempts") > 1)
    assert retried.height > 0.05 * results.height, "about 15 % of attempts fail: many cells need a retry"
    # Every retry is a row of attempts_df: the failed ones with their typed kind, then the answer.
    failed_attempts = attempts.filter(pl.col("error_kind").is_not_null())
    assert set(failed_attempts["error_kind"]) <= {"rate_limit", "server"}
    assert failed_attempts.height == attempts.height - results.filter(pl.col("status") == "ok").height
    assert (attempts.group_by("item_id", "target", "repeat").len()["len"].sum() == results["n_attempts"].sum())
    assert attempts.filter(pl.col("retry") > 0).height > 0
    manifest = json.loads((tmp_path / "runs/f/manifest.json").read_text())
    assert manifest["config"]["retries"] == DEFAULT_RETRIES and manifest["status"] == "complete"


def test_retries_0_leaves_failures_as_rows_that_retry_failed_asks_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = faulty_fleet(tmp_path, "{server: 0.3}")
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--limit", "10", "--fleet", str(fleet), "--retries", "0",
                                   "--run-id", "r"], monkeypatch, capsys)
    run_dir = tmp_path / "runs/r"
    first = evalkit.results_df(run_dir)
    failed = first.filter(pl.col("status") == "error")
    assert code == 0 and failed.height > 0 and (first["n_attempts"] == 1).all(), err
    cost_before = evalkit.attempts_df(run_dir)["cost_usd"].drop_nulls().sum()

    # A plain resume has nothing to ask: failed cells are finished cells.
    code, err = run_cli(tmp_path, ["--resume", str(run_dir)], monkeypatch, capsys)
    assert code == 0 and evalkit.results_df(run_dir).equals(first), err

    code, err = run_cli(tmp_path, ["--resume", str(run_dir), "--retry-failed", "--retries", "5"],
                        monkeypatch, capsys)
    assert code == 0, err
    after = evalkit.results_df(run_dir)
    assert after.height == first.height, "one row per cell: the new ask replaces the failed one"
    again = after.join(failed.select("item_id", "target", "repeat"), on=["item_id", "target", "repeat"])
    assert (again["status"] == "ok").all()
    assert (again["n_attempts"] >= 2).all(), "the failed ask's attempt stays in the cell"
    attempts = evalkit.attempts_df(run_dir)
    assert attempts.height == after["n_attempts"].sum(), "every attempt of every ask, none twice"
    assert attempts["cost_usd"].drop_nulls().sum() >= cost_before
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["resumes"][-1]["retry_failed"] is True and manifest["config"]["retries"] == 5


def test_a_throttled_target_does_not_hold_the_workers_of_the_others() -> None:
    class Gate:
        def __init__(self, full: bool) -> None:
            self.full = full

        def saturated(self) -> bool:
            return self.full

    async def take_all() -> list[Cell]:
        throttled, free = Gate(True), Gate(False)
        queue = CellQueue([iter([Cell(i, 0, 0) for i in range(3)]), iter([Cell(i, 1, 0) for i in range(3)])],
                          [throttled, free])
        taken = [await queue.take() for _ in range(3)]
        assert all(c.target == 1 for c in taken), "only the target with room gets cells"
        waiting = asyncio.ensure_future(queue.take())
        await asyncio.sleep(0.01)
        assert not waiting.done(), "nothing to hand out while the only target left is full"
        throttled.full = False
        queue.finished()
        return [*taken, await waiting]

    assert asyncio.run(take_all())[-1] == Cell(0, 0, 0)


def test_plan_flags_on_resume_are_an_error_not_silently_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--limit", "2", "--time-scale", "0", "--run-id", "p"],
                        monkeypatch, capsys)
    assert code == 0, err
    for flag in (["--repeats", "3"], ["--seed", "0"], ["--targets", "emulator:sim-small"], ["--stream"],
                 ["--limit", "5"], ["--no-judge"]):
        code, err = run_cli(tmp_path, ["--resume", str(tmp_path / "runs/p"), *flag], monkeypatch, capsys)
        assert code == 2 and f"{flag[0]}: fixed by the run being resumed" in err, (flag, err)
    code, err = run_cli(tmp_path, ["--retry-failed"], monkeypatch, capsys)
    assert code == 2 and "--retry-failed" in err


def test_concurrency_given_on_resume_is_used_and_recorded(tmp_path: Path) -> None:
    suite = "smoke"
    emu = {"seed": 0, "time_scale": 0.0}
    first = asyncio.run(run_suite(suite, ["emulator:sim-small"], options=RunOptions(concurrency=4, limit=3),
                                  runs_dir=tmp_path, run_id="c", judge_spec="emulator:sim-large", emulator=emu,
                                  progress=False))
    asyncio.run(run_suite(suite, [], options=RunOptions(concurrency=2, retries=1), resume=first.run_dir,
                          progress=False))
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert manifest["config"]["concurrency"] == 2 and manifest["config"]["retries"] == 1
    assert manifest["config"]["limit"] == 3, "a plan option stays what the run started with"
    assert [r["concurrency"] for r in manifest["resumes"]] == [2]


def test_a_model_with_an_rpm_limit_gets_few_429s_over_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml
    from importlib.resources import files

    fleet = yaml.safe_load(files("evalkit.emulator").joinpath("default_fleet.yaml").read_text())
    for model in fleet["models"]:
        if model["name"] == "sim-small":  # 60 RPM; at time scale 0.1 a minute lasts 6 s: 10 requests a second
            model["rate_limits"] = {"requests_per_minute": 60, "enforce": True}
    (tmp_path / "rpm.yaml").write_text(yaml.safe_dump(fleet))
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--fleet", "rpm.yaml", "--targets", "emulator:sim-small",
                                   "--repeats", "3", "--time-scale", "0.1", "--no-judge", "--run-id", "rpm"],
                        monkeypatch, capsys)
    results, attempts = evalkit.results_df(tmp_path / "runs/rpm"), evalkit.attempts_df(tmp_path / "runs/rpm")
    assert code == 0 and (results["status"] == "ok").all(), err
    assert results.height == 123 > 60, "more cells than one minute's budget: the run must pace itself"
    limited = attempts.filter(pl.col("error_kind") == "rate_limit").height
    assert limited <= 0.05 * attempts.height, f"{limited} of {attempts.height} attempts were 429s"


def test_a_routing_config_s_in_flight_limits_are_honoured_not_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.emulator import Emulator

    with Emulator(seed=0, time_scale=0.02) as emu:
        (tmp_path / "routing.yaml").write_text(
            "version: 1\ntargets:\n  small:\n    model: openai:sim-small\n"
            f"    base_url: {emu.openai_base_url}\n    api_key_env: EMU_KEY\n"
            "    limits: {max_in_flight: 2}\nrouter: {type: fallback, targets: [small]}\n")
        monkeypatch.setenv("EMU_KEY", "emulator-key")
        code, err = run_cli(tmp_path, ["--suite", "smoke", "--targets", "routing.yaml", "--no-judge",
                                       "--concurrency", "32", "--run-id", "cfg"], monkeypatch, capsys)
    results, attempts = evalkit.results_df(tmp_path / "runs/cfg"), evalkit.attempts_df(tmp_path / "runs/cfg")
    assert code == 0 and (results["status"] == "ok").all(), results["error"].drop_nulls().head(3).to_list()
    refused = attempts.filter(pl.col("error").str.starts_with("local limit").fill_null(False))
    assert refused.height == 0, "32 cells at once, a limit of 2: the run waits its turn instead of refusing"
