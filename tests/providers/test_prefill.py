"""Assistant prefill: what each vendor is sent, which targets continue it, and how the answer joins it.

A request whose last message is an assistant turn is a prefill the model must
continue (a router's mid-stream ``continue`` sends the partial answer this
way). The answers below are REAL recorded answers from ``../shared/wire``,
read as the continuation of a prefill cut from their own text: the caller's
text plus the joined answer must be the recorded answer, exactly once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import evalkit
from evalkit import ChatRequest, Message, ToolCall
from evalkit.providers import VENDORS, get_provider
from evalkit.errors import ErrorKind
from evalkit.providers._answers import unusable
from evalkit.providers._framing import SSEDecoder
from evalkit.providers._prefill import PREFILL_SUPPORT, PrefillJoin, accepts_prefill, prefill_text
from evalkit.providers.anthropic import AnthropicWire
from evalkit.providers._wire import Reply
from evalkit.providers.openai_chat import OpenAIChatWire
from evalkit.types import FinishReason

from .recordings import FAKE_KEY, load, needs_wire

PREFILL = "Autumn moon \n"
"""Ends in whitespace, as a partial answer cut between two words does."""


def _prefilled(prefill: str = PREFILL, *, stream: bool = False) -> ChatRequest:
    return ChatRequest(messages=[Message("user", "Write a haiku about the moon. "),
                                 Message("assistant", prefill)], stream=stream)


def _body(target: str, request: ChatRequest) -> dict[str, Any]:
    """The JSON body ``target`` puts on the wire for ``request``."""
    provider = get_provider(target, api_key=FAKE_KEY, base_url="http://prefill.invalid")
    return dict(provider.wire.build(request, provider.model, stream=request.stream).body)


# -- what goes on the wire ------------------------------------------------------------------------


def test_anthropic_gets_the_prefill_last_without_its_trailing_whitespace() -> None:
    """Anthropic answers 400 'final assistant content cannot end with trailing whitespace'."""
    body = _body("anthropic:claude-3-5-haiku-latest", _prefilled(stream=True))
    assert body["messages"] == [{"role": "user", "content": "Write a haiku about the moon. "},
                                {"role": "assistant", "content": "Autumn moon"}]
    history = ChatRequest(messages=[Message("user", "hi"), Message("assistant", "Hello there "),
                                    Message("user", "go on")])
    assert _body("anthropic:claude-3-5-haiku-latest", history)["messages"][1]["content"] == "Hello there "


def test_mistral_flags_the_prefill_with_prefix_true() -> None:
    """Without it Mistral answers 400 'Expected last role User or Tool (or Assistant with prefix True)'."""
    messages = _body("mistral:mistral-small-latest", _prefilled())["messages"]
    assert messages[-1] == {"role": "assistant", "content": PREFILL, "prefix": True}
    assert all("prefix" not in m for m in messages[:-1])
    unprefilled = ChatRequest(messages=[Message("user", "hi"), Message("assistant", "Hello"),
                                        Message("user", "go on")])
    assert all("prefix" not in m for m in _body("mistral:mistral-small-latest", unprefilled)["messages"])
    calling = ChatRequest(messages=[Message("user", "weather?"),
                                    Message("assistant", "", (ToolCall("c1", "weather", "{}"),))])
    assert "prefix" not in _body("mistral:mistral-small-latest", calling)["messages"][-1]


@pytest.mark.parametrize("target", ["groq:llama-3.3-70b-versatile", "ollama:qwen3:0.6b",
                                    "openrouter:anthropic/claude-3.5-sonnet", "llamacpp:gemma-3-270m",
                                    "deepseek:deepseek-chat", "openai:gpt-4o-mini", "azure:my-deployment"])
def test_openai_compatible_servers_get_a_plain_trailing_assistant_message(target: str) -> None:
    body = _body(target, _prefilled())
    assert body["messages"][-1] == {"role": "assistant", "content": PREFILL}


def test_gemini_gets_a_trailing_model_turn() -> None:
    body = _body("gemini:gemini-2.0-flash", _prefilled())
    assert body["contents"][-1] == {"role": "model", "parts": [{"text": PREFILL}]}


def test_what_is_a_prefill() -> None:
    assert prefill_text(_prefilled()) == PREFILL
    assert prefill_text(ChatRequest.from_prompt("hi")) is None
    calling = ChatRequest(messages=[Message("user", "x"),
                                    Message("assistant", "", (ToolCall("c", "f", "{}"),))])
    assert prefill_text(calling) is None


def test_an_empty_continuation_of_a_prefill_is_an_answer() -> None:
    """The stream broke just before its finish event: the continuation has nothing left to say."""
    empty = Reply(text="", finish_reason=FinishReason.STOP)
    assert unusable(empty, _prefilled("The capital of France is Paris.")) is None
    assert unusable(empty, ChatRequest.from_prompt("hi")).kind is ErrorKind.INVALID_RESPONSE
    assert unusable(empty).kind is ErrorKind.INVALID_RESPONSE
    assert unusable(empty, _prefilled(" \n")).kind is ErrorKind.INVALID_RESPONSE  # no text to continue
    refused = Reply(text="", finish_reason=FinishReason.CONTENT_FILTER)
    assert unusable(refused, _prefilled("The capital")).kind is ErrorKind.CONTENT_FILTER


# -- capability data ---------------------------------------------------------------------------


@pytest.mark.parametrize(("vendor", "model", "accepts"), [
    ("anthropic", "claude-3-haiku-20240307", True),
    ("anthropic", "claude-3-5-sonnet-20241022", True),
    ("anthropic", "claude-3-7-sonnet-latest", True),
    ("anthropic", "claude-sonnet-4-20250514", True),  # 4.0: the date is no minor version
    ("anthropic", "claude-opus-4-1-20250805", True),
    ("anthropic", "claude-haiku-4-5-20251001", True),
    ("anthropic", "claude-sonnet-4-5", True),
    ("anthropic", "claude-opus-4-6", False),  # "Prefilling assistant messages returns a 400 error on 4.6"
    ("anthropic", "claude-sonnet-4-6", False),
    ("anthropic", "claude-opus-4-7", False),
    ("anthropic", "claude-sonnet-5", False),
    ("anthropic", "my-proxy-alias", False),  # cannot be dated: restart, which is always correct
    ("mistral", "mistral-small-latest", True),
    ("mistral", "magistral-medium-latest", True),
    ("groq", "llama-3.3-70b-versatile", True),
    ("ollama", "qwen3:0.6b", True),
    ("openrouter", "anthropic/claude-3.5-sonnet", True),
    ("openrouter", "anthropic/claude-sonnet-4.5", True),
    ("openrouter", "anthropic/claude-opus-4.6", False),
    ("openrouter", "anthropic/claude-3.7-sonnet:thinking", False),  # extended thinking takes no prefill
    ("openrouter", "openai/gpt-4o", False),
    ("openrouter", "mistralai/mistral-small", False),
    ("deepseek", "deepseek-chat", False),  # only on the /beta base URL
    ("openai", "gpt-4o-mini", False),  # answered afresh: the text would be repeated
    ("azure", "gpt-4o", False),
    ("gemini", "gemini-2.5-flash", False),
    ("vllm", "meta-llama/Llama-3.1-8B-Instruct", False),
    ("llamacpp", "gemma-3-270m", False),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", False),
    ("fireworks", "accounts/fireworks/models/llama-v3p1-8b-instruct", False),
    ("cerebras", "llama-3.3-70b", False),
    ("no-such-vendor", "x", False),
])
def test_accepts_prefill(vendor: str, model: str, accepts: bool) -> None:
    assert accepts_prefill(vendor, model) is accepts


def test_every_vendor_has_a_prefill_decision_with_its_source() -> None:
    """A vendor added to the catalogue gets a deliberate row, not a silent default."""
    assert set(VENDORS) <= set(PREFILL_SUPPORT)
    assert all(len(row.source) > 20 for row in PREFILL_SUPPORT.values())


# -- joining an answer to its prefill -------------------------------------------------------------


def test_a_whole_repeat_is_dropped_wherever_the_deltas_split_it() -> None:
    join = PrefillJoin("Autumn moon", whole=True)
    assert [join.feed(d) for d in ("Aut", "umn m", "oon over", " the pond")] == ["", "", " over", " the pond"]
    assert join.flush() == ""


def test_text_that_only_starts_like_the_prefill_is_kept_whole() -> None:
    join = PrefillJoin("Autumn moon", whole=True)
    assert [join.feed(d) for d in ("Aut", "umn leaves")] == ["", "Autumn leaves"]
    short = PrefillJoin("Autumn moon", whole=True)
    assert short.feed("Autumn") == "" and short.flush() == "Autumn"  # the answer ended: it was text
    assert PrefillJoin("", whole=True).apply("anything") == "anything"


def test_text_held_back_as_a_possible_repeat_reaches_the_caller_when_the_stream_ends() -> None:
    """The answer was shorter than the prefill and began like it: it is text, streamed before the end."""
    wire = OpenAIChatWire(VENDORS["mistral"].chat)
    for ending in ([{"index": 0, "delta": {}, "finish_reason": "stop"}], None):
        parser = wire.stream_parser(_prefilled("Autumn moon"))
        chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Autumn"}}]}
        deltas = [parser.feed(json.dumps(chunk))]
        deltas.append(parser.feed(json.dumps({"id": "c", "choices": ending})) if ending else "")
        deltas.append(parser.feed("[DONE]"))
        assert "".join(deltas) == parser.finish().text == "Autumn"


def test_repeated_whitespace_is_dropped_as_far_as_it_matches() -> None:
    assert PrefillJoin(" \n", whole=False).apply(" \nnext") == "next"
    assert PrefillJoin("\n\n", whole=False).apply("\nNext paragraph") == "Next paragraph"
    assert PrefillJoin(" ", whole=False).apply("world") == "world"
    join = PrefillJoin("\n\n", whole=False)
    assert [join.feed(d) for d in ("\n", "\nNe", "xt")] == ["", "Ne", "xt"]


def _sse(body: bytes) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    return [*decoder.feed(body), *decoder.end()]


def _stream(wire: Any, events: list[tuple[str | None, str]], request: ChatRequest | None) -> tuple[str, Any]:
    parser = wire.stream_parser(request)
    deltas = "".join(parser.feed(data, event) for event, data in events)
    return deltas, parser.finish()


MISTRAL_STREAM = "mistral/test_mistral_model_thinking_part_iter.yaml"


@needs_wire
@pytest.mark.parametrize("cut", [1, 7, 40, 120])
def test_mistral_repeats_the_prefix_and_the_repeat_is_dropped_from_a_recorded_stream(cut: int) -> None:
    """Mistral's answer starts with the prefix (it 'is returned from the API'): only the rest is new."""
    wire = OpenAIChatWire(VENDORS["mistral"].chat)
    events = _sse(load(MISTRAL_STREAM)[0].body)
    _, whole = _stream(wire, events, None)
    assert len(whole.text) > 120
    prefill = whole.text[:cut]
    deltas, reply = _stream(wire, events, _prefilled(prefill))
    assert prefill + deltas == whole.text and prefill + reply.text == whole.text
    for field in ("reasoning", "usage", "finish_reason"):
        assert getattr(reply, field) == getattr(whole, field), field
    unrelated, reply = _stream(wire, events, _prefilled("Something else entirely"))
    assert unrelated == reply.text == whole.text, "no repeat: nothing may be dropped"


