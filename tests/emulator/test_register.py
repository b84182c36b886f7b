"""A user's own suite registered with the in-process emulator gets gradable answers.

Before ``Emulator.register``, a suite the emulator did not bundle got filler
text on every prompt: 0 passed, with no warning. These tests load a custom
JSONL suite the way ``evalkit run --suite my.jsonl`` does, ask evalkit's own
providers through the emulator and grade with the suite's own graders.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import evalkit
from evalkit.datasets import load_dataset
from evalkit.emulator import Emulator
from evalkit.emulator._answer_text import correct_answer, wrong_answer
from evalkit.emulator.answers import AnswerBook, BookItem
from evalkit.emulator.fleet import default_fleet, parse_fleet_text
from evalkit.graders import grader_for

from .helpers import TLS, write_jsonl

# Prompts no bundled suite has: numeric, multiple choice and exact match, in three task types.
CUSTOM_ROWS: list[dict[str, Any]] = [
    *({"id": f"num-{n}", "task_type": "math", "prompt": f"A crate holds {n} jars of quince jam and "
       f"{n + 7} jars of damson jam. How many jars are in the crate?", "reference": 2 * n + 7,
       "grader": "numeric"} for n in range(3, 11)),
    *({"id": f"mcq-{n}", "task_type": "factual_qa",
       "prompt": f"In the Vellmar archive, shelf {n} holds which volume?\n\nA. Atlas\nB. Bestiary\nC. "
                 f"Chronicle\nD. Dictionary", "reference": "ABCD"[n % 4],
       "grader": {"type": "mcq", "choices": ["A", "B", "C", "D"]}} for n in range(8)),
    *({"id": f"exact-{n}", "task_type": "classification",
       "prompt": f"Ticket {n}: 'the Orvane pump hums at night'. Reply with the queue name only.",
       "reference": ["plumbing", "noise", "billing"][n % 3], "grader": "exact"} for n in range(8)),
]
FLEET = """
version: 1
defaults:
  wires: [openai, anthropic, gemini]
  price: {input: 1, output: 2}
  context_window: 100000
  latency: {ttft_ms: 0, tokens_per_s: 1000}
  output_tokens: 40
models:
  - name: sure
    skills: {default: 1.0}
  - name: mathless
    skills: {math: 0.0, default: 1.0}
