"""``evalkit recommend`` prices and sizes emulated targets by the fleet the run used (the report: tests/report).

The run below is made with ``evalkit run --fleet FILE``: its ``sim-large`` has another price and window than
the built-in fleet's, and ``acme-mini`` is a model the built-in fleet does not have. Both commands read that
fleet from the run's manifest (it read the built-in one before, and left ``acme-mini`` pointing at the real
Anthropic API with no price and no window, without a word).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from decimal import Decimal
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

import evalkit
from evalkit.analysis.emulated_targets import emulated_target_specs, emulated_targets
from evalkit.cli import main
from evalkit.emulator import Emulator

LARGE = {"input": 1.25, "cached_input": 0.5, "output": 2.5}  # the built-in sim-large: 10 / 10 / 30 per 1M
MINI = {"input": 0.11, "cached_input": 0.11, "output": 0.33}
LARGE_WINDOW = 100_000  # the built-in sim-large: 128,000
MINI_WINDOW = 5_000  # below the suite's longest long_document prompt (6,550 tokens)


def write_fleet(path: Path, *, with_mini: bool = True) -> Path:
    """The built-in fleet's sim-large at other prices and window, and a model of its own, acme-mini."""
    fleet = yaml.safe_load(files("evalkit.emulator").joinpath("default_fleet.yaml").read_text())
    by_name = {model["name"]: model for model in fleet["models"]}
    large = dict(by_name["sim-large"], price=LARGE, context_window=LARGE_WINDOW)
    mini = dict(by_name["sim-medium"], name="acme-mini", wires=["anthropic"], price=MINI, context_window=MINI_WINDOW)
    fleet["models"] = [large, mini] if with_mini else [large]
    path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    return path


def make_fleet_run(tmp: Path) -> Path:
    """``evalkit run --fleet fleet.yaml`` over the smoke suite: targets openai:sim-large, anthropic:acme-mini."""
    fleet = write_fleet(tmp / "fleet.yaml")
    code = main(["run", "--no-progress", "--runs-dir", str(tmp / "runs"), "--suite", "smoke", "--fleet", str(fleet),
                 "--time-scale", "0", "--run-id", "custom"])
    assert code == 0
    return tmp / "runs" / "custom"


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fleet_run(tmp_path_factory.mktemp("fleet_run"))


