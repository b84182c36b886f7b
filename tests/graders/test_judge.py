"""judge: MT-Bench prompts, rating parsing, thresholds, unparseable replies, errors, the emulator as judge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from evalkit import ChatRequest, ChatResponse, Cost, FinishReason, Usage
from evalkit.errors import ConfigError, RateLimitError
from evalkit.graders import JudgeGrader, build_judge_prompt, grader_for, parse_rating

from .support import make_item, suite_items


class FakeJudge:
    """A judge target with canned replies; records every request."""

    def __init__(self, *replies: str, error: Exception | None = None) -> None:
        self.name = "fake:judge"
        self.replies = list(replies)
        self.error = error
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, on_delta=None) -> ChatResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        text = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        zero = Decimal(0)
        return ChatResponse(
            text=text,
            finish_reason=FinishReason.STOP,
            model="judge-model",
            usage=Usage(input_tokens=100, output_tokens=20),
            provider=self.name,
            cost=Cost(Decimal("0.001"), zero, zero, Decimal("0.002"), zero, source="test"),
        )


async def test_single_mode_prompt_follows_mt_bench_single_v1():
    item = suite_items("mt_bench")[0]
    judge = FakeJudge("Helpful and vivid.\n\nRating: [[8]]")
    result = await grader_for(item.grader, judge=judge).grade(item, "Aloha! My trip to Hawaii...")
    request = judge.requests[0]
    assert (request.temperature, request.max_tokens, request.system) == (
        0.0,
        512,
        "You are a helpful assistant.",
    )
    prompt = request.messages[-1].content
    assert prompt.startswith("[Instruction]\nPlease act as an impartial judge")
    assert "helpfulness, relevance, accuracy, depth, creativity, and level of detail" in prompt
    assert 'strictly following this format: "[[rating]]", for example: "Rating: [[5]]".' in prompt
    assert f"[Question]\n{item.prompt_text}\n\n[The Start of Assistant's Answer]\nAloha!" in prompt
    assert prompt.endswith("[The End of Assistant's Answer]")
    assert "Reference" not in prompt
    assert (result.score, result.passed) == (0.8, True)
    assert result.details["rating"] == 8.0
    assert result.details["judge_cost_usd"] == "0.003"
    assert request.metadata["item_id"] == item.id


async def test_reference_mode_numbers_every_reference_answer():
    item = suite_items("squality")[0]
    assert isinstance(item.reference, list) and len(item.reference) == 4
    judge = FakeJudge("Close to the references. Rating: [[7]]")
    result = await grader_for(item.grader, judge=judge).grade(item, "The culture on Venus is ...")
    prompt = judge.requests[0].messages[-1].content
    assert "Your evaluation should consider correctness and helpfulness." in prompt
    assert "You will be given 4 reference answers written independently and the assistant's answer." in prompt
    assert "[The Start of Reference Answer]\nReference answer 1:\n" + item.reference[0] in prompt
    for number, reference in enumerate(item.reference, 1):
        assert f"Reference answer {number}:\n{reference}" in prompt
    assert prompt.index("[The End of Reference Answer]") < prompt.index("[The Start of Assistant's Answer]")
    assert result.passed and result.score == 0.7


def test_reference_mode_with_one_reference_uses_the_original_wording():
    prompt = build_judge_prompt("What is 2+2?", "4", ["4"])
    assert "You will be given a reference answer and the assistant's answer." in prompt
    assert "[The Start of Reference Answer]\n4\n[The End of Reference Answer]" in prompt


@pytest.mark.parametrize(
    ("reply", "threshold", "score", "passed"),
    [
        ("Rating: [[7]]", 7, 0.7, True),
        ("Rating: [[6.5]]", 7, 0.65, False),
        ("Rating: [[6]]", 5, 0.6, True),
        ("I first thought [[3]] but on reflection: Rating: [[9]]", 7, 0.9, True),
        ("Rating: [[10]]", 10, 1.0, True),
        ("rating:[[ 2 ]]", 7, 0.2, False),
    ],
)
async def test_rating_parsing_and_threshold(reply, threshold, score, passed):
    item = make_item(None, {"type": "judge", "mode": "single", "threshold": threshold})
    result = await grader_for(item.grader, judge=FakeJudge(reply)).grade(item, "answer")
    assert result.score == pytest.approx(score)
    assert result.passed is passed


@pytest.mark.parametrize(
    "reply", ["Great answer, 9/10.", "Rating: [[11]]", "Rating: [[0]]", "", "Rating: [8]"]
)
async def test_unparseable_judge_reply_scores_zero_and_is_recorded(reply):
    item = make_item(None, {"type": "judge", "mode": "single"})
    result = await grader_for(item.grader, judge=FakeJudge(reply)).grade(item, "answer")
    assert (result.score, result.passed) == (0.0, False)
    assert "no 'Rating: [[N]]'" in result.reason
    assert result.details["judge_format_error"] is True
    assert result.details["judge_text"] == reply


async def test_judge_provider_errors_propagate():
    item = make_item(None, {"type": "judge", "mode": "single"})
    judge = FakeJudge(error=RateLimitError("slow down", provider="fake"))
    with pytest.raises(RateLimitError):
        await grader_for(item.grader, judge=judge).grade(item, "answer")


def test_judge_spec_without_a_judge_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a judge target"):
        grader_for({"type": "judge", "mode": "single"})
    with pytest.raises(ConfigError, match="threshold"):
        JudgeGrader(FakeJudge("x"), threshold=11)


async def test_rubric_is_added_to_the_instruction():
    item = make_item(None, {"type": "judge", "mode": "single", "rubric": "Penalise answers over 100 words."})
    judge = FakeJudge("Rating: [[5]]")
    await grader_for(item.grader, judge=judge).grade(item, "answer")
    assert "Also consider: Penalise answers over 100 words." in judge.requests[0].messages[-1].content


def test_parse_rating_accepts_half_points_and_rejects_out_of_range():
    assert parse_rating("Rating: [[8.5]]") == 8.5
    assert parse_rating("[[3]]") == 3.0
    assert parse_rating("Rating: [[12]]") is None
    assert parse_rating("no rating") is None


@pytest.mark.filterwarnings("ignore::evalkit.pricing.UnpricedModelWarning")  # sim models are unpriced here
async def test_emulator_as_judge_rates_good_answers_above_off_topic_ones():
    import evalkit
    from evalkit.emulator import Emulator

    from evalkit.emulator._answer_text import correct_answer
    from evalkit.emulator.answers import item_from_row
    items = suite_items("mt_bench")[:6]
    with Emulator(seed=0, time_scale=0) as emu:
        judge = evalkit.get_provider("openai:sim-large", base_url=emu.openai_base_url, api_key="test")
        good, bad = [], []
        for item in items:
            row = {
                "id": item.id,
                "task_type": item.task_type,
                "prompt": item.prompt_text,
                "reference": item.reference,
                "grader": dict(item.grader),
                "metadata": dict(item.metadata),
            }
            grader = grader_for(item.grader, judge=judge)
            good.append(await grader.grade(item, correct_answer(item_from_row(row))))
            bad.append(await grader.grade(item, "Sorry, I cannot help with that."))
    for result in good + bad:
        assert "judge_format_error" not in result.details, result.details["judge_text"]
        assert 1 <= result.details["rating"] <= 10
    assert sum(r.score for r in good) > sum(r.score for r in bad)
    assert sum(r.passed for r in good) >= 4 and sum(r.passed for r in bad) <= 2
