"""A cassette is a transport handed to providers explicitly: no runner, no global, safe to share.

Every test records against the emulator (a real HTTP server on 127.0.0.1), then
replays from the file with the providers pointed at a port nothing listens on
(vcrpy answers), and checks what a user of the provider sees: the same answers,
and the recorded latency and time to first token, to the last bit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from vcr.serializers import yamlserializer

from evalkit.emulator import Emulator
from evalkit.providers import get_provider
from evalkit.runner import cassettes as cas
from evalkit.runner.targets import resolve_targets
from evalkit.types import ChatRequest, ChatResponse, Message

KEY = "emulator-key"
PRICES = {"input": 1, "output": 2}
REPLAY_URL = cas.PLACEHOLDER_BASE_URL + "/v1"  # the discard port: a request that got past vcrpy would fail


def ask(text: str, *, stream: bool = True) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), stream=stream, max_tokens=64)


def recorded_timings(path: Path) -> list[tuple[float, float | None] | None]:
    """Per interaction, the timing the cassette stored (None for one without: an error response)."""
    out = []
    for it in yamlserializer.deserialize(path.read_text(encoding="utf-8"))["interactions"]:
        headers = {k.lower(): v[0] for k, v in it["response"]["headers"].items()}
        ttft = headers.get(cas.TTFT_HEADER)
        latency = headers.get(cas.LATENCY_HEADER)
        out.append(None if latency is None else (float(latency), None if ttft is None else float(ttft)))
    return out


def timing(response: ChatResponse) -> tuple[float, float | None]:
    return response.latency_ms, response.ttft_ms


# -- a provider built by hand -----------------------------------------------------------------


async def two_calls(base_url: str, transport: Any) -> list[ChatResponse]:
    """One streamed and one plain call of a provider built with ``get_provider(..., transport=)``."""
    provider = get_provider("openai:sim-large", api_key=KEY, base_url=base_url, transport=transport,
                            prices=PRICES)
    try:
        return [await provider.complete(ask("What is the capital of France?")),
                await provider.complete(ask("Name a prime number.", stream=False))]
    finally:
        await provider.aclose()
        await transport.aclose_pool()


def test_a_provider_built_without_the_runner_records_and_replays_its_timing(tmp_path: Path) -> None:
    path = tmp_path / "by-hand.yaml"
    with Emulator(seed=0, time_scale=0.05) as emu, cas.cassette(path, record=True) as recording:
        recorded = asyncio.run(two_calls(emu.openai_base_url, recording.transport()))

        async def unrecorded() -> None:  # no transport given: nothing global records it
            async with get_provider("openai:sim-small", api_key=KEY, base_url=emu.openai_base_url,
                                    prices=PRICES) as p:
                await p.complete(ask("Not for the cassette."))

        asyncio.run(unrecorded())
    assert recorded_timings(path) == [timing(r) for r in recorded]  # one interaction per call, nothing else
    assert recorded[0].ttft_ms is not None and recorded[0].ttft_ms < recorded[0].latency_ms
    assert recorded[1].ttft_ms is None

    with cas.cassette(path, record=False) as tape:
        replayed = asyncio.run(two_calls(REPLAY_URL, tape.transport()))
    assert [r.text for r in replayed] == [r.text for r in recorded] and replayed[0].text
    assert [r.usage for r in replayed] == [r.usage for r in recorded]
    assert [timing(r) for r in replayed] == [timing(r) for r in recorded]  # the recorded values, bit for bit


def test_a_routing_config_records_and_replays_through_the_transport(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", KEY)
    config = tmp_path / "routing.yaml"

    def write_config(base_url: str) -> str:
        target = ("{model: openai:%s, base_url: '%s', api_key_env: EVALKIT_TEST_KEY, "
                  "prices: {input: 1, output: 2}}")
        # The first target's model does not exist (a 404): the call goes on to the second.
        config.write_text(f"version: 1\ntargets:\n  first: {target % ('sim-missing', base_url)}\n"
                          f"  second: {target % ('sim-small', base_url)}\n"
                          "router: {type: fallback, targets: [first, second]}\n")
        return str(config)

    async def routed(spec: str, transport: Any) -> ChatResponse:
        (router,) = resolve_targets([spec], transport=transport)
        try:
            return await router.complete(ask("What is 2 + 2?"))
        finally:
            await router.aclose()
            await transport.aclose_pool()

    path = tmp_path / "routed.yaml"
    with Emulator(seed=0, time_scale=0.05) as emu, cas.cassette(path, record=True) as recording:
        recorded = asyncio.run(routed(write_config(emu.openai_base_url), recording.transport()))
    assert recorded.provider == "openai:sim-small" and len(recorded.attempts) == 2
    assert recorded_timings(path) == [None, timing(recorded)]  # both targets sent through the cassette

    with cas.cassette(path, record=False) as tape:
        replayed = asyncio.run(routed(write_config(REPLAY_URL), tape.transport()))
    assert (replayed.provider, replayed.text) == (recorded.provider, recorded.text)
    assert [a.error_kind for a in replayed.attempts] == [a.error_kind for a in recorded.attempts]
    assert timing(replayed) == timing(recorded)


# -- one transport, several providers ------------------------------------------------------------


async def close_one_mid_stream(base_url: str, transport: Any, closing_first: str) -> list[ChatResponse]:
    """Providers ``a`` and ``b`` share ``transport``; ``closing_first`` closes while the other one streams."""
    providers = {name: get_provider(f"openai:{model}", api_key=KEY, base_url=base_url, transport=transport,
                                    prices=PRICES)
                 for name, model in (("a", "sim-large"), ("b", "sim-medium"))}
    closing, streaming = providers[closing_first], providers["b" if closing_first == "a" else "a"]
    answers = [await closing.complete(ask("Warm up the shared pool."))]
    stream = streaming.stream(ask("Count from one to twenty in words."))
    chunks = 0
    async for _ in stream:
        chunks += 1
        if chunks == 1:
            await closing.aclose()  # mid-stream: the other provider's connection is open right now
    assert chunks > 1, "the answer must arrive in several chunks for the close to land mid-stream"
    answers.append(stream.response)
    answers.append(await streaming.complete(ask("Still there?")))  # the survivor keeps working
    answers.append(await closing.complete(ask("Back again?")))  # a closed provider opens a new client
    await streaming.aclose()
    answers.append(await closing.complete(ask("And after the other one closed?")))
    await closing.aclose()
    await transport.aclose_pool()
    return answers


async def bounded(scenario: Any) -> Any:
    # A connection closed under a stream is not always noticed: with no deadline set the read
    # waits for the client's 120 s read timeout. A hang guard, not a speed target (it takes ~2 s).
    return await asyncio.wait_for(scenario, 60)


@pytest.mark.parametrize("closing_first", ["a", "b"])
def test_providers_sharing_a_cassette_transport_close_in_any_order_mid_run(tmp_path: Path,
                                                                          closing_first: str) -> None:
    path = tmp_path / "shared.yaml"
    with Emulator(seed=0, time_scale=0.2) as emu, cas.cassette(path, record=True) as recording:
        recorded = asyncio.run(bounded(close_one_mid_stream(emu.openai_base_url, recording.transport(),
                                                            closing_first)))
    assert all(r.text for r in recorded)
    assert recorded_timings(path) == [timing(r) for r in recorded]

    with cas.cassette(path, record=False) as tape:
        replayed = asyncio.run(bounded(close_one_mid_stream(REPLAY_URL, tape.transport(), closing_first)))
    assert [r.text for r in replayed] == [r.text for r in recorded]
    assert [timing(r) for r in replayed] == [timing(r) for r in recorded]