"""
URLS = {"openai": "openai_base_url", "anthropic": "anthropic_base_url", "gemini": "gemini_base_url"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_dataset(write_jsonl(tmp_path_factory.mktemp("suite") / "my_suite.jsonl", CUSTOM_ROWS))


def _passed(emu: Emulator, target: str, items: Any) -> tuple[int, list[str]]:
    """How many of ``items`` pass their own graders when ``target`` (``wire:model``) answers them."""
    wire, model = target.split(":")

    async def run() -> tuple[int, list[str]]:
        async with httpx.AsyncClient(verify=TLS, timeout=10) as client:
            provider = evalkit.get_provider(target, base_url=getattr(emu, URLS[wire]), api_key="k",
                                            client=client, prices=emu.fleet.model(model).price.as_prices())
            passed, texts = 0, []
            for item in items:
                response = await provider.complete(evalkit.ChatRequest(messages=item.messages, max_tokens=200))
                grade = await grader_for(item.grader).grade(item, response.text)
                passed += bool(grade.passed)
                texts.append(response.text)
            return passed, texts

    return asyncio.run(run())


def test_an_unregistered_suite_gets_filler_and_a_registered_one_gets_gradable_answers(suite: Any) -> None:
    with Emulator(default_fleet(), seed=0, time_scale=0.0) as emu:  # the bundled suites, as `evalkit run` has
        before, _ = _passed(emu, "openai:sim-large", suite.items)
        assert before == 0  # the defect: filler on every prompt
        assert set(emu.stats()["models"]["sim-large"]["answers"]) == {"filler"}
        result = emu.register(suite.items)
        assert (result.registered, result.already_known, result.shared_prompt) == (len(suite), 0, 0)
        emu.reset()
        after, _ = _passed(emu, "openai:sim-large", suite.items)
        answers = emu.stats()["models"]["sim-large"]["answers"]
    # sim-large is right about 80-90 % of the time: some pass, and the misses are wrong answers, not filler.
    assert 0.5 * len(suite) <= after < len(suite)
    assert set(answers) <= {"correct", "wrong"} and answers["correct"] == after


@pytest.mark.parametrize("wire", ["openai", "anthropic", "gemini"])
def test_registered_answers_follow_the_models_skill_per_task_type(suite: Any, wire: str) -> None:
    with Emulator(parse_fleet_text(FLEET), seed=3, time_scale=0.0, datasets=()) as emu:
        emu.register(suite.items)
        sure, _ = _passed(emu, f"{wire}:sure", suite.items)
        maths = [i for i in suite.items if i.task_type == "math"]
        others = [i for i in suite.items if i.task_type != "math"]
        assert sure == len(suite)  # a model that is always right passes every item by its own grader
        assert _passed(emu, f"{wire}:mathless", maths)[0] == 0  # math skill 0
        assert _passed(emu, f"{wire}:mathless", others)[0] == len(others)


def test_an_unknown_task_type_gets_the_models_default_skill(tmp_path: Path) -> None:
    rows = [{"id": f"legal-{n}", "task_type": "legal_reasoning", "prompt": f"Clause {n} of the Terrow lease: "
             f"how many days' notice (answer with a number)?", "reference": 30 + n, "grader": "numeric"}
            for n in range(6)]
    items = load_dataset(write_jsonl(tmp_path / "legal.jsonl", rows)).items
    fleet = parse_fleet_text(FLEET.replace("{math: 0.0, default: 1.0}", "{math: 1.0, default: 0.0}"))
    with Emulator(fleet, seed=0, time_scale=0.0, datasets=()) as emu:
        emu.register(items)
        assert _passed(emu, "openai:sure", items)[0] == 6
        assert _passed(emu, "openai:mathless", items)[0] == 0  # no legal_reasoning skill: default 0.0


def test_counts_say_what_was_new_known_or_shared(suite: Any) -> None:
    book = AnswerBook()
    assert tuple(book.register(suite.items)) == (len(suite), 0, 0)
    assert tuple(book.register(suite.items)) == (0, len(suite), 0)  # registering again changes nothing
    twin = dict(CUSTOM_ROWS[0], id="twin", reference=999)
    blank = {"id": "blank", "task_type": "math", "messages": [{"role": "system", "content": "no question"}]}
    assert tuple(book.register([twin, dict(twin, id="twin-2", reference=5), blank])) == (1, 0, 1)
    assert book.lookup(CUSTOM_ROWS[0]["prompt"]).reference == 999  # the suite's own reference is answered


def test_a_suite_reusing_a_bundled_prompt_is_answered_by_its_own_reference(tmp_path: Path) -> None:
    with Emulator(parse_fleet_text(FLEET), seed=0, time_scale=0.0) as emu:  # bundled suites loaded
        bundled = next(i for i in load_dataset("smoke").items if i.grader_type == "numeric")
        assert tuple(emu.register([bundled])) == (0, 1, 0)
        mine = {"id": "mine", "task_type": "math", "prompt": bundled.prompt_text,
                "reference": float(bundled.reference) + 1, "grader": "numeric"}
        items = load_dataset(write_jsonl(tmp_path / "mine.jsonl", [mine])).items
        assert tuple(emu.register(items)) == (1, 0, 0)
        assert _passed(emu, "openai:sure", items)[0] == 1


def test_register_is_safe_while_the_server_answers(suite: Any) -> None:
    """Four threads register overlapping halves while calls are answered: every prompt counted once."""
    items = list(suite.items)
    with Emulator(parse_fleet_text(FLEET), seed=0, time_scale=0.0, datasets=()) as emu:
        results, errors = [], []

        def register(chunk: list[Any]) -> None:
            try:
                for item in chunk:
                    results.append(emu.register([item]))
            except Exception as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(items[i % 2::2] + items,)) for i in range(4)]
        for thread in threads:
            thread.start()
        _passed(emu, "openai:sure", items[:6])  # answered meanwhile: no crash, whatever the timing
        for thread in threads:
            thread.join()
        assert not errors
        assert sum(r.registered for r in results) == len(items)  # each prompt registered exactly once
        assert sum(r.already_known for r in results) == 4 * len(items) + 2 * len(items) - len(items)
        assert _passed(emu, "openai:sure", items)[0] == len(items)


GRADER_FORMS = [
    {"reference": "plumbing", "grader": "exact"},  # no marker: the exact grader reads the last line
    {"reference": "plumbing", "grader": {"type": "exact", "answer_after": "Final answer:"}},
    {"reference": "the plumbing", "grader": "normalized"},
    {"reference": ["Rome", "Roma"], "grader": {"type": "alias", "containment": False}},
    {"reference": "42", "grader": {"type": "regex", "pattern": r"^42$"}},
]


@pytest.mark.parametrize("form", GRADER_FORMS, ids=lambda f: json.dumps(f["grader"]))
def test_every_grader_form_gets_an_answer_its_grader_passes(tmp_path: Path, form: dict[str, Any]) -> None:
    row = {"id": "q", "task_type": "factual_qa", "prompt": "Which queue takes the Orvane pump ticket?", **form}
    item = load_dataset(write_jsonl(tmp_path / "q.jsonl", [row])).items[0]
    book = AnswerBook()
    book.register([item])
    right = correct_answer(book.lookup(item.prompt_text))
    wrong = wrong_answer(book.lookup(item.prompt_text), random.Random(0), book)

    async def grade(text: str) -> bool:
        return bool((await grader_for(item.grader).grade(item, text)).passed)

    assert asyncio.run(grade(right)), right
    assert not asyncio.run(grade(wrong)), wrong


def test_concurrent_registrations_lose_nothing() -> None:
    """Threads switching as often as possible: every prompt counted once, every item in its peer pool."""
    items = [BookItem(str(i), "math", f"Crate {i}: how many jars?", i, {"type": "numeric"}) for i in range(3000)]
    book, results = AnswerBook(), []

    def register() -> None:
        for item in items:
            results.append(book.register([item]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=register) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sum(r.registered for r in results) == len(items) == len(book)
    assert len(book.peers("numeric")) == len(items)  # wrong answers borrow from this pool
