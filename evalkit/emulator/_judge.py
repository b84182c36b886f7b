"""LLM-as-judge prompts: recognise them and give a verdict the grader can parse.

A judge prompt is recognised by MT-Bench's ``[[rating]]`` instruction. The
question and the answer to judge are read from MT-Bench's markers
(``[Question]``, ``[The Start of Assistant's Answer]`` ...) or, failing that,
from ``Question:`` / ``Answer:`` lines. The verdict is high when the judged
answer is exactly what the emulator gives as the *correct* answer to that
question (recomputed, so it works across emulator restarts), low otherwise.
"""

from __future__ import annotations

import random
import re

from ._answer_text import correct_answer
from .answers import AnswerBook, normalise_prompt

__all__ = ["is_judge_prompt", "judge_verdict", "split_judge_prompt"]

_RATING_INSTRUCTION = re.compile(r"\[\[\s*rating\s*\]\]|rating:\s*\[\[\s*\d", re.IGNORECASE)
_MT_QUESTION = re.compile(r"\[Question\]\s*(.*?)\s*(?=\[The Start of )", re.DOTALL)
_MT_ANSWER = re.compile(
    r"\[The Start of Assistant(?: A)?'?s Answer\]\s*(.*?)\s*\[The End of Assistant(?: A)?'?s Answer\]",
    re.DOTALL,
)
_PLAIN = re.compile(
    r"(?:^|\n)\s*(?:Question|Prompt|Instruction)\s*:\s*(.*?)\n\s*(?:Answer|Response)\s*:\s*(.*?)(?=\n\s*\n[A-Z\[]|\Z)",
    re.DOTALL,
)


def is_judge_prompt(text: str) -> bool:
    """Whether ``text`` asks for an MT-Bench style ``[[rating]]`` verdict."""
    return "[[" in text and _RATING_INSTRUCTION.search(text) is not None


def split_judge_prompt(text: str) -> tuple[str | None, str | None]:
    """The question and the answer under judgement, when they can be found."""
    question, answer = _MT_QUESTION.search(text), _MT_ANSWER.search(text)
    if question and answer:
        return question.group(1), answer.group(1)
    plain = _PLAIN.search(text)
    if plain:
        return plain.group(1), plain.group(2)
    return None, None


def judge_verdict(text: str, book: AnswerBook, rng: random.Random, judge_skill: float) -> tuple[str, int]:
    """A short explanation ending in ``Rating: [[N]]``, and N.

    A judge is only as good as its model: with probability ``(1 - judge_skill) / 2``
    the rating is noise in 1..10 instead of the informed one.
    """
    question, answer = split_judge_prompt(text)
    recognised = question is not None and answer is not None and _is_expected_answer(question, answer, book)
    if rng.random() < (1.0 - judge_skill) / 2:
        score = rng.randint(1, 10)
    elif recognised:
        score = rng.randint(8, 10)
    else:
        score = rng.randint(2, 5)
    if score >= 7:
        reason = "The response answers the question accurately, is well organised and covers the key points."
    else:
        reason = "The response misses important parts of the question and is not accurate or helpful enough."
    return f"{reason}\n\nRating: [[{score}]]", score


def _is_expected_answer(question: str, answer: str, book: AnswerBook) -> bool:
    item = book.lookup(question)
    if item is None:
        return False
    return normalise_prompt(answer) == normalise_prompt(correct_answer(item))
