"""Answers that graders can grade: conventions per grader type, skill, determinism, judging."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from evalkit.emulator._simulate import ChatCall, Simulator
from evalkit.emulator.answers import AnswerBook, BookItem, item_from_row
from evalkit.emulator.fleet import default_fleet

from .helpers import FIXTURE_ROWS, post

ROWS = {row["id"]: row for row in FIXTURE_ROWS}


def _prompt(row: dict[str, Any]) -> list[dict[str, str]]:
    return row.get("messages") or [{"role": "user", "content": row["prompt"]}]


def chat(emu: Any, model: str, messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    response = post(
        f"{emu.openai_base_url}/chat/completions",
        headers={"authorization": "Bearer k"},
        json={"model": model, "messages": messages, **extra},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def answer(emu: Any, model: str, item_id: str, **extra: Any) -> str:
    return chat(emu, model, _prompt(ROWS[item_id]), **extra)["choices"][0]["message"]["content"]


def run_code_block(text: str, tests: str, entry_point: str) -> bool:
    """Whether the python block in ``text`` passes ``tests`` (our own fixture code only)."""
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    scope: dict[str, Any] = {}
    exec(code + "\n" + tests, scope)  # noqa: S102 - fixture code written in this file
    try:
        scope["check"](scope[entry_point])
    except AssertionError:
        return False
    return True


def test_right_answers_follow_the_grader_conventions(det_emu: Any) -> None:
    assert answer(det_emu, "sure", "fx-num").endswith("\nThe answer is 42.")
    assert answer(det_emu, "sure", "fx-exact") == "So the answer is (B)."
    assert answer(det_emu, "sure", "fx-bool") == "True"  # no answer_after: the exact grader reads the last line
    assert answer(det_emu, "sure", "fx-mcq") == "The answer is (C)."
    assert answer(det_emu, "sure", "fx-alias") == "The answer is Rome."
    assert answer(det_emu, "sure", "fx-label") == "card_arrival"
    assert json.loads(answer(det_emu, "sure", "fx-slots")) == ROWS["fx-slots"]["reference"]
    code = ROWS["fx-code"]["grader"]
    assert run_code_block(answer(det_emu, "sure", "fx-code"), code["tests"], code["entry_point"])
    assert json.loads(answer(det_emu, "sure", "fx-json")) == {"a": 1}
    poem = answer(det_emu, "sure", "fx-judge", max_tokens=1000)
    assert "autumn" in poem.lower() and "river" in poem.lower() and len(poem) > 300


def test_wrong_answers_keep_the_format_but_not_the_content(det_emu: Any) -> None:
    number = re.fullmatch(r".*\nThe answer is (-?[\d.]+)\.", answer(det_emu, "never", "fx-num"), re.DOTALL)
    assert number and float(number.group(1)) != 42
    assert answer(det_emu, "never", "fx-exact") in ("So the answer is (A).", "So the answer is (C).")
    assert answer(det_emu, "never", "fx-bool") == "False"
    assert answer(det_emu, "never", "fx-mcq") in (
        "The answer is (A).",
        "The answer is (B).",
        "The answer is (D).",
    )
    assert (
        answer(det_emu, "never", "fx-alias") == "The answer is Paris."
    )  # borrowed from the other alias item
    assert answer(det_emu, "never", "fx-label") in ("change_pin", "exchange_rate")
    slots = json.loads(answer(det_emu, "never", "fx-slots"))
    assert slots != ROWS["fx-slots"]["reference"] and len(slots) == 2
    code = ROWS["fx-code"]["grader"]
    assert not run_code_block(answer(det_emu, "never", "fx-code"), code["tests"], code["entry_point"])
    with pytest.raises(ValueError):
        json.loads(answer(det_emu, "never", "fx-json"))
    good = answer(det_emu, "sure", "fx-judge", max_tokens=1000)
    assert answer(det_emu, "never", "fx-judge", max_tokens=1000) != good


def test_answers_are_the_same_on_every_wire(det_emu: Any) -> None:
    prompt = ROWS["fx-mcq"]["prompt"]
    anthropic = post(
        f"{det_emu.anthropic_base_url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={"model": "never", "max_tokens": 50, "messages": [{"role": "user", "content": prompt}]},
    ).json()
    gemini = post(
        f"{det_emu.gemini_base_url}/v1beta/models/never:generateContent?key=k",
        json={"contents": [{"role": "user", "parts": [{"text": prompt}]}]},
    ).json()
    openai_text = answer(det_emu, "never", "fx-mcq")
    assert anthropic["content"][0]["text"] == openai_text
    assert gemini["candidates"][0]["content"]["parts"][0]["text"] == openai_text


def test_correct_share_tracks_the_models_skill() -> None:
    # 1,000 synthetic numeric items: the share answered right is within 4 sigma of the skill.
    items = [
        BookItem(f"q{i}", "math", f"What is {i} plus {i}?", 2 * i, {"type": "numeric"}) for i in range(1000)
    ]
    book = AnswerBook(items)
    spec = default_fleet().model("sim-medium")
    simulator = Simulator(seed=3, time_scale=0.0, book=book)
    right = sum(
        simulator.generate(ChatCall("openai", spec.name, (("user", it.prompt),)), spec).answer_kind
        == "correct"
        for it in items
    )
    p = spec.skill("math")
    assert abs(right / 1000 - p) <= 4 * math.sqrt(p * (1 - p) / 1000)


def test_repeated_samples_vary_per_item_like_a_real_models() -> None:
    # 400 items × 8 samples (request seeds): the mean stays the skill, answers vary between samples,
    # yet each item keeps its own difficulty: two samples agree more often than independent coins.
    items = [BookItem(f"q{i}", "math", f"What is {i} times 3?", 3 * i, {"type": "numeric"}) for i in range(400)]
    spec = default_fleet().model("sim-small")
    simulator = Simulator(seed=5, time_scale=0.0, book=AnswerBook(items))

    def right(item: BookItem, **call: Any) -> bool:
        chat_call = ChatCall("openai", spec.name, (("user", item.prompt),), **call)
        return simulator.generate(chat_call, spec).answer_kind == "correct"

    grid = [[right(it, seed=seed) for seed in range(8)] for it in items]
    p = spec.skill("math")
    share = sum(map(sum, grid)) / (400 * 8)
    assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / 400)
    mixed = sum(0 < sum(row) < 8 for row in grid)
    assert mixed > 40, "some items are right in one sample and wrong in another"
    both = sum(row[0] and row[1] for row in grid) / 400
    assert both > p * p + 0.03, "pass^2 is above skill squared: samples of one item are alike"
    # The same sample again (a retry), temperature 0 or no seed: the same answer every time.
    assert [right(it, seed=3) for it in items] == [row[3] for row in grid]
    assert len({tuple(right(it, seed=s, temperature=0.0) for it in items) for s in (1, 2)}) == 1
    assert len({tuple(right(it, seed=None) for it in items) for _ in (1, 2)}) == 1


def test_same_seed_same_answers_and_timings_other_seed_other_draws() -> None:
    items = [
        BookItem(f"q{i}", "factual_qa", f"Question number {i}?", ["x"], {"type": "alias"}) for i in range(200)
    ]
    book = AnswerBook(items)
    spec = default_fleet().model("sim-small")

    def run(seed: int) -> list[tuple[str, float, float]]:
        simulator = Simulator(seed=seed, time_scale=1.0, book=book)
        out = []
        for it in items:
            gen = simulator.generate(ChatCall("openai", spec.name, (("user", it.prompt),)), spec)
            out.append((gen.text, gen.timing.ttft_s, gen.total_s))
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_unknown_prompts_get_deterministic_filler_respecting_max_tokens(det_emu: Any) -> None:
    messages = [{"role": "user", "content": "Tell me something I have never asked before."}]
    first = chat(det_emu, "sure", messages, max_tokens=7)
    again = chat(det_emu, "sure", messages, max_tokens=7)
    assert first["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    assert first["choices"][0]["finish_reason"] == "length"
    assert first["usage"]["completion_tokens"] == 7
    longer = chat(det_emu, "sure", messages)
    assert longer["choices"][0]["finish_reason"] == "stop"
    assert longer["usage"]["completion_tokens"] > 7


def test_stop_sequences_cut_the_answer(det_emu: Any) -> None:
    text = answer(det_emu, "sure", "fx-num", stop=["The answer"])
    assert text == "Working through the quantities in the problem step by step gives the result.\n"


JUDGE_TEMPLATE = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
    "to the user question displayed below. After providing your explanation, you must rate the response on a "
    'scale of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n\n'
    "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)


def _rating(emu: Any, judge: str, question: str, judged: str) -> int:
    prompt = JUDGE_TEMPLATE.format(question=question, answer=judged)
    text = chat(emu, judge, [{"role": "user", "content": prompt}])["choices"][0]["message"]["content"]
    return int(re.search(r"Rating: \[\[(\d+)\]\]", text).group(1))


def test_judge_rates_the_emulators_correct_answers_high(det_emu: Any) -> None:
    question = ROWS["fx-judge"]["prompt"]
    good = answer(det_emu, "sure", "fx-judge", max_tokens=1000)
    bad = answer(det_emu, "never", "fx-judge", max_tokens=1000)
    assert _rating(det_emu, "sure", question, good) >= 8
    assert _rating(det_emu, "sure", question, bad) <= 5
    assert _rating(det_emu, "sure", ROWS["fx-num"]["prompt"], answer(det_emu, "sure", "fx-num")) >= 8
    assert _rating(det_emu, "sure", ROWS["fx-num"]["prompt"], answer(det_emu, "never", "fx-num")) <= 5


def test_rows_without_a_prompt_are_skipped() -> None:
    assert item_from_row({"id": 1, "messages": [{"role": "assistant", "content": "hi"}]}) is None
    assert item_from_row({"prompt": "no id"}) is None
    item = item_from_row({"id": 5, "prompt": "p", "grader": "label", "reference": "x"})
    assert item is not None and item.id == "5" and item.grader_type == "label" and item.task_type == "default"


def test_judge_recognises_the_graders_own_judge_prompt(det_emu: Any) -> None:
    from evalkit import graders
    question = ROWS["fx-judge"]["prompt"]
    good = answer(det_emu, "sure", "fx-judge", max_tokens=1000)
    bad = answer(det_emu, "never", "fx-judge", max_tokens=1000)
    for references in (None, ["A reference poem about autumn."]):
        for judged, high in ((good, True), (bad, False)):
            prompt = graders.build_judge_prompt(question, judged, references)
            reply = chat(det_emu, "sure", [{"role": "user", "content": prompt}])["choices"][0]["message"][
                "content"
            ]
            rating = graders.parse_rating(reply)
            assert (rating >= 8) if high else (rating <= 5), (references, high, reply)
