"""Server behaviour: lifecycle, auth, routing, stats, reset, time scale, caching, Gemini streams."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from evalkit.emulator import Emulator, _wire_openai
from evalkit.emulator._plans import BodyFault, stream_plan
from evalkit.emulator._simulate import ChatCall, Simulator
from evalkit.emulator._wire_common import RateSnapshot, ReplyContext
from evalkit.emulator.answers import AnswerBook
from evalkit.emulator.fleet import default_fleet

from .helpers import ANTHROPIC_AUTH, get, post, sse_events

MESSAGES = [{"role": "user", "content": "hi"}]


def test_start_stop_leaves_no_thread_and_frees_the_port() -> None:
    before = threading.active_count()
    emu = Emulator(datasets=(), time_scale=0.0).start()
    port = emu.port
    assert emu.running and threading.active_count() == before + 1
    assert (
        post(
            f"{emu.openai_base_url}/chat/completions",
            json={"model": "sim-large", "messages": MESSAGES},
            headers={"authorization": "Bearer k"},
        ).status_code
        == 200
    )
    emu.stop()
    assert not emu.running and threading.active_count() == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    emu.stop()  # stopping twice is harmless


def test_context_manager_and_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Emulator(datasets=(), time_scale=0.0, port=port) as emu:
        assert emu.base_url == f"http://127.0.0.1:{port}"
        assert emu.openai_base_url == emu.base_url + "/v1"
        assert emu.anthropic_base_url == emu.gemini_base_url == emu.base_url
        with pytest.raises(RuntimeError, match="already started"):
            emu.start()


@pytest.mark.parametrize(
    ("url", "body", "status", "check"),
    [
        (
            "/v1/chat/completions",
            {"model": "sim-large", "messages": MESSAGES},
            401,
            lambda b: b["error"]["message"].startswith("You didn't provide an API key.")
            and b["error"]["type"] == "invalid_request_error",
        ),
        (
            "/v1/messages",
            {"model": "sim-large", "max_tokens": 5, "messages": MESSAGES},
            401,
            lambda b: b["type"] == "error" and b["error"]["type"] == "authentication_error",
        ),
        (
            "/v1beta/models/sim-fast:generateContent",
            {"contents": [{"parts": [{"text": "hi"}]}]},
            403,
            lambda b: b["error"]["status"] == "PERMISSION_DENIED" and b["error"]["code"] == 403,
        ),
    ],
)
def test_missing_key_is_refused_in_the_vendors_format(
    emu: Any, url: str, body: dict[str, Any], status: int, check: Any
) -> None:
    response = post(emu.base_url + url, json=body)
    assert response.status_code == status and check(response.json())
    assert post(emu.base_url + url, json=body, headers={"authorization": "Basic abc"}).status_code == status


def test_gemini_takes_its_key_in_the_header_or_the_query_only(emu: Any) -> None:
    url = f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 3}}
    for headers, params, status in (
        ({"x-goog-api-key": "k"}, {}, 200),
        ({}, {"key": "k"}, 200),
        (ANTHROPIC_AUTH, {}, 403),  # another vendor's header is no key to Google
        ({"authorization": "Bearer k"}, {}, 401),  # a bearer token is an OAuth credential, not an API key
    ):
        assert post(url, json=body, headers=headers, params=params).status_code == status, headers


def test_unknown_model_and_model_on_another_wire_are_404(emu: Any) -> None:
    openai = post(
        f"{emu.openai_base_url}/chat/completions",
        headers={"authorization": "Bearer k"},
        json={"model": "sim-long", "messages": MESSAGES},
    )  # served on anthropic and gemini only
    assert openai.status_code == 404 and openai.json()["error"]["code"] == "model_not_found"
    anthropic = post(
        f"{emu.anthropic_base_url}/v1/messages",
        headers=ANTHROPIC_AUTH,
        json={"model": "gpt-4o", "max_tokens": 5, "messages": MESSAGES},
    )
    assert anthropic.status_code == 404 and anthropic.json()["error"]["type"] == "not_found_error"
    gemini = post(
        f"{emu.gemini_base_url}/v1beta/models/sim-large:generateContent",
        params={"key": "k"},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert gemini.status_code == 404 and gemini.json()["error"]["status"] == "NOT_FOUND"


def test_bad_requests_are_400_in_the_vendors_format(emu: Any) -> None:
    no_max = post(
        f"{emu.anthropic_base_url}/v1/messages",
        headers=ANTHROPIC_AUTH,
        json={"model": "sim-small", "messages": MESSAGES},
    )
    assert no_max.status_code == 400 and no_max.json()["error"]["message"] == "max_tokens: Field required"
    not_json = post(
        f"{emu.openai_base_url}/chat/completions", headers={"authorization": "Bearer k"}, content=b"{nope"
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_request_error"


def test_model_listings(emu: Any) -> None:
    openai = get(f"{emu.openai_base_url}/models", headers={"authorization": "Bearer k"}).json()
    assert [m["id"] for m in openai["data"]] == default_fleet().names()
    anthropic = get(
        f"{emu.anthropic_base_url}/v1/models", headers=ANTHROPIC_AUTH
    ).json()
    assert {m["id"] for m in anthropic["data"]} == {m.name for m in default_fleet().serving("anthropic")}
    gemini = get(f"{emu.gemini_base_url}/v1beta/models", params={"key": "k"}).json()
    assert {m["name"] for m in gemini["models"]} == {
        f"models/{m.name}" for m in default_fleet().serving("gemini")
    }
    one = get(f"{emu.openai_base_url}/models/sim-small", headers={"authorization": "Bearer k"}).json()
    assert one["id"] == "sim-small" and one["object"] == "model"


def test_count_tokens_agrees_with_usage(emu: Any) -> None:
    body = {
        "model": "sim-small",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "count these words"}],
    }
    counted = post(
        f"{emu.anthropic_base_url}/v1/messages/count_tokens",
        headers=ANTHROPIC_AUTH,
        json={k: v for k, v in body.items() if k != "max_tokens"},
    ).json()
    used = post(f"{emu.anthropic_base_url}/v1/messages", headers=ANTHROPIC_AUTH, json=body).json()[
        "usage"
    ]
    assert counted["input_tokens"] == used["input_tokens"]
    gemini = post(
        f"{emu.gemini_base_url}/v1beta/models/sim-small:countTokens",
        params={"key": "k"},
        json={"contents": [{"parts": [{"text": "count these words"}]}]},
    ).json()
    assert gemini["totalTokens"] == used["input_tokens"]


def test_stats_count_and_redact(emu: Any) -> None:
    post(
        f"{emu.openai_base_url}/chat/completions",
        headers={"authorization": "Bearer sk-secret-value"},
        json={
            "model": "sim-large",
            "messages": MESSAGES,
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    post(
        f"{emu.openai_base_url}/chat/completions",
        headers={"authorization": "Bearer sk-secret-value", "x-evalkit-fault": "500"},
        json={"model": "sim-large", "messages": MESSAGES},
    )
    post(
        f"{emu.gemini_base_url}/v1beta/models/sim-fast:generateContent",
        params={"key": "AIza-secret"},
        json={"contents": [{"parts": [{"text": "x" * 500}]}]},
    )
    stats = get(f"{emu.base_url}/_emulator/stats").json()
    assert stats == emu.stats()
    large = stats["models"]["sim-large"]
    assert large["requests"] == 2 and large["by_status"] == {"200": 1, "500": 1}
    assert large["faults"] == {"500": 1} and large["streamed"] == 1 and large["completion_tokens"] == 4
    first, _, third = stats["recent"]
    assert (
        first["headers"]["authorization"] == "[redacted]" and first["body"]["stream_options"]["include_usage"]
    )
    assert third["query"]["key"] == "[redacted]"
    assert third["body"]["contents"][0]["parts"][0]["text"].endswith("...[+300 chars]")
    assert "secret" not in json.dumps(stats)
    assert post(f"{emu.base_url}/_emulator/reset").json() == {"ok": True}
    assert emu.stats()["total_requests"] == 0


def test_time_scale_zero_schedules_no_delay_and_one_scales_the_model() -> None:
    spec = default_fleet().model("sim-large")
    call = ChatCall("openai", spec.name, (("user", "Write a long essay."),), max_tokens=60, stream=True)
    book = AnswerBook()
    still = Simulator(seed=1, time_scale=0.0, book=book).generate(call, spec)
    real = Simulator(seed=1, time_scale=1.0, book=book).generate(call, spec)
    half = Simulator(seed=1, time_scale=0.5, book=book).generate(call, spec)
    assert (still.timing.ttft_s, still.timing.per_token_s, still.total_s) == (0.0, 0.0, 0.0)
    ctx = ReplyContext(spec.name, "req", RateSnapshot(1, 1, 1, 1, 0, 0), call)
    assert all(delay == 0 for delay, _ in stream_plan(still, _wire_openai.WIRE, ctx, BodyFault(None, 30)).parts)
    assert 0.1 < real.timing.ttft_s < 10 and real.total_s > real.timing.ttft_s
    assert half.total_s == pytest.approx(real.total_s / 2)
    delays = [d for d, _ in stream_plan(real, _wire_openai.WIRE, ctx, BodyFault(None, 30)).parts]
    first_chunk = real.chunks[0][1]
    assert delays[1] == pytest.approx(real.timing.ttft_s + (first_chunk - 1) * real.timing.per_token_s)
    assert sum(delays) == pytest.approx(real.total_s)
    stalled = [d for d, _ in stream_plan(still, _wire_openai.WIRE, ctx, BodyFault("stall", 30)).parts]
    assert stalled[2] == 30  # the stall fault is never scaled


def test_same_seed_same_answers_and_schedule_across_servers(fixture_dataset: Any) -> None:
    def run(seed: int) -> list[Any]:
        with Emulator(seed=seed, time_scale=0.5, datasets=[fixture_dataset]) as emu:
            out = []
            for prompt in ("What is 6 times 7?", "What is the capital of France?", "Something unknown"):
                r = post(
                    f"{emu.openai_base_url}/chat/completions",
                    headers={
                        "authorization": "Bearer k",
                        "x-evalkit-fault": "timeout",
                        "x-evalkit-stall-s": "0",
                    },  # no waiting for the schedule
                    json={
                        "model": "sim-small",
                        "max_tokens": 30,
                        "messages": [{"role": "user", "content": prompt}],
                    },
                )
                out.append(r.json()["choices"][0]["message"]["content"])
            return out + [r["scheduled"] for r in emu.stats()["recent"]]

    assert run(5) == run(5)


def test_prompt_caching_reports_cached_tokens(emu: Any) -> None:
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 200  # well over 1024 tokens
    body = {"model": "sim-small", "max_tokens": 3, "messages": [{"role": "user", "content": long_prompt}]}
    headers = {"authorization": "Bearer k"}
    first = post(f"{emu.openai_base_url}/chat/completions", json=body, headers=headers).json()["usage"]
    second = post(f"{emu.openai_base_url}/chat/completions", json=body, headers=headers).json()["usage"]
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert 1024 <= cached <= second["prompt_tokens"] and (cached - 1024) % 128 == 0
    anthropic_body = {
        "model": "sim-small",
        "max_tokens": 3,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": long_prompt + "!", "cache_control": {"type": "ephemeral"}}
                ],
            }
        ],
    }
    write = post(
        f"{emu.anthropic_base_url}/v1/messages", json=anthropic_body, headers=ANTHROPIC_AUTH
    ).json()
    read = post(
        f"{emu.anthropic_base_url}/v1/messages", json=anthropic_body, headers=ANTHROPIC_AUTH
    ).json()
    assert (
        write["usage"]["cache_creation_input_tokens"] > 0 and write["usage"]["cache_read_input_tokens"] == 0
    )
    assert read["usage"]["cache_read_input_tokens"] == write["usage"]["cache_creation_input_tokens"]


def test_gemini_json_array_stream_and_sse_agree(emu: Any) -> None:
    body = {"contents": [{"parts": [{"text": "Tell me more."}]}], "generationConfig": {"maxOutputTokens": 10}}
    url = f"{emu.gemini_base_url}/v1beta/models/sim-small:streamGenerateContent"
    array = post(url, json=body, params={"key": "k"})
    sse = post(url, json=body, params={"key": "k", "alt": "sse"})
    elements = [{**e, "responseId": None} for e in json.loads(array.text)]  # ids differ per attempt
    events = [{**json.loads(data), "responseId": None} for _, data in sse_events(sse.text)]
    assert array.headers["content-type"].startswith("application/json") and len(elements) > 1
    assert elements == events
    assert elements[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert elements[-1]["usageMetadata"]["candidatesTokenCount"] == 10


def test_gemini_refusal_and_empty(emu: Any) -> None:
    url = f"{emu.gemini_base_url}/v1beta/models/sim-small:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    refused = post(url, json=body, params={"key": "k"}, headers={"x-evalkit-fault": "content_filter"}).json()
    assert (
        refused["candidates"][0]["finishReason"] == "SAFETY"
        and "parts" not in refused["candidates"][0]["content"]
    )
    empty = post(url, json=body, params={"key": "k"}, headers={"x-evalkit-fault": "empty"}).json()
    assert "candidates" not in empty and empty["usageMetadata"]["promptTokenCount"] > 0
