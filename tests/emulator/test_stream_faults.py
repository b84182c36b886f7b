"""Stream faults for failover tests, on every wire: what reaches the socket, and when.

Slow first token, stall / cut / malformed event after N tokens, and a stream
without its end-of-stream marker, set by request header, by script and by the
fleet file. Every delay here is a fault's own seconds (the emulator runs at
time scale 0), so the gaps measured on the socket are the faults' alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evalkit.emulator import Emulator
from evalkit.emulator._tokens import split_tokens
from evalkit.emulator.fleet import load_fleet

from .wire_calls import WIRES, call, conversation, fleet_text, split_at, stream

FLEET = fleet_text("""\
  - name: steady
  - name: cutter
    faults: {cut: 1.0, after_tokens: 4}
  - name: slow
    faults: {slow_first_token: 1.0, ttft_s: 0.3}
""")
PROMPT = "Describe the water cycle in a few sentences."
HOLD_S = 0.3
"""How long the timed faults hold here: long enough to measure, short enough to keep the file fast."""
EARLY_S = 0.02
"""asyncio's timers may fire a hair early; a gap this much shorter than asked still counts."""


@pytest.fixture(scope="module")
def _emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(FLEET, encoding="utf-8")
    with Emulator(load_fleet(path), seed=3, time_scale=0.0, datasets=(), stall_s=5) as emu:
        yield emu


@pytest.fixture
def emu(_emulator: Emulator) -> Emulator:
    _emulator.reset()
    return _emulator


def healthy(emu: Any, wire: str, model: str = "steady") -> str:
    """The model's answer with no fault (``x-evalkit-fault: ok`` beats the fleet's fault rates)."""
    answer = call(emu, wire, model, conversation(PROMPT), {"x-evalkit-fault": "ok"})
    assert answer.status == 200
    return answer.text(wire)


def first_tokens(text: str, n: int) -> str:
    return "".join(split_tokens(text)[:n])


# -- slow first token ----------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_slow_first_token_sends_headers_then_holds_the_first_content_token(emu: Any, wire: str) -> None:
    expected = healthy(emu, wire)
    headers = {"x-evalkit-fault": "slow_first_token", "x-evalkit-ttft-s": str(HOLD_S)}
    got = stream(emu, wire, "steady", conversation(PROMPT), headers)
    assert got.status == 200 and got.headers_after_s < HOLD_S / 2  # the headers did not wait
    content = got.content(wire)
    assert content[0][0] >= HOLD_S - EARLY_S  # nothing to read before the first token's time
    assert got.error is None and got.text(wire) == expected  # then the whole answer, as usual


@pytest.mark.parametrize("wire", WIRES)
def test_slow_first_token_delays_a_whole_non_streamed_answer(emu: Any, wire: str) -> None:
    expected = healthy(emu, wire)
    answer = call(emu, wire, "steady", conversation(PROMPT),
                  {"x-evalkit-fault": "slow_first_token", "x-evalkit-ttft-s": str(HOLD_S)})
    assert answer.status == 200 and answer.seconds >= HOLD_S - EARLY_S
    assert answer.text(wire) == expected


@pytest.mark.parametrize("wire", WIRES)
def test_slow_first_token_from_the_fleet_file(emu: Any, wire: str) -> None:
    got = stream(emu, wire, "slow", conversation(PROMPT))  # faults: {slow_first_token: 1.0, ttft_s: 0.3}
    assert got.content(wire)[0][0] >= 0.3 - EARLY_S
    assert got.text(wire) == healthy(emu, wire, "slow")


# -- stall after N tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_stall_after_n_tokens_sends_exactly_n_then_goes_silent(emu: Any, wire: str) -> None:
    expected = healthy(emu, wire)
    emu.script("steady", [{"kind": "stall", "after_tokens": 5, "stall_s": HOLD_S}])
    got = stream(emu, wire, "steady", conversation(PROMPT))
    before, resumed = split_at(got.content(wire), HOLD_S / 2)
    assert before == first_tokens(expected, 5)
    assert resumed is not None and resumed >= HOLD_S - EARLY_S
    assert got.error is None and got.text(wire) == expected  # a stall, not a cut: the rest follows


def test_stall_after_n_tokens_by_header_and_a_client_read_deadline(emu: Any) -> None:
    expected = healthy(emu, "openai")
    headers = {"x-evalkit-fault": "stall", "x-evalkit-after-tokens": "2", "x-evalkit-stall-s": "2"}
    got = stream(emu, "openai", "steady", conversation(PROMPT), headers, read_timeout=0.3)
    assert isinstance(got.error, httpx.ReadTimeout)
    assert got.text("openai") == first_tokens(expected, 2)


# -- cut after N tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_cut_after_n_tokens_closes_without_the_ending(emu: Any, wire: str) -> None:
    expected = healthy(emu, wire)
    got = stream(emu, wire, "steady", conversation(PROMPT),
                 {"x-evalkit-fault": "cut", "x-evalkit-after-tokens": "7"})
    assert isinstance(got.error, httpx.RemoteProtocolError)  # the body never ended
    assert got.text(wire) == first_tokens(expected, 7)
    assert got.finish(wire) is None and got.usage(wire) is None
    if wire != "gemini":
        assert not got.terminated(wire)


