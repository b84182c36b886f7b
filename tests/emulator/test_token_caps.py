"""Output caps and thinking budgets as each vendor bills them (issue 11, item 3).

OpenAI's ``max_completion_tokens`` and Anthropic's ``max_tokens`` bound visible *and*
reasoning tokens; Gemini's ``maxOutputTokens`` bounds only the visible text, and its
thinking is bounded by ``thinkingConfig.thinkingBudget``. The emulator used to add its
reasoning tokens on top of every cap: ``sim-reasoner`` billed 378 tokens for a cap of 300.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from evalkit.emulator import Emulator
from evalkit.emulator._simulate import ChatCall
from evalkit.emulator._specs import Fleet, Spread, Thinking
from evalkit.emulator._wire_common import WireError
from evalkit.emulator.fleet import default_fleet

from .helpers import ANTHROPIC_AUTH, post

KEY = {"authorization": "Bearer k", "x-goog-api-key": "k",
        **ANTHROPIC_AUTH}
PROMPTS = [f"Describe item number {i} in detail." for i in range(40)]


def _variant(name: str, **changes: Any) -> Any:
    base = default_fleet().model("sim-reasoner")
    return dataclasses.replace(base, name=name, wires=("openai", "anthropic", "gemini"), **changes)


FLEET = Fleet((
    default_fleet().model("sim-reasoner"),
    default_fleet().model("sim-small"),  # does not think
    # Wants to think 2,000 tokens and to write 5,000 on every request: more than any cap below.
    _variant("deep-thinker", reasoning_tokens=Spread(2000.0), output_tokens=Spread(5000.0)),
    # Thinks like Gemini 2.5 Pro: dynamic by default, 128-32,768, cannot be turned off.
    _variant("always-thinks", reasoning_tokens=Spread(300.0),
             thinking=Thinking(default_budget=-1, max_budget=32_768, min_budget=128, can_disable=False)),
    # Thinks like 2.5 Flash-Lite: off unless the request asks.
    _variant("thinks-if-asked", reasoning_tokens=Spread(300.0),
             thinking=Thinking(default_budget=0, max_budget=24_576, min_budget=512)),
))


@pytest.fixture(scope="module")
def caps_emu() -> Iterator[Emulator]:
    with Emulator(FLEET, seed=3, time_scale=0.0, datasets=()) as emu:
        yield emu


def openai_chat(emu: Emulator, model: str, prompt: str, **body: Any) -> dict[str, Any]:
    reply = post(f"{emu.openai_base_url}/chat/completions", headers=KEY,
                 json={"model": model, "messages": [{"role": "user", "content": prompt}], **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def anthropic_messages(emu: Emulator, model: str, prompt: str, **body: Any) -> Any:
    return post(f"{emu.anthropic_base_url}/v1/messages", headers={**KEY, "anthropic-version": "2023-06-01"},
                json={"model": model, "messages": [{"role": "user", "content": prompt}], **body})


def gemini_generate(emu: Emulator, model: str, prompt: str, config: dict[str, Any]) -> Any:
    return post(f"{emu.gemini_base_url}/v1beta/models/{model}:generateContent", headers=KEY,
                json={"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                      "generationConfig": config})


# -- OpenAI: the cap includes reasoning --------------------------------------------------------------


def test_openai_cap_bounds_reasoning_and_visible_tokens_together(caps_emu: Emulator) -> None:
    # The reported fault: sim-reasoner billed 300 visible tokens plus its reasoning for a cap of 300.
    usages = [openai_chat(caps_emu, "sim-reasoner", p, max_completion_tokens=300)["usage"] for p in PROMPTS]
    completions = [u["completion_tokens"] for u in usages]
    reasoning = [u["completion_tokens_details"]["reasoning_tokens"] for u in usages]
    assert max(completions) <= 300, f"{sum(c > 300 for c in completions)} of {len(PROMPTS)} calls overran"
    assert min(reasoning) > 0  # it still thinks: reasoning eats part of the cap
    assert completions.count(300) > len(PROMPTS) // 2  # long answers are cut at the cap, reasoning included


def test_openai_reasoning_that_eats_the_cap_leaves_empty_text_and_finish_length(caps_emu: Emulator) -> None:
    for cap_field in ("max_completion_tokens", "max_tokens"):
        body = openai_chat(caps_emu, "deep-thinker", PROMPTS[0], **{cap_field: 300})
        choice, usage = body["choices"][0], body["usage"]
        assert choice["message"]["content"] == "" and choice["finish_reason"] == "length"
        assert usage["completion_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"] == 300


def test_openai_stream_obeys_the_same_cap(caps_emu: Emulator) -> None:
    reply = post(f"{caps_emu.openai_base_url}/chat/completions", headers=KEY, json={
        "model": "sim-reasoner", "messages": [{"role": "user", "content": PROMPTS[1]}], "stream": True,
        "max_completion_tokens": 200, "stream_options": {"include_usage": True}})
    events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: {")]
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == 200
    assert 0 < usage["completion_tokens_details"]["reasoning_tokens"] < 200


# -- Anthropic: max_tokens includes extended thinking ------------------------------------------------


def test_anthropic_thinks_only_when_asked_and_within_max_tokens(caps_emu: Emulator) -> None:
    plain = anthropic_messages(caps_emu, "deep-thinker", PROMPTS[2], max_tokens=1500).json()
    assert [b["type"] for b in plain["content"]] == ["text"] and plain["usage"]["output_tokens"] == 1500
    asked = anthropic_messages(caps_emu, "deep-thinker", PROMPTS[2], max_tokens=1500,
                               thinking={"type": "enabled", "budget_tokens": 1024}).json()
    assert [b["type"] for b in asked["content"]] == ["thinking", "text"]
    assert asked["content"][0]["signature"] and asked["content"][0]["thinking"]
    visible = asked["usage"]["output_tokens"] - 1024  # thinking took its whole budget of 1,024
    assert asked["usage"]["output_tokens"] == 1500 and asked["stop_reason"] == "max_tokens"
    assert len(asked["content"][1]["text"].split()) <= visible


def test_anthropic_never_thinks_unasked_even_where_gemini_cannot_turn_it_off(caps_emu: Emulator) -> None:
    # "always-thinks" refuses thinkingBudget 0 on Gemini; on Anthropic, thinking is off unless enabled,
    # whatever the model's Gemini bounds. It used to answer with a thinking block nobody asked for.
    body = anthropic_messages(caps_emu, "always-thinks", PROMPTS[5], max_tokens=200).json()
    assert [b["type"] for b in body["content"]] == ["text"]
    asked = anthropic_messages(caps_emu, "always-thinks", PROMPTS[5], max_tokens=2000,
                               thinking={"type": "enabled", "budget_tokens": 1024}).json()
    assert [b["type"] for b in asked["content"]] == ["thinking", "text"]


def test_anthropic_refuses_a_budget_below_1024_or_not_below_max_tokens(caps_emu: Emulator) -> None:
    small = anthropic_messages(caps_emu, "deep-thinker", "hi", max_tokens=2000,
                               thinking={"type": "enabled", "budget_tokens": 512})
    assert small.status_code == 400 and "greater than or equal to 1024" in small.json()["error"]["message"]
    over = anthropic_messages(caps_emu, "deep-thinker", "hi", max_tokens=1024,
                              thinking={"type": "enabled", "budget_tokens": 1024})
    assert over.status_code == 400 and over.json()["error"]["type"] == "invalid_request_error"
    assert "`max_tokens` must be greater than `thinking.budget_tokens`" in over.json()["error"]["message"]


def test_anthropic_stream_shows_the_thinking_block_and_bills_it(caps_emu: Emulator) -> None:
    reply = anthropic_messages(caps_emu, "deep-thinker", PROMPTS[3], max_tokens=1200, stream=True,
                               thinking={"type": "enabled", "budget_tokens": 1100})
    events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    deltas = {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"}
    final = next(e for e in events if e["type"] == "message_delta")
    assert starts == ["thinking", "text"] and {"thinking_delta", "signature_delta", "text_delta"} <= deltas
    assert final["usage"]["output_tokens"] == 1200 and final["delta"]["stop_reason"] == "max_tokens"


# -- Gemini: maxOutputTokens caps the candidates, thinkingBudget the thoughts -------------------------


def _gemini_usage(emu: Emulator, model: str, config: dict[str, Any],
                  prompt: str = PROMPTS[4]) -> dict[str, Any]:
    reply = gemini_generate(emu, model, prompt, config)
    assert reply.status_code == 200, reply.text
    return reply.json()["usageMetadata"]


def test_gemini_thinking_is_bounded_by_its_budget_not_by_max_output_tokens(caps_emu: Emulator) -> None:
    budgeted = _gemini_usage(caps_emu, "deep-thinker", {"maxOutputTokens": 100,
                                                        "thinkingConfig": {"thinkingBudget": 512}})
    assert budgeted["thoughtsTokenCount"] == 512 and budgeted["candidatesTokenCount"] == 100
    dynamic = _gemini_usage(caps_emu, "deep-thinker", {"maxOutputTokens": 100,
                                                       "thinkingConfig": {"thinkingBudget": -1}})
    default = _gemini_usage(caps_emu, "deep-thinker", {"maxOutputTokens": 100})
    assert dynamic["thoughtsTokenCount"] == default["thoughtsTokenCount"] == 2000  # up to the model's maximum
    off = _gemini_usage(caps_emu, "deep-thinker",
                        {"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 0}})
    assert "thoughtsTokenCount" not in off and off["candidatesTokenCount"] == 100


def test_gemini_default_budget_is_the_models_own(caps_emu: Emulator) -> None:
    assert "thoughtsTokenCount" not in _gemini_usage(caps_emu, "thinks-if-asked", {"maxOutputTokens": 50})
    asked = _gemini_usage(caps_emu, "thinks-if-asked",
                          {"maxOutputTokens": 50, "thinkingConfig": {"thinkingBudget": 600}})
    assert 0 < asked["thoughtsTokenCount"] <= 600
    assert _gemini_usage(caps_emu, "always-thinks", {"maxOutputTokens": 50})["thoughtsTokenCount"] > 0


def test_gemini_refuses_a_budget_that_is_not_an_integer_of_at_least_minus_one(caps_emu: Emulator) -> None:
    for bad in (-2, "lots", 1.5, True):
        reply = gemini_generate(caps_emu, "deep-thinker", "hi", {"thinkingConfig": {"thinkingBudget": bad}})
        assert reply.status_code == 400 and reply.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_model_dependent_refusals_are_the_vendors(caps_emu: Emulator) -> None:
    from evalkit.emulator import _wire_anthropic, _wire_gemini

    def call(wire: str, budget: int | None, max_tokens: int = 100) -> ChatCall:
        return ChatCall(wire=wire, model="m", messages=(("user", "hi"),), max_tokens=max_tokens,
                        thinking_budget=budget)

    with pytest.raises(WireError, match="only works in thinking mode"):
        _wire_gemini.WIRE.check_call(call("gemini", 0), FLEET.model("always-thinks"))
    with pytest.raises(WireError, match="between 128 and 32768"):
        _wire_gemini.WIRE.check_call(call("gemini", 64), FLEET.model("always-thinks"))
    with pytest.raises(WireError, match="not enabled"):
        _wire_gemini.WIRE.check_call(call("gemini", 1024), FLEET.model("sim-small"))
    with pytest.raises(WireError, match="not supported"):
        _wire_anthropic.WIRE.check_call(call("anthropic", 1024, 2048), FLEET.model("sim-small"))
    _wire_gemini.WIRE.check_call(call("gemini", -1), FLEET.model("always-thinks"))  # accepted
    _wire_gemini.WIRE.check_call(call("gemini", 0), FLEET.model("thinks-if-asked"))
    _wire_anthropic.WIRE.check_call(call("anthropic", 0), FLEET.model("sim-small"))
