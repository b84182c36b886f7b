"""``judge``: LLM-as-judge, MT-Bench style, with any evalkit target (provider, router, emulator) as the judge.

The prompts follow the single-answer grading prompts of Zheng et al., "Judging
LLM-as-a-Judge with MT-Bench and Chatbot Arena" (NeurIPS 2023 Datasets and
Benchmarks; arXiv:2306.05685), as published in FastChat's
``fastchat/llm_judge/data/judge_prompts.jsonl`` (lm-sys/FastChat, Apache-2.0):
``single-v1`` for mode ``single`` and ``single-math-v1`` (reference-guided)
for mode ``reference``. The wording is theirs; evalkit adds a numbered list
when an item has several references (SQuALITY has four) and an optional
``rubric`` sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..types import ChatRequest, Message
from ._base import Grade

if TYPE_CHECKING:
    from ..datasets import Item

__all__ = ["JudgeGrader", "build_judge_prompt", "parse_rating"]

JUDGE_SYSTEM = "You are a helpful assistant."

_RATE = (
    "After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly "
    'following this format: "[[rating]]", for example: "Rating: [[5]]".'
)
_SINGLE_INSTRUCTION = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI "
    "assistant to the user question displayed below. Your evaluation should consider factors such as "
    "the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. "
    "Begin your evaluation by providing a short explanation. Be as objective as possible."
)
_REFERENCE_INSTRUCTION = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI "
    "assistant to the user question displayed below. Your evaluation should consider correctness and "
    "helpfulness. You will be given {given} and the assistant's answer. Begin your evaluation by "
    "comparing the assistant's answer with the {compared}. Identify and correct any mistakes. "
    "Be as objective as possible."
)
_ANSWER_BLOCK = "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
_REFERENCE_BLOCK = "[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]"

_LABELLED_RATING = re.compile(r"(?i:rating)\s*:?\s*\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_BARE_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_JUDGE_TEXT_LIMIT = 2000


def build_judge_prompt(
    question: str, answer: str, references: list[str] | None = None, rubric: str | None = None
) -> str:
    """The judge's user message: single-v1 without references, single-math-v1 with them."""
    if references:
        several = len(references) > 1
        instruction = _REFERENCE_INSTRUCTION.format(
            given=f"{len(references)} reference answers written independently"
            if several
            else "a reference answer",
            compared="reference answers" if several else "reference answer",
        )
        shown = (
            "\n\n".join(f"Reference answer {n}:\n{text}" for n, text in enumerate(references, 1))
            if several
            else references[0]
        )
        blocks = [f"[Question]\n{question}", _REFERENCE_BLOCK.format(reference=shown)]
    else:
        instruction, blocks = _SINGLE_INSTRUCTION, [f"[Question]\n{question}"]
    if rubric:
        instruction += f" Also consider: {rubric.strip()}"
    blocks.append(_ANSWER_BLOCK.format(answer=answer))
    return f"[Instruction]\n{instruction} {_RATE}\n\n" + "\n\n".join(blocks)


def parse_rating(text: str) -> float | None:
    """The judge's rating: the last ``Rating: [[N]]``, else the last ``[[N]]``; None unless 1 <= N <= 10."""
    for pattern in (_LABELLED_RATING, _BARE_RATING):
        found = pattern.findall(text or "")
        if found:
            value = float(found[-1])
            return value if 1.0 <= value <= 10.0 else None
    return None


class JudgeGrader:
    """An LLM rates the output 1–10; score = rating / 10, pass when rating >= ``threshold`` (default 7).

    ``judge`` is anything with ``name`` and ``async complete(ChatRequest)``: a
    provider, a router or the emulator's endpoint. The judge is called with
    temperature 0 and ``max_tokens`` (default 512). Mode ``reference`` shows
    the item's reference answer(s), numbered when there are several. A reply
    without a parseable rating scores 0 with ``details["judge_format_error"]``
    set; a :class:`~evalkit.ProviderError` from the judge propagates, so the
    runner records an error rather than a wrong answer.
    """

    name = "judge"

    def __init__(
        self,
        judge: Any,
        mode: str = "single",
        threshold: float = 7.0,
        max_tokens: int = 512,
        rubric: str | None = None,
    ) -> None:
        if judge is None or not callable(getattr(judge, "complete", None)):
            raise ConfigError(
                "grader 'judge' needs a judge target: grader_for(spec, judge=provider)", field="judge"
            )
        if mode not in ("single", "reference"):
            raise ConfigError(f"must be 'single' or 'reference', got {mode!r}", field="grader.mode")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 1 <= threshold <= 10:
            raise ConfigError(f"must be a number from 1 to 10, got {threshold!r}", field="grader.threshold")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"must be a positive integer, got {max_tokens!r}", field="grader.max_tokens")
        self.judge, self.mode, self.threshold = judge, mode, float(threshold)
        self.max_tokens, self.rubric = max_tokens, rubric

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], judge: Any = None) -> JudgeGrader:
        """The grader a spec describes (``mode``; optional ``threshold``, ``max_tokens``, ``rubric``)."""
        return cls(
            judge,
            mode=spec.get("mode", "single"),
            threshold=spec.get("threshold", 7.0),
            max_tokens=spec.get("max_tokens", 512),
            rubric=spec.get("rubric"),
        )

    def request(self, item: Item, output: str) -> ChatRequest:
        """The judge call for ``output``: the question is the item's last user message."""
        refs = None
        if self.mode == "reference":
            raw = item.reference
            refs = [str(r) for r in (raw if isinstance(raw, (list, tuple)) else [raw]) if r is not None]
            if not refs:
                raise ConfigError("judge mode 'reference' needs the item's reference", field="reference")
        prompt = build_judge_prompt(item.prompt_text, output, refs, self.rubric)
        return ChatRequest(
            messages=(Message("user", prompt),),
            system=JUDGE_SYSTEM,
            temperature=0.0,
            max_tokens=self.max_tokens,
            metadata={"purpose": "judge", "item_id": item.id, "judge_mode": self.mode},
        )

    async def grade(self, item: Item, output: str) -> Grade:
        """Ask the judge and turn its ``[[rating]]`` into a grade."""
        response = await self.judge.complete(self.request(item, output))
        rating = parse_rating(response.text)
        details: dict[str, Any] = {
            "judge": getattr(self.judge, "name", type(self.judge).__name__),
            "judge_model": response.model,
            "judge_text": response.text[-_JUDGE_TEXT_LIMIT:],
            "judge_usage": {
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
            },
            "judge_cost_usd": None if response.cost is None else str(response.cost.total),
        }
        if rating is None:
            details["judge_format_error"] = True
            return Grade(0.0, False, "judge reply has no 'Rating: [[N]]' with N in 1-10", details)
        details["rating"] = rating
        passed = rating >= self.threshold
        verdict = ">=" if passed else "<"
        return Grade(
            rating / 10.0, passed, f"judge rated {rating:g}/10 ({verdict} {self.threshold:g})", details
        )
