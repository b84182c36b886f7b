"""``ChatRequest`` takes OpenAI-style message dicts, checks every message, and names a bad one."""

from __future__ import annotations

import asyncio
import warnings

import pytest

import evalkit
from evalkit import ChatRequest, Message, ToolCall
from evalkit.emulator import Emulator
from evalkit.providers.anthropic import AnthropicWire
from evalkit.providers.gemini import GeminiWire
from evalkit.providers.openai_chat import OpenAIChatWire
from evalkit.providers.openai_responses import OpenAIResponsesWire

CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
TOOL_LOOP = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
]


def test_a_plain_openai_dict_becomes_a_message() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}])
    assert request.messages == (Message("user", "hi"),)


def test_an_openai_tool_loop_keeps_every_field() -> None:
    request = ChatRequest(messages=TOOL_LOOP)
    assert request.messages == (
        Message("system", "Be brief."),
        Message("user", "Weather in Paris?"),
        # OpenAI's null content on a tool-calling turn is evalkit's empty text.
        Message("assistant", "", tool_calls=(ToolCall("call_1", "weather", '{"city": "Paris"}'),)),
        Message("tool", "18C", tool_call_id="call_1"),
    )


def test_messages_and_dicts_mix_and_replace_converts_too() -> None:
    request = ChatRequest(messages=[Message("user", "a"), {"role": "assistant", "content": "b"}])
    assert request.messages == (Message("user", "a"), Message("assistant", "b"))
    again = request.replace(messages=[*request.messages, {"role": "user", "content": "c", "name": "ann"}])
    assert again.messages[-1] == Message("user", "c", name="ann")
    assert Message.from_dict({"role": "user", "content": "x"}) == Message("user", "x")


def test_tool_call_objects_and_lists_are_normalised() -> None:
    call = ToolCall("c", "f", "{}")
    as_list = Message("assistant", "", tool_calls=[call])  # type: ignore[arg-type]
    m = ChatRequest(messages=[as_list]).messages[0]
    assert m.tool_calls == (call,) and isinstance(m.tool_calls, tuple)
    mixed = {"role": "assistant", "content": "", "tool_calls": [call, CALL]}
    assert ChatRequest(messages=[mixed]).messages[0].tool_calls[1].name == "weather"


@pytest.mark.parametrize(("messages", "error", "text"), [
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "bot", "content": "c"}],
     ValueError, "messages[2].role: expected one of system, user, assistant, tool; got 'bot'"),
    ([Message("developer", "x")],  # type: ignore[arg-type]
     ValueError, "messages[0].role: expected one of system, user, assistant, tool; got 'developer'"),
    ([{"content": "x"}], ValueError, "messages[0].role: required"),
    ([{"role": "user"}], ValueError, "messages[0].content: required (a string)"),
    ([{"role": "user", "content": 5}], TypeError, "messages[0].content: expected a string; got int"),
    ([{"role": "user", "content": [{"type": "text", "text": "x"}]}], TypeError,
     "messages[0].content: expected a string; got list (text only"),
    ([Message("user", None)],  # type: ignore[arg-type]
     TypeError, "messages[0].content: expected a string; got None"),
    ([{"role": "user", "content": "x", "refusal": None}], ValueError,
     "messages[0].refusal: unknown field; a message has role, content, tool_calls, tool_call_id, name"),
    ([{"role": "user", "content": "x", "tool_calls": [CALL]}], ValueError,
     "messages[0].tool_calls: only an assistant message calls tools; this one is 'user'"),
    ([{"role": "user", "content": "x", "tool_call_id": "c"}], ValueError,
     "messages[0].tool_call_id: only a tool message answers a tool call"),
    ([{"role": "tool", "content": "x", "tool_call_id": 7}], TypeError,
     "messages[0].tool_call_id: expected a string; got int"),
    ([{"role": "assistant", "content": "", "tool_calls": CALL}], TypeError,
     "messages[0].tool_calls: expected a list of tool calls; got dict"),
    ([{"role": "assistant", "content": "", "tool_calls": [{**CALL, "type": "code"}]}], ValueError,
     "messages[0].tool_calls[0].type: expected 'function'; got 'code'"),
    ([{"role": "assistant", "content": "",
       "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]}],
     TypeError, "messages[0].tool_calls[0].function.arguments: expected a string; got dict (the"),
    ([{"role": "assistant", "content": "",
       "tool_calls": [{"id": "c", "function": {"name": "", "arguments": ""}}]}],
     ValueError, "messages[0].tool_calls[0].function.name: must not be empty"),
    ([{"role": "user", "content": "x"}, "hello"], TypeError,
     "messages[1]: expected a Message or a dict with role and content; got str"),
    ("hello", TypeError, "messages: expected a list of messages"),
    ({"role": "user", "content": "x"}, TypeError, "messages: expected a list of messages"),
])
def test_a_bad_message_is_named_by_index_and_field(messages, error, text) -> None:
    with pytest.raises(error) as caught:
        ChatRequest(messages=messages)
    assert str(caught.value).startswith(text), str(caught.value)


def test_a_system_dict_is_sent_as_each_wire_sends_system_text() -> None:
    request = ChatRequest(messages=TOOL_LOOP, system="Answer in French.")
    openai = OpenAIChatWire().build(request, "gpt-4o-mini", stream=False).body["messages"]
    # ChatRequest.system goes first, then the messages in order, the system dict included.
    assert openai[:2] == [{"role": "system", "content": "Answer in French."},
                          {"role": "system", "content": "Be brief."}]
    assert openai[3] == {"role": "assistant", "tool_calls": [CALL]}  # no content key, as the SDK sends it
    assert openai[4] == {"role": "tool", "content": "18C", "tool_call_id": "call_1"}

    anthropic = AnthropicWire().build(request, "claude-3-5-haiku-latest", stream=False).body
    assert anthropic["system"] == "Answer in French.\n\nBe brief."
    assert [m["role"] for m in anthropic["messages"]] == ["user", "assistant", "user"]
    assert anthropic["messages"][1]["content"][0] == {"type": "tool_use", "id": "call_1", "name": "weather",
                                                      "input": {"city": "Paris"}}

    gemini = GeminiWire().build(request, "gemini-2.0-flash", stream=False).body
    assert [p["text"] for p in gemini["systemInstruction"]["parts"]] == ["Answer in French.", "Be brief."]
    responses = OpenAIResponsesWire().build(request, "gpt-4o-mini", stream=False).body
    assert responses["instructions"] == "Answer in French."
    assert responses["input"][0] == {"role": "system", "content": "Be brief."}


def test_a_dict_message_request_is_answered_by_a_provider() -> None:
    """The first thing an OpenAI user types used to fail with AttributeError inside the provider."""

    async def ask(base_url: str) -> str:
        async with evalkit.get_provider("openai:sim-large", base_url=base_url, api_key="k") as llm:
            request = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=20)
            reply = await llm.complete(request)
            return reply.text

    with Emulator(seed=0, time_scale=0.0, datasets=()) as emu, warnings.catch_warnings():
        warnings.simplefilter("ignore", evalkit.UnpricedModelWarning)
        assert asyncio.run(ask(emu.openai_base_url)).strip()