@needs_wire
def test_mistral_repeat_is_dropped_from_a_recorded_json_answer() -> None:
    wire = OpenAIChatWire(VENDORS["mistral"].chat)
    body = load("mistral/test_mistral_forwards_penalties.yaml")[0].json()
    text = wire.parse(body).text
    assert wire.parse(body, _prefilled(text[:9])).text == text[9:]
    groq = OpenAIChatWire(VENDORS["groq"].chat)
    assert groq.parse(body, _prefilled(text[:9])).text == text  # groq does not repeat the prefill


ANTHROPIC_STREAM = "anthropic/test_anthropic_message_streaming_legacy.yaml"


@needs_wire
def test_anthropic_continuation_of_a_stripped_prefill_joins_without_doubled_whitespace() -> None:
    """The caller had 'Here's an ' (space); Claude was sent 'Here's an' and continues ' joke…'."""
    events = _sse(load(ANTHROPIC_STREAM)[0].body)
    _, whole = _stream(AnthropicWire(), events, None)
    texts = [i for i, (_, data) in enumerate(events) if '"text_delta"' in data]
    # The first text delta after which the answer goes on with a space: cut the caller's text there.
    j = next(k for n, k in enumerate(texts[1:], 1)
             if json.loads(events[k][1])["delta"]["text"].startswith(" ")
             and not json.loads(events[texts[n - 1]][1])["delta"]["text"].endswith(" "))
    before = "".join(json.loads(events[k][1])["delta"]["text"] for k in texts if k < j)
    continuation = [e for i, e in enumerate(events) if i not in texts or i >= j]
    request = _prefilled(before + " ", stream=True)
    assert AnthropicWire().build(request, "claude-3-haiku-20240307", stream=True).body["messages"][-1] == {
        "role": "assistant", "content": before}
    deltas, reply = _stream(AnthropicWire(), continuation, request)
    assert before + " " + deltas == whole.text and before + " " + reply.text == whole.text


@needs_wire
def test_anthropic_json_answer_joins_its_stripped_prefill() -> None:
    body = load("anthropic/test_anthropic_model_instructions.yaml")[0].json()
    text = body["content"][0]["text"]  # "The capital of France is Paris."
    cut = text.index(" ")
    body["content"][0]["text"] = text[cut:]  # what Claude continues "The" with
    assert "The " + AnthropicWire().parse(body, _prefilled("The ")).text == text
    assert AnthropicWire().parse(body, _prefilled("The")).text == text[cut:], "no whitespace stripped: kept"


@needs_wire
async def test_a_prefilled_mistral_stream_through_the_provider_returns_only_the_continuation() -> None:
    it = load(MISTRAL_STREAM)[0]
    _, whole = _stream(OpenAIChatWire(VENDORS["mistral"].chat), _sse(it.body), None)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=it.body)

    provider = get_provider("mistral:magistral-medium-latest", api_key=FAKE_KEY,
                            transport=httpx.MockTransport(answer))
    stream = provider.stream(_prefilled(whole.text[:30], stream=True))
    deltas = "".join([d async for d in stream])
    assert deltas == stream.response.text == whole.text[30:]
    assert isinstance(stream.response, evalkit.ChatResponse)
