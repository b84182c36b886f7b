"""Every recording in ``../shared/wire`` is replayed by some conformance test, or skipped with a reason.

And every recorded 200 model call, of every vendor, streamed or not, comes back
as an answer, except the few recordings that are refusals, empty answers or
errors inside a 200 (``recordings.NOT_ANSWERS``): the rule that turns a 200 into
a failed attempt (``providers/_answers.py``) must not catch a real answer.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

import pytest

import evalkit

from . import test_anthropic_wire, test_gemini_wire, test_openai_chat_wire, test_openai_responses_wire
from .recordings import NOT_ANSWERS, WIRE, Interaction, load, needs_wire, request_for

MODULES = (test_openai_chat_wire, test_openai_responses_wire, test_anthropic_wire, test_gemini_wire)

_MODEL_CALL_PATHS = ("/chat/completions", "/responses", "/messages", ":generateContent",
                     ":streamGenerateContent")
"""How a recorded request's URL path ends when it asks a model for an answer (not a cache or a count)."""


@needs_wire
def test_every_recording_is_covered_or_skipped_with_a_reason() -> None:
    files = {str(p.relative_to(WIRE)) for p in WIRE.glob("*/*.yaml")}
    covered = set().union(*(m.COVERED for m in MODULES))
    skipped = {f: why for m in MODULES for f, why in m.SKIPPED.items()}
    assert all(skipped.values()), "every skip needs its reason"
    assert files - covered - set(skipped) == set(), "recordings no test replays"
    assert len(files & covered) >= 60, f"only {len(files & covered)} of {len(files)} files covered"


def _answered() -> dict[str, tuple[Interaction, Callable[[Interaction], evalkit.HTTPProvider]]]:
    """Every recorded 200 model call some module replays, by id, with that module's ``provider_for``."""
    return {it.id: (it, m.provider_for) for m in MODULES for it in m.MODEL_CALLS if it.status == 200}


ANSWERED = _answered() if WIRE.is_dir() else {}


@needs_wire
def test_every_recorded_200_model_call_is_replayed() -> None:
    recorded = {it.id for p in WIRE.glob("*/*.yaml") for it in load(str(p.relative_to(WIRE)))
                if it.status == 200 and urlsplit(it.uri).path.endswith(_MODEL_CALL_PATHS)}
    assert set(ANSWERED) == recorded
    assert set(NOT_ANSWERS) <= recorded
    assert len(recorded) == 80  # 87 recorded 200s, less 7 cache, conversation, count and embedding calls


@needs_wire
@pytest.mark.filterwarnings("ignore::UserWarning")  # unpriced replayed model names
@pytest.mark.parametrize("call_id", sorted(ANSWERED))
async def test_recorded_200_is_an_answer_unless_the_recording_is_not_one(call_id: str) -> None:
    it, provider_for = ANSWERED[call_id]
    provider = provider_for(it)
    if call_id in NOT_ANSWERS:
        kind, _ = NOT_ANSWERS[call_id]
        with pytest.raises(evalkit.ProviderError) as caught:
            await provider.complete(request_for(it))
        assert caught.value.kind is kind
        return
    response = await provider.complete(request_for(it))
    # What made it an answer: text that is not only whitespace, or a tool call.
    assert response.text.strip() or response.tool_calls