def recommend(run_dir: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """``evalkit recommend`` with no bar to speak of (the cheapest target leads): the YAML's text and stderr."""
    code = main(["recommend", str(run_dir), "--classifier", "keywords", "--min-quality", "0", "--min-success", "0",
                 "-o", str(out)])
    assert code == 0
    return out.read_text(), capsys.readouterr().err


def test_recommend_prices_and_sizes_targets_by_the_runs_fleet(fleet_run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    text, err = recommend(fleet_run, tmp_path / "routing.yaml", capsys)
    targets = yaml.safe_load(text)["targets"]
    assert targets["openai:sim-large"] == {
        "model": "openai:sim-large", "base_url_env": "EVALKIT_EMULATOR_URL_OPENAI",
        "api_key_env": "EVALKIT_EMULATOR_KEY", "prices": LARGE, "context_window": LARGE_WINDOW}
    # The custom model lives on the emulator too, at its own price and window.
    assert targets["anthropic:acme-mini"] == {
        "model": "anthropic:acme-mini", "base_url_env": "EVALKIT_EMULATOR_URL",
        "api_key_env": "EVALKIT_EMULATOR_KEY", "prices": MINI, "context_window": MINI_WINDOW}
    fleet = json.loads((fleet_run / "manifest.json").read_text())["config"]["emulator"]["fleet"]
    assert f"run `evalkit emulate --fleet {fleet}`" in text  # the emulator to start is the run's fleet
    assert "warning" not in err and "context window unknown" not in " ".join(err.split())
    # Its window decides the long documents' route: acme-mini is too small for their longest prompt.
    table = " ".join(re.sub(r"[\u2500-\u257f]", " ", err).split())  # rich's table, borders and wrapping gone
    assert re.search(r"anthropic:acme-mini: context window 5,000 < [\d,]+ prompt tokens", table), table
    assert "anthropic:acme-mini" not in yaml.safe_load(text)["router"]["routes"]["long_document"]["targets"]


def test_the_recommended_config_reaches_the_runs_fleet_and_prices_by_it(
        fleet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    recommend(fleet_run, tmp_path / "routing.yaml", capsys)
    with Emulator(write_fleet(tmp_path / "served.yaml"), time_scale=0) as emu:
        monkeypatch.setenv("EVALKIT_EMULATOR_URL", emu.base_url)
        monkeypatch.setenv("EVALKIT_EMULATOR_URL_OPENAI", emu.openai_base_url)
        monkeypatch.setenv("EVALKIT_EMULATOR_KEY", "any")

        async def ask() -> evalkit.ChatResponse:
            async with evalkit.Router.from_config(tmp_path / "routing.yaml") as router:
                question = {"role": "user", "content": "Write a Python function that reverses a string."}
                return await router.complete(evalkit.ChatRequest(messages=[question], metadata={"task_type": "code"}))

        reply = asyncio.run(ask())
    assert reply.provider == "anthropic:acme-mini" and reply.cost is not None
    usage = reply.usage
    expected = (Decimal(str(MINI["input"])) * (usage.input_tokens - (usage.cached_input_tokens or 0))
                + Decimal(str(MINI["cached_input"])) * (usage.cached_input_tokens or 0)
                + Decimal(str(MINI["output"])) * usage.output_tokens) / 1_000_000
    assert reply.cost.total == expected


def run_with_fleet(run_dir: Path, dest: Path, fleet: str) -> Path:
    """A copy of ``run_dir`` whose manifest names ``fleet`` (what a fleet file edited or moved since looks like)."""
    shutil.copytree(run_dir, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["config"]["emulator"]["fleet"] = fleet
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_a_model_the_runs_fleet_lacks_is_named_unpriced_and_still_on_the_emulator(
        fleet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = write_fleet(tmp_path / "edited.yaml", with_mini=False)  # acme-mini removed after the run
    run_dir = run_with_fleet(fleet_run, tmp_path / "run", str(edited))
    text, err = recommend(run_dir, tmp_path / "routing.yaml", capsys)
    message = f"the run's fleet {edited} has no model for anthropic:acme-mini: unpriced and context window unknown"
    assert f"warning: {message}" in err and f"# warning: {message}" in text
    targets = yaml.safe_load(text)["targets"]
    # Unknown price is no price (unpriced), never 0; the window is unknown, not guessed.
    assert targets["anthropic:acme-mini"] == {"model": "anthropic:acme-mini", "base_url_env": "EVALKIT_EMULATOR_URL",
                                              "api_key_env": "EVALKIT_EMULATOR_KEY"}
    assert targets["openai:sim-large"]["prices"] == LARGE


def test_a_fleet_file_gone_since_the_run_is_said_not_replaced_by_the_built_in_one(
        fleet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone = tmp_path / "moved-away.yaml"
    run_dir = run_with_fleet(fleet_run, tmp_path / "run", str(gone))
    text, err = recommend(run_dir, tmp_path / "routing.yaml", capsys)
    assert f"manifest.json: config.emulator.fleet) cannot be read: {gone}: cannot read fleet file" in err, err
    assert "every emulated target is unpriced and its context window unknown" in err
    targets = yaml.safe_load(text)["targets"]
    for name in ("openai:sim-large", "anthropic:acme-mini"):
        assert "prices" not in targets[name] and "context_window" not in targets[name], targets[name]
        assert targets[name]["api_key_env"] == "EVALKIT_EMULATOR_KEY"


def test_a_run_on_the_built_in_fleet_keeps_its_prices_and_windows(tmp_path: Path) -> None:
    # What `evalkit run` records without --fleet: emulator settings, no fleet file.
    (tmp_path / "manifest.json").write_text(json.dumps({
        "simulated_targets": ["openai:sim-large", "gemini:sim-fast", "anthropic:acme-mini"],
        "config": {"emulator": {"seed": 0, "time_scale": 0.02}}}))
    found = emulated_targets(tmp_path)
    assert found.fleet_file is None and found.emulate_command == "evalkit emulate"
    assert found.windows == {"openai:sim-large": 128_000, "gemini:sim-fast": 1_048_576}
    assert found.configs["openai:sim-large"]["prices"] == {"input": 10.0, "cached_input": 10.0, "output": 30.0}
    assert found.configs["gemini:sim-fast"]["base_url_env"] == "EVALKIT_EMULATOR_URL"
    absent = "the built-in fleet has no model for anthropic:acme-mini: unpriced and context window unknown"
    assert found.problems == (absent,)
    # The (configs, windows) form says the same as a warning, so a notebook's reader sees it too.
    with pytest.warns(UserWarning, match="built-in fleet has no model for anthropic:acme-mini"):
        configs, windows = emulated_target_specs(tmp_path)
    assert "prices" not in configs["anthropic:acme-mini"] and "anthropic:acme-mini" not in windows
