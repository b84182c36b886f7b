"""A model down for a time window, then healthy; and the checks on every new fault parameter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from evalkit.emulator import Emulator
from evalkit.emulator.faults import parse_step
from evalkit.emulator.fleet import parse_fleet_text
from evalkit.errors import ConfigError

from .wire_calls import WIRES, call, conversation, fleet_text, stream

FLEET = fleet_text("""\
  - name: steady
  - name: flapper
    script: [{kind: "503", for_s: 0.4}, {kind: "429", retry_after: 1}]
""", output_tokens=20)
WINDOW_S = 0.4
EARLY_S = 0.02


@pytest.fixture(scope="module")
def _emulator() -> Iterator[Emulator]:
    with Emulator(parse_fleet_text(FLEET), seed=1, time_scale=0.0, datasets=()) as emu:
        yield emu


@pytest.fixture
def emu(_emulator: Emulator) -> Emulator:
    _emulator.reset()
    return _emulator


def statuses_until_healthy(emu: Any, wire: str, model: str, *, streamed: bool, limit_s: float = 3.0
                           ) -> list[tuple[float, int]]:
    """``(seconds since the first call, status)`` of calls made every 50 ms until one is a 200."""
    seen: list[tuple[float, int]] = []
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        at = time.monotonic() - started
        status = (stream(emu, wire, model, conversation(f"hello {wire}")).status if streamed
                  else call(emu, wire, model, conversation(f"hello {wire}")).status)
        seen.append((at, status))
        if status == 200:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"still failing after {limit_s}s: {seen}")


def assert_window(seen: list[tuple[float, int]], status: int) -> None:
    """Every call inside the window failed with ``status``; the first call after it succeeded."""
    *down, (recovered_at, last) = seen
    assert last == 200 and len(down) >= 3 and {s for _, s in down} == {status}
    assert recovered_at >= WINDOW_S - EARLY_S
    assert down[-1][0] < WINDOW_S  # the last failure was inside the window: recovery came right after it


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_a_scripted_outage_window_then_recovery(emu: Any, wire: str, streamed: bool) -> None:
    emu.script("steady", [{"kind": "503", "for_s": WINDOW_S}])
    time.sleep(WINDOW_S + 0.1)  # the window opens at the first request that hits it, not when scripted
    assert_window(statuses_until_healthy(emu, wire, "steady", streamed=streamed), 503)
    assert "steady" not in emu.stats()["scripts"]  # the window step is consumed


def test_an_outage_window_from_the_fleet_file_then_the_next_step(emu: Any) -> None:
    seen = statuses_until_healthy(emu, "openai", "flapper", streamed=False)
    # 503 for the window, then the next scripted step (one 429), then healthy
    statuses = [s for _, s in seen]
    assert statuses[-2:] == [429, 200] and set(statuses[:-2]) == {503}
    assert seen[-2][0] >= WINDOW_S - EARLY_S


def test_an_outage_window_opened_by_a_header_covers_calls_without_it(emu: Any) -> None:
    first = call(emu, "anthropic", "steady", conversation("hi"),
                 {"x-evalkit-fault": "overloaded", "x-evalkit-for-s": str(WINDOW_S)})
    assert first.status == 529
    seen = statuses_until_healthy(emu, "gemini", "steady", streamed=True)
    assert {s for _, s in seen[:-1]} == {529} and seen[-1][1] == 200


def test_a_reset_closes_the_window_and_restores_the_fleet_script(emu: Any) -> None:
    assert call(emu, "openai", "flapper", conversation("hi")).status == 503
    emu.reset()
    assert call(emu, "openai", "flapper", conversation("hi")).status == 503  # a fresh window
    assert emu.stats()["scripts"] == {"flapper": ["503", "429"]}


def test_a_window_over_a_stream_fault(emu: Any) -> None:
    emu.script("steady", [{"kind": "cut", "after_tokens": 2, "for_s": WINDOW_S}])
    cuts = [stream(emu, "openai", "steady", conversation("hi")) for _ in range(3)]
    assert all(isinstance(c.error, httpx.RemoteProtocolError) for c in cuts)


# -- every new parameter is checked, and errors name it ------------------------------------------


@pytest.mark.parametrize(
    ("step", "named"),
    [
        ({"kind": "stall", "after_tokens": -1}, "after_tokens"),
        ({"kind": "stall", "after_tokens": 2.5}, "after_tokens"),
        ({"kind": "stall", "after_tokens": True}, "after_tokens"),
        ({"kind": "429", "after_tokens": 3}, "after_tokens"),
        ({"kind": "slow_first_token", "ttft_s": -1}, "ttft_s"),
        ({"kind": "slow_first_token", "ttft_s": float("nan")}, "ttft_s"),
        ({"kind": "500", "ttft_s": 1}, "ttft_s"),
        ({"kind": "503", "for_s": 0}, "for_s"),
        ({"kind": "503", "for_s": float("inf")}, "for_s"),
        ({"prefill": "sometimes"}, "prefill"),
    ],
)
def test_bad_script_values_name_the_field(step: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_step(step)


def test_a_bad_script_over_http_is_a_400_naming_the_field(emu: Any) -> None:
    response = httpx.post(f"{emu.base_url}/_emulator/script",
                          json={"model": "steady", "faults": [{"kind": "cut", "after_tokens": "3"}]})
    assert response.status_code == 400 and "after_tokens" in response.json()["error"]


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-evalkit-after-tokens", "three"), ("x-evalkit-after-tokens", "-2"), ("x-evalkit-ttft-s", "-1"),
     ("x-evalkit-for-s", "0"), ("x-evalkit-for-s", "nan")],
)
def test_bad_fault_headers_are_a_400_naming_the_header(emu: Any, header: str, value: str) -> None:
    kind = "slow_first_token" if header == "x-evalkit-ttft-s" else "cut"
    answer = call(emu, "openai", "steady", conversation("hi"), {"x-evalkit-fault": kind, header: value})
    assert answer.status == 400 and header in answer.body["error"]["message"]


@pytest.mark.parametrize(
    ("model_yaml", "field"),
    [
        ("prefill: sometimes", "models[0].prefill"),
        ("faults: {ttft_s: -1}", "models[0].faults.ttft_s"),
        ("faults: {after_tokens: 1.5}", "models[0].faults.after_tokens"),
        ('script: [{kind: stall, after_tokens: "x"}]', "models[0].script[0].after_tokens"),
        ('script: [{kind: "503", for_s: .nan}]', "models[0].script[0].for_s"),
        ('script: [{kind: "429", ttft_s: 2}]', "models[0].script"),
    ],
)
def test_bad_fleet_values_are_config_errors_naming_the_field(model_yaml: str, field: str) -> None:
    text = FLEET.split("models:")[0] + f"models:\n  - name: m\n    {model_yaml}\n"
    with pytest.raises(ConfigError) as caught:
        parse_fleet_text(text, source="fleet.yaml")
    assert caught.value.field == field and caught.value.line is not None