@pytest.mark.parametrize("wire", WIRES)
def test_cut_after_n_tokens_from_the_fleet_file(emu: Any, wire: str) -> None:
    got = stream(emu, wire, "cutter", conversation(PROMPT))  # faults: {cut: 1.0, after_tokens: 4}
    assert isinstance(got.error, httpx.RemoteProtocolError)
    assert got.text(wire) == first_tokens(healthy(emu, wire, "cutter"), 4)


def test_cut_after_n_tokens_on_geminis_json_array_stream(emu: Any) -> None:
    expected = healthy(emu, "gemini")
    emu.script("steady", [{"kind": "cut", "after_tokens": 4}])
    got = stream(emu, "gemini", "steady", conversation(PROMPT), json_array=True)
    assert isinstance(got.error, httpx.RemoteProtocolError)
    elements = json.loads(got.raw + b"]")
    text = "".join(p["text"] for e in elements for p in e["candidates"][0]["content"]["parts"])
    assert text == first_tokens(expected, 4) and all("finishReason" not in e["candidates"][0] for e in elements)


def test_cut_after_more_tokens_than_the_answer_has_still_drops_the_ending(emu: Any) -> None:
    expected = healthy(emu, "anthropic")
    emu.script("steady", [{"kind": "cut", "after_tokens": 10_000}])
    got = stream(emu, "anthropic", "steady", conversation(PROMPT))
    assert isinstance(got.error, httpx.RemoteProtocolError)
    assert got.text("anthropic") == expected and got.finish("anthropic") is None


# -- malformed event after N tokens --------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_malformed_event_after_n_tokens_in_an_otherwise_complete_stream(emu: Any, wire: str) -> None:
    expected = healthy(emu, wire)
    emu.script("steady", [{"kind": "malformed", "after_tokens": 6}])
    got = stream(emu, wire, "steady", conversation(PROMPT))
    invalid = got.invalid()
    assert len(invalid) == 1  # one broken event...
    assert "".join(t for _, t in got.content(wire, upto=invalid[0])) == first_tokens(expected, 6)
    assert got.error is None and got.text(wire) == expected  # ...and every other event, intact
    assert got.finish(wire) and got.usage(wire)
    if wire != "gemini":
        assert got.terminated(wire)


def test_malformed_without_after_tokens_keeps_its_old_place(emu: Any) -> None:
    got = stream(emu, "anthropic", "steady", conversation(PROMPT), {"x-evalkit-fault": "malformed"})
    assert got.invalid() == [1]  # right after message_start, as before


def test_malformed_before_the_first_token_of_a_json_array_stream_is_its_first_element(emu: Any) -> None:
    emu.script("steady", [{"kind": "malformed", "after_tokens": 0}])
    got = stream(emu, "gemini", "steady", conversation(PROMPT), json_array=True)
    assert got.raw.startswith(b"[") and got.error is None  # the array opens...
    with pytest.raises(ValueError):
        json.JSONDecoder().raw_decode(got.raw[1:].decode().lstrip())  # ...on a broken first element


# -- missing end-of-stream marker ----------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_no_done_completes_the_answer_but_omits_the_terminator(emu: Any, wire: str) -> None:
    normal = stream(emu, wire, "steady", conversation(PROMPT))
    got = stream(emu, wire, "steady", conversation(PROMPT), {"x-evalkit-fault": "no_done"})
    assert got.error is None  # the body ended cleanly
    assert got.text(wire) == normal.text(wire) and got.text(wire)
    assert got.finish(wire) == normal.finish(wire) is not None
    assert got.usage(wire) == normal.usage(wire) is not None
    if wire == "gemini":  # no terminator on Gemini's SSE: the same events as a normal stream
        assert len(got.events) == len(normal.events)
    else:
        assert normal.terminated(wire) and not got.terminated(wire)
        assert len(got.events) == len(normal.events) - 1


def test_no_done_on_geminis_json_array_drops_the_closing_bracket(emu: Any) -> None:
    normal = stream(emu, "gemini", "steady", conversation(PROMPT), json_array=True)
    got = stream(emu, "gemini", "steady", conversation(PROMPT), {"x-evalkit-fault": "no_done"}, json_array=True)
    assert normal.raw.endswith(b"]") and not got.raw.endswith(b"]") and got.error is None
    last = json.loads(got.raw + b"]")[-1]
    assert last["candidates"][0]["finishReason"] == "STOP" and last["usageMetadata"]["candidatesTokenCount"]


@pytest.mark.parametrize("wire", WIRES)
def test_no_done_on_a_non_streamed_call_is_a_normal_answer(emu: Any, wire: str) -> None:
    answer = call(emu, wire, "steady", conversation(PROMPT), {"x-evalkit-fault": "no_done"})
    assert answer.status == 200 and answer.text(wire) == healthy(emu, wire)


# -- non-streamed calls keep their body faults ---------------------------------------------------


def test_after_tokens_does_not_change_a_non_streamed_cut(emu: Any) -> None:
    # A JSON body has no tokens to count: the cut still sends half the body and closes.
    emu.script("steady", [{"kind": "cut", "after_tokens": 3}])
    with pytest.raises(httpx.RemoteProtocolError):
        call(emu, "openai", "steady", conversation(PROMPT))
    assert emu.stats()["models"]["steady"]["faults"] == {"cut": 1}
