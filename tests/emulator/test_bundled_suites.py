"""The bundled suites (datasets/*.jsonl): every item gets a gradable right and wrong answer."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evalkit.emulator import Emulator
from evalkit.emulator._answer_text import correct_answer, wrong_answer
from evalkit.emulator._seeding import rng_for
from evalkit.emulator._simulate import ChatCall, Simulator
from evalkit.emulator.answers import AnswerBook, bundled_dataset_files
from evalkit.emulator.fleet import default_fleet, load_fleet

from .helpers import post

SUITES = bundled_dataset_files()
pytestmark = pytest.mark.skipif(not SUITES, reason="no bundled suites (datasets/*.jsonl) in this checkout")

# Runs each (code, tests, entry point) in a fresh interpreter and prints which pass.
_CODE_RUNNER = """
import json, sys
results = []
for code, tests, entry in json.load(sys.stdin):
    scope = {}
    try:
        exec(code + "\\n" + tests, scope)
        scope["check"](scope[entry])
        results.append(True)
    except Exception:
        results.append(False)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def book() -> AnswerBook:
    return AnswerBook.from_files(SUITES)


def _python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


def test_right_answers_contain_the_reference(book: AnswerBook) -> None:
    for grader, items in (
        ("numeric", book.peers("numeric")),
        ("mcq", book.peers("mcq")),
        ("alias", book.peers("alias")),
        ("label", book.peers("label")),
    ):
        for item in items:
            text = correct_answer(item)
            reference = item.reference[0] if isinstance(item.reference, list) else item.reference
            assert str(reference) in text, (grader, item.id, text)
    for item in book.peers("exact"):
        assert correct_answer(item) == f"So the answer is {item.reference}."
    for item in book.peers("slot_f1"):
        assert json.loads(correct_answer(item)) == item.reference


def test_code_answers_pass_and_wrong_ones_fail_their_tests(book: AnswerBook) -> None:
    items = book.peers("code_exec")
    if not items:
        pytest.skip("no code_exec items")
    cases = []
    for item in items:
        tests, entry = item.grader["tests"], item.grader["entry_point"]
        cases.append((_python_block(correct_answer(item)), tests, entry))
        cases.append((_python_block(wrong_answer(item, rng_for(0, item.id), book)), tests, entry))
    out = subprocess.run(
        [sys.executable, "-c", _CODE_RUNNER],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    results = json.loads(out)
    assert results[0::2] == [True] * len(items)  # right answers pass
    assert results[1::2] == [False] * len(items)  # wrong answers fail


def test_known_prompts_are_recognised_over_http(deterministic_fleet_file: Path) -> None:
    smoke = [p for p in SUITES if p.stem == "smoke"] or SUITES[:1]
    rows = [json.loads(line) for line in smoke[0].read_text(encoding="utf-8").splitlines() if line.strip()]
    with Emulator(load_fleet(deterministic_fleet_file), time_scale=0.0, datasets=smoke) as emu:
        for row in rows[:25]:
            messages = row.get("messages") or [{"role": "user", "content": row["prompt"]}]
            for model in ("sure", "never"):
                r = post(
                    f"{emu.openai_base_url}/chat/completions",
                    headers={"authorization": "Bearer k"},
                    json={"model": model, "messages": messages, "max_tokens": 4000},
                )
                assert r.status_code in (200, 400), r.text  # 400: longer than the test fleet's window
        answers = emu.stats()["models"]
    assert answers["sure"]["answers"].get("correct", 0) >= 1
    assert "correct" not in answers["never"]["answers"]


def test_share_of_right_answers_matches_the_fleets_skills(book: AnswerBook) -> None:
    spec = default_fleet().model("sim-large")
    simulator = Simulator(seed=0, time_scale=0.0, book=book)
    items = [
        book.lookup(item.prompt)
        for grader in ("numeric", "exact", "mcq", "alias", "label", "slot_f1", "code_exec", "judge")
        for item in book.peers(grader)
    ]
    right = sum(
        simulator.generate(ChatCall("openai", spec.name, (("user", i.prompt),)), spec).answer_kind
        == "correct"
        for i in items
    )
    expected = sum(spec.skill(i.task_type) for i in items)
    sd = math.sqrt(sum(spec.skill(i.task_type) * (1 - spec.skill(i.task_type)) for i in items))
    assert abs(right - expected) <= 4 * sd + 1


def test_every_item_of_the_suites_is_indexed(book: AnswerBook) -> None:
    rows: list[Any] = []
    for path in SUITES:
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = {row["id"] for row in rows}
    found = {
        item.id
        for grader in (
            "numeric",
            "exact",
            "mcq",
            "alias",
            "label",
            "slot_f1",
            "code_exec",
            "judge",
            "json",
            "json_schema",
            "regex",
            "normalized",
        )
        for item in book.peers(grader)
    }
    assert len(found) == len(book) and found <= ids and len(found) >= 0.95 * len(ids)
