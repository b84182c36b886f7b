"""Money a user can steer: ``--max-spend`` is never passed, models and judge are shown apart, ``--limit``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import evalkit
from evalkit.runner.ending import SPEND_CAP_REACHED

from .test_cli_inputs import run_cli


def run_spend(run_dir: Path) -> Decimal:
    """What a run's written cells cost, models and judge, exactly."""
    results = evalkit.results_df(run_dir)
    return sum((Decimal(str(v)) for column in ("cost_usd", "judge_cost_usd")
                for v in results[column].drop_nulls()), Decimal(0))


def test_max_spend_stops_asking_before_the_cap_and_a_resume_with_more_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cap = Decimal("0.05")
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--concurrency", "32", "--max-spend", str(cap),
                                   "--run-id", "m"], monkeypatch, capsys)
    run_dir = tmp_path / "runs/m"
    results = evalkit.results_df(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert code == SPEND_CAP_REACHED and "--max-spend reached" in err and "--resume runs/m" in err, err
    assert 0 < results.height < 246, "some cells answered, the rest left for a resume"
    assert run_spend(run_dir) <= cap, "reserved before sending: 32 cells in flight never pass the cap"
    assert manifest["status"] == "incomplete" and manifest["stopped"]["reason"] == "max_spend"
    assert (results["status"] == "ok").all(), "a cell the cap refused is not written as a failure"

    code, err = run_cli(tmp_path, ["--resume", str(run_dir), "--max-spend", "100"], monkeypatch, capsys)
    assert code == 0, err
    assert evalkit.results_df(run_dir).height == 246
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


def test_the_spend_line_shows_models_and_judge_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    from evalkit.cli import main

    code = main(["run", "--no-progress", "--suite", "smoke", "--time-scale", "0", "--run-id", "s"])
    out = capsys.readouterr().out
    results = evalkit.results_df(tmp_path / "runs/s")
    models = sum((Decimal(str(v)) for v in results["cost_usd"].drop_nulls()), Decimal(0))
    judge = sum((Decimal(str(v)) for v in results["judge_cost_usd"].drop_nulls()), Decimal(0))
    assert code == 0 and judge > 0, out
    assert f"spend ${models + judge:.4f} (models ${models:.4f} + judge ${judge:.4f})" in out


def test_limit_asks_only_the_first_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--limit", "3", "--time-scale", "0",
                                   "--targets", "emulator:sim-small,emulator:sim-large", "--run-id", "l"],
                        monkeypatch, capsys)
    from evalkit.datasets import load_dataset

    results = evalkit.results_df(tmp_path / "runs/l")
    first = [item.id for item in load_dataset("smoke").items[:3]]
    assert code == 0 and results.height == 6, err
    assert sorted(set(results["item_id"])) == sorted(first)
    assert json.loads((tmp_path / "runs/l/manifest.json").read_text())["config"]["limit"] == 3


def test_max_spend_on_a_model_without_a_price_is_refused_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used-0000")
    code = main(["run", "--no-progress", "--suite", "smoke", "--targets", "openai:my-finetune-without-a-price",
                 "--no-judge", "--max-spend", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--max-spend" in err and "my-finetune-without-a-price" in err, err
    assert not (tmp_path / "runs").exists()


def test_judge_items_without_a_judge_are_refused_unless_no_judge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from evalkit.errors import ConfigError
    from evalkit.runner import run_suite

    emu = {"seed": 0, "time_scale": 0.0}
    with pytest.raises(ConfigError, match="graded by an LLM judge") as refused:
        asyncio.run(run_suite("smoke", ["emulator:sim-small"], runs_dir=tmp_path / "runs", emulator=emu,
                              progress=False))
    assert refused.value.field == "--judge" and not (tmp_path / "runs").exists()

    code, err = run_cli(tmp_path, ["--suite", "smoke", "--targets", "emulator:sim-small", "--no-judge",
                                   "--time-scale", "0", "--run-id", "n"], monkeypatch, capsys)
    results = evalkit.results_df(tmp_path / "runs/n")
    judged = results.filter(pl.col("grade_reason") == "ungraded: no judge (--no-judge)")
    assert code == 0 and judged.height > 0 and judged["score"].is_null().all(), err
    assert "--no-judge" in err and "evalkit regrade" in err
    assert results.filter(pl.col("grade_reason").str.starts_with("grader error")).height == 0
    code, err = run_cli(tmp_path, ["--suite", "smoke", "--no-judge", "--judge", "emulator:sim-large"],
                        monkeypatch, capsys)
    assert code == 2 and "--judge" in err


def test_a_no_judge_run_graded_later_by_regrade_can_still_be_resumed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    code, err = run_cli(tmp_path, ["--suite", "smoke", "--targets", "emulator:sim-small", "--no-judge",
                                   "--time-scale", "0", "--max-spend", "0.003", "--run-id", "nj"],
                        monkeypatch, capsys)
    assert code == SPEND_CAP_REACHED, err
    assert main(["regrade", "runs/nj", "--judge", "emulator:sim-large", "--time-scale", "0"]) == 0
    code, err = run_cli(tmp_path, ["--resume", "runs/nj", "--max-spend", "10"], monkeypatch, capsys)
    assert code == 0, err
    results = evalkit.results_df(tmp_path / "runs/nj")
    assert results.height == 41 and results["grade_reason"].str.starts_with("ungraded: no judge").sum() == 0


def test_a_merged_run_of_capped_shards_resumes_without_the_shards_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    for k in (1, 2):
        code, err = run_cli(tmp_path, ["--suite", "smoke", "--targets", "emulator:sim-small", "--no-judge",
                                       "--time-scale", "0", "--shard", f"{k}/2", "--max-spend", "0.01",
                                       "--run-id", f"s{k}"], monkeypatch, capsys)
        assert code in (0, SPEND_CAP_REACHED), err
    main(["merge", "runs/s1", "runs/s2", "-o", "runs/all"])
    assert json.loads((tmp_path / "runs/all/manifest.json").read_text())["config"]["max_spend"] is None
    code, err = run_cli(tmp_path, ["--resume", "runs/all"], monkeypatch, capsys)
    assert code == 0 and evalkit.results_df(tmp_path / "runs/all").height == 41, err
