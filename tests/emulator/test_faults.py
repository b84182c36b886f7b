"""Fault injection: per-request header, scripted sequences, seeded rates, natural context overflow."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx
import pytest

from evalkit.emulator import Emulator

from .helpers import post, sse_events

OPENAI_BODY = {"model": "sim-large", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def post_openai(
    emu: Any,
    fault: str | None = None,
    *,
    stream: bool = False,
    timeout: float = 10,
    extra_headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    headers = {"authorization": "Bearer k", **(extra_headers or {})}
    if fault:
        headers["x-evalkit-fault"] = fault
    return post(
        f"{emu.openai_base_url}/chat/completions",
        headers=headers,
        timeout=timeout,
        json={**OPENAI_BODY, "stream": stream, **body},
    )


def test_reset_is_a_connection_error_not_a_response(emu: Any) -> None:
    for stream in (False, True):
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            post_openai(emu, "reset", stream=stream)
    assert emu.stats()["models"]["sim-large"]["by_status"] == {"reset": 2}


def read_stream(
    emu: Any, fault: str, timeout: httpx.Timeout | float, **body: Any
) -> tuple[bytes, Exception | None]:
    """The bytes of a streamed answer as they arrived, and the error that ended it (if any)."""
    received = b""
    headers = {"authorization": "Bearer k", "x-evalkit-fault": fault}
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream(
                "POST",
                f"{emu.openai_base_url}/chat/completions",
                headers=headers,
                json={**OPENAI_BODY, "stream": True, **body},
            ) as response,
        ):
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
    except httpx.HTTPError as exc:
        return received, exc
    return received, None


def test_cut_stream_ends_without_its_final_events(emu: Any) -> None:
    received, error = read_stream(emu, "cut", 10, stream_options={"include_usage": True})
    assert isinstance(error, httpx.RemoteProtocolError)  # the chunked body never ended
    events = sse_events(received.decode())
    assert events and all(data != "[DONE]" for _, data in events)
    assert all(json.loads(data)["choices"][0]["finish_reason"] is None for _, data in events)


def test_stall_holds_the_stream_after_it_started(emu: Any) -> None:
    received, error = read_stream(emu, "stall", httpx.Timeout(5.0, read=0.3))
    assert isinstance(error, httpx.ReadTimeout)
    events = sse_events(received.decode())
    assert len(events) == 2  # the role chunk and the first content chunk arrived, then nothing
    assert json.loads(events[1][1])["choices"][0]["delta"]["content"]


def test_timeout_holds_even_the_headers(emu: Any) -> None:
    with pytest.raises(httpx.ReadTimeout):
        post_openai(emu, "timeout", timeout=0.3)


def test_a_short_stall_then_completes(emu: Any) -> None:
    response = post_openai(emu, "timeout", extra_headers={"x-evalkit-stall-s": "0.05"})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def test_malformed_empty_and_content_filter(emu: Any) -> None:
    with pytest.raises(ValueError):
        post_openai(emu, "malformed").json()
    stream = sse_events(post_openai(emu, "malformed", stream=True).text)
    with pytest.raises(ValueError):
        [json.loads(data) for _, data in stream if data != "[DONE]"]
    assert post_openai(emu, "empty").json()["choices"] == []
    refusal = post_openai(emu, "content_filter").json()["choices"][0]
    assert refusal["finish_reason"] == "content_filter" and refusal["message"]["content"] is None


def test_http_error_faults_on_every_wire(emu: Any) -> None:
    anthropic = post(
        f"{emu.anthropic_base_url}/v1/messages",
        json={"model": "sim-small", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "x-evalkit-fault": "503"},
    ).json()
    assert anthropic["type"] == "error" and anthropic["error"]["type"] == "overloaded_error"
    gemini = post(
        f"{emu.gemini_base_url}/v1beta/models/sim-small:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": "k", "x-evalkit-fault": "429", "x-evalkit-retry-after": "4"},
    )
    assert gemini.status_code == 429 and gemini.headers["retry-after"] == "4"
    assert gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert gemini.json()["error"]["details"][0]["retryDelay"] == "4s"
    bad_gateway = post_openai(emu, "502")
    assert bad_gateway.status_code == 502 and bad_gateway.headers["content-type"] == "text/html"


def test_unknown_fault_kind_is_a_bad_request(emu: Any) -> None:
    response = post_openai(emu, "meltdown")
    assert response.status_code == 400 and "unknown fault kind" in response.json()["error"]["message"]


def test_fleet_script_then_runtime_script_then_http_script(det_emu: Any) -> None:
    def call() -> int:
        return post(
            f"{det_emu.anthropic_base_url}/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={"model": "scripted", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        ).status_code

    assert [call() for _ in range(5)] == [429, 429, 500, 200, 200]  # declared in the fleet file
    det_emu.script("scripted", ["529", {"kind": "ok"}, {"kind": "rate_limit", "times": 2}])
    assert [call() for _ in range(5)] == [529, 200, 429, 429, 200]
    response = post(
        f"{det_emu.base_url}/_emulator/script", json={"model": "scripted", "faults": ["500", "503"]}
    )
    assert response.json() == {"model": "scripted", "pending": ["500", "503"]}
    assert det_emu.stats()["scripts"] == {"scripted": ["500", "503"]}
    assert [call() for _ in range(3)] == [500, 503, 200]
    assert (
        post(f"{det_emu.base_url}/_emulator/script", json={"model": "nope", "faults": []}).status_code == 400
    )
    with pytest.raises(KeyError):
        det_emu.script("nope", ["429"])


def test_fleet_script_retry_after(det_emu: Any) -> None:
    response = post(
        f"{det_emu.anthropic_base_url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={"model": "scripted", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 429 and response.headers["retry-after"] == "2"


def test_rate_based_faults_match_the_configured_rates(det_emu: Any) -> None:
    n = 400
    statuses = []
    with httpx.Client(headers={"authorization": "Bearer k"}, timeout=10) as client:
        for i in range(n):
            r = client.post(
                f"{det_emu.openai_base_url}/chat/completions",
                json={
                    "model": "flaky",
                    "max_tokens": 3,
                    "messages": [{"role": "user", "content": f"request {i}"}],
                },
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["retry-after"] == "3"
    for status, rate in ((429, 0.10), (500, 0.05)):
        share = statuses.count(status) / n
        assert abs(share - rate) <= 4 * math.sqrt(rate * (1 - rate) / n), (status, share)
    assert det_emu.stats()["models"]["flaky"]["faults"] == {
        "429": statuses.count(429),
        "500": statuses.count(500),
    }


def test_rate_faults_are_fresh_draws_on_retry(det_emu: Any) -> None:
    # The same request retried is a new attempt: a 429 does not repeat forever.
    with httpx.Client(headers={"authorization": "Bearer k"}, timeout=10) as client:
        body = {"model": "flaky", "max_tokens": 3, "messages": [{"role": "user", "content": "retry me"}]}
        statuses = [
            client.post(f"{det_emu.openai_base_url}/chat/completions", json=body).status_code
            for _ in range(30)
        ]
    assert 200 in statuses and len(set(statuses)) > 1


def test_context_window_overflow_is_natural(det_emu: Any) -> None:
    long_prompt = "word " * 2000  # the test fleet's window is 1000 tokens
    openai = post(
        f"{det_emu.openai_base_url}/chat/completions",
        headers={"authorization": "Bearer k"},
        json={"model": "sure", "messages": [{"role": "user", "content": long_prompt}]},
    )
    assert openai.status_code == 400 and openai.json()["error"]["code"] == "context_length_exceeded"
    anthropic = post(
        f"{det_emu.anthropic_base_url}/v1/messages",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={"model": "sure", "max_tokens": 5, "messages": [{"role": "user", "content": long_prompt}]},
    )
    assert anthropic.status_code == 400
    assert anthropic.json()["error"]["message"].endswith("tokens > 1000 maximum")
    gemini = post(
        f"{det_emu.gemini_base_url}/v1beta/models/sure:generateContent?key=k",
        json={"contents": [{"parts": [{"text": long_prompt}]}]},
    )
    assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_stalled_request_does_not_delay_stop() -> None:
    emu = Emulator(datasets=(), time_scale=0.0, stall_s=60).start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            post_openai(emu, "timeout", timeout=0.2)
        with pytest.raises(httpx.ReadTimeout):
            post_openai(emu, "stall", stream=True, timeout=0.2)
    finally:
        started = time.monotonic()
        emu.stop()
    # Generous bound: a stall that blocked shutdown would take 60 s (or uvicorn's 3 s grace).
    assert time.monotonic() - started < 2.5
