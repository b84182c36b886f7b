"""Emulators shared by the emulator tests: started once per module group, reset between tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkit.emulator import Emulator
from evalkit.emulator._specs import Fleet
from evalkit.emulator.fleet import default_fleet, load_fleet

from .helpers import DETERMINISTIC_FLEET, FIXTURE_ROWS, write_jsonl


@pytest.fixture(scope="session")
def fixture_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small JSONL dataset with one item per grader type."""
    return write_jsonl(tmp_path_factory.mktemp("data") / "fixture.jsonl", FIXTURE_ROWS)


@pytest.fixture(scope="session")
def deterministic_fleet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models that are always right (``sure``), never right (``never``), flaky and scripted."""
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(DETERMINISTIC_FLEET, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def _default_emulator(fixture_dataset: Path):
    with Emulator(seed=0, time_scale=0.0, datasets=[fixture_dataset], stall_s=10) as emu:
        yield emu


@pytest.fixture
def emu(_default_emulator: Emulator) -> Emulator:
    """The built-in fleet at zero delay, answering the fixture dataset; fresh stats per test."""
    _default_emulator.reset()
    return _default_emulator


@pytest.fixture(scope="session")
def _deterministic_emulator(fixture_dataset: Path, deterministic_fleet_file: Path):
    fleet = load_fleet(deterministic_fleet_file)
    with Emulator(fleet, seed=7, time_scale=0.0, datasets=[fixture_dataset], stall_s=10) as emu:
        yield emu


@pytest.fixture
def det_emu(_deterministic_emulator: Emulator) -> Emulator:
    """The deterministic test fleet at zero delay; fresh stats and scripts per test."""
    _deterministic_emulator.reset()
    return _deterministic_emulator


@pytest.fixture(scope="session")
def thinking_emu() -> Iterator[Emulator]:
    """``sim-thinker``: sim-reasoner served on the Anthropic and Gemini wires (the built-in fleet thinks on
    OpenAI only), for extended thinking and Gemini thoughts."""
    thinker = dataclasses.replace(default_fleet().model("sim-reasoner"), name="sim-thinker",
                                  wires=("anthropic", "gemini"))
    with Emulator(Fleet((thinker,)), seed=0, time_scale=0.0, datasets=()) as emu:
        yield emu
