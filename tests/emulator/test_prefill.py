"""Assistant prefill on every wire: the model continues a trailing assistant turn, or refuses it.

A router that recovers a cut stream sends the partial answer to the next target
as a prefill and streams on only what follows; a target that does not take a
prefill answers the vendor's 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evalkit.emulator import Emulator
from evalkit.emulator._tokens import MESSAGE_OVERHEAD, count_tokens, split_tokens
from evalkit.emulator.fleet import parse_fleet_text

from .wire_calls import WIRES, call, conversation, fleet_text, stream

FLEET = fleet_text("""\
  - name: steady
  - name: no-prefill
    prefill: reject
""")
PROMPT = "Explain how a lighthouse keeper spends a night."


@pytest.fixture(scope="module")
def _emulator() -> Iterator[Emulator]:
    with Emulator(parse_fleet_text(FLEET), seed=5, time_scale=0.0, datasets=()) as emu:
        yield emu


@pytest.fixture
def emu(_emulator: Emulator) -> Emulator:
    _emulator.reset()
    return _emulator


def answer_and_prefill(emu: Any, wire: str, model: str = "steady", n: int = 7) -> tuple[str, str]:
    """The model's whole answer, and its first ``n`` tokens (what a cut stream had delivered)."""
    answer = call(emu, wire, model, conversation(PROMPT), {"x-evalkit-prefill": "accept"})
    assert answer.status == 200
    text = answer.text(wire)
    return text, "".join(split_tokens(text)[:n])


@pytest.mark.parametrize("wire", WIRES)
def test_a_prefill_is_continued_and_billed_as_input(emu: Any, wire: str) -> None:
    whole, prefill = answer_and_prefill(emu, wire)
    plain = call(emu, wire, "steady", conversation(PROMPT))
    continued = call(emu, wire, "steady", conversation(PROMPT, prefill))
    assert continued.status == 200
    assert continued.text(wire) == whole[len(prefill):]  # only what follows the prefill
    prompt_tokens, completion_tokens = continued.usage(wire)
    assert prompt_tokens == plain.usage(wire)[0] + count_tokens(prefill) + MESSAGE_OVERHEAD
    assert completion_tokens == count_tokens(whole[len(prefill):])


@pytest.mark.parametrize("wire", WIRES)
def test_a_streamed_prefill_streams_only_the_continuation(emu: Any, wire: str) -> None:
    whole, prefill = answer_and_prefill(emu, wire, n=5)
    got = stream(emu, wire, "steady", conversation(PROMPT, prefill))
    assert got.status == 200 and got.error is None
    assert got.text(wire) == whole[len(prefill):]
    assert got.usage(wire)[1] == count_tokens(whole[len(prefill):])


@pytest.mark.parametrize("wire", WIRES)
def test_a_prefill_that_is_not_the_models_own_start_gets_its_whole_answer(emu: Any, wire: str) -> None:
    whole, _ = answer_and_prefill(emu, wire)
    continued = call(emu, wire, "steady", conversation(PROMPT, "Quite unlike anything it would say"))
    assert continued.status == 200 and continued.text(wire) == whole


def test_mistrals_prefix_flag_is_the_same_prefill_on_the_openai_wire(emu: Any) -> None:
    whole, prefill = answer_and_prefill(emu, "openai")
    messages = conversation(PROMPT) + [{"role": "assistant", "content": prefill, "prefix": True}]
    assert call(emu, "openai", "steady", messages).text("openai") == whole[len(prefill):]


@pytest.mark.parametrize(("cut_on", "continue_on"), [("openai", "anthropic"), ("anthropic", "gemini"),
                                                     ("gemini", "openai")])
def test_a_stream_cut_on_one_wire_continues_seamlessly_on_another(emu: Any, cut_on: str, continue_on: str) -> None:
    whole, _ = answer_and_prefill(emu, cut_on)
    cut = stream(emu, cut_on, "steady", conversation(PROMPT),
                 {"x-evalkit-fault": "cut", "x-evalkit-after-tokens": "8"})
    assert isinstance(cut.error, httpx.RemoteProtocolError)
    partial = cut.text(cut_on)
    rest = stream(emu, continue_on, "steady", conversation(PROMPT, partial))
    assert partial + rest.text(continue_on) == whole


# -- models that refuse a prefill ----------------------------------------------------------------


def assert_prefill_refusal(wire: str, status: int, body: dict[str, Any]) -> None:
    """The vendor's 400 for a trailing assistant turn."""
    assert status == 400
    if wire == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"] == ("This model does not support assistant message prefill. "
                                            "The conversation must end with a user message.")
    elif wire == "openai":
        assert body["error"]["type"] == "invalid_request_error" and "prefill" in body["error"]["message"]
    else:
        assert body["error"]["code"] == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
        assert "ends with a user role" in body["error"]["message"]


@pytest.mark.parametrize("wire", WIRES)
def test_a_model_set_to_reject_prefill_answers_the_vendors_400(emu: Any, wire: str) -> None:
    _, prefill = answer_and_prefill(emu, wire, model="no-prefill")  # accepted when the request says so
    refused = call(emu, wire, "no-prefill", conversation(PROMPT, prefill))
    assert_prefill_refusal(wire, refused.status, refused.body)
    streamed = stream(emu, wire, "no-prefill", conversation(PROMPT, prefill))
    assert_prefill_refusal(wire, streamed.status, httpx.Response(400, content=streamed.raw).json())
    assert call(emu, wire, "no-prefill", conversation(PROMPT)).status == 200  # no prefill, no refusal
    assert emu.stats()["models"]["no-prefill"]["by_status"] == {"200": 2, "400": 2}


@pytest.mark.parametrize("wire", WIRES)
def test_reject_prefill_per_call_by_header(emu: Any, wire: str) -> None:
    _, prefill = answer_and_prefill(emu, wire)
    refused = call(emu, wire, "steady", conversation(PROMPT, prefill), {"x-evalkit-prefill": "reject"})
    assert_prefill_refusal(wire, refused.status, refused.body)


def test_reject_prefill_by_script_is_consumed_like_any_step(emu: Any) -> None:
    _, prefill = answer_and_prefill(emu, "anthropic")
    emu.script("steady", [{"prefill": "reject"}, "ok"])
    statuses = [call(emu, "anthropic", "steady", conversation(PROMPT, prefill)).status for _ in range(3)]
    assert statuses == [400, 200, 200]


def test_a_bad_prefill_header_is_a_400_naming_it(emu: Any) -> None:
    answer = call(emu, "openai", "steady", conversation(PROMPT), {"x-evalkit-prefill": "maybe"})
    assert answer.status == 400 and "x-evalkit-prefill" in answer.body["error"]["message"]


def test_the_fleet_endpoint_shows_the_prefill_setting(emu: Any) -> None:
    models = {m["name"]: m for m in httpx.get(f"{emu.base_url}/_emulator/fleet").json()["models"]}
    assert models["no-prefill"]["prefill"] == "reject" and models["steady"]["prefill"] == "accept"
