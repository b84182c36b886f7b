"""The answer book reads suites with evalkit.datasets: every format it reads, its checks, its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalkit.datasets import bundled_suites, load_dataset
from evalkit.emulator import AnswerBook, Emulator
from evalkit.emulator.answers import book_item
from evalkit.emulator.fleet import load_fleet
from evalkit.errors import ConfigError

from .helpers import post


def test_a_csv_suite_gets_gradable_answers(tmp_path: Path, deterministic_fleet_file: Path) -> None:
    # The runner loads CSV suites; the emulator used to read every file as JSON lines and refuse them.
    suite = tmp_path / "sums.csv"
    suite.write_text("id,task_type,prompt,reference,grader\ns1,math,What is 19 plus 23?,42,numeric\n",
                     encoding="utf-8")
    with Emulator(load_fleet(deterministic_fleet_file), time_scale=0.0, datasets=[suite]) as emu:
        assert len(emu.book) == 1
        reply = post(f"{emu.openai_base_url}/chat/completions", headers={"authorization": "Bearer k"},
                     json={"model": "sure", "messages": [{"role": "user", "content": "What is 19 plus 23?"}]})
    assert reply.json()["choices"][0]["message"]["content"].endswith("The answer is 42.")


def test_a_bundled_suite_is_named_as_the_runner_names_it() -> None:
    name = "smoke" if "smoke" in bundled_suites() else bundled_suites()[0]
    assert len(AnswerBook.from_files([name])) == len({item.prompt_text for item in load_dataset(name)})


def test_a_bad_row_is_reported_not_skipped(tmp_path: Path) -> None:
    # A row the runner refuses (no task type) used to be answered silently, with an empty grader.
    suite = tmp_path / "odd.jsonl"
    suite.write_text('{"id": "a", "task_type": "math", "prompt": "1+1?", "reference": 2, "grader": "numeric"}\n'
                     '{"id": "b", "prompt": "2+2?", "reference": 4, "grader": "numeric"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"odd\.jsonl:2: task_type: is required"):
        AnswerBook.from_files([suite])


@pytest.mark.parametrize("suite", bundled_suites())
def test_the_book_holds_every_item_of_a_bundled_suite_as_loaded(suite: str) -> None:
    dataset = load_dataset(suite)
    book = AnswerBook.from_files([dataset.path])
    for item in dataset:
        assert book.lookup(item.prompt_text) is not None
    first: dict[str, Any] = {}
    for item in dataset:
        first.setdefault(item.prompt_text, item)
    assert all(book.lookup(prompt) == book_item(item) for prompt, item in first.items())
