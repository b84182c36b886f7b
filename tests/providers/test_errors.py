"""Failure shapes the recordings lack, built from the vendors' documented formats.

Each case goes through a real provider over an httpx MockTransport, so the
status code, headers and body take the same path as live traffic.
"""

from __future__ import annotations

import json
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest

import evalkit
from evalkit.errors import ErrorKind

KEY = "sk-test-FAKEKEY-000000000000000000000000"


def provider_answering(status: int, body: object = None, headers: dict | None = None,
                       target: str = "openai:gpt-4o-mini", raw: bytes | None = None):
    def answer(request: httpx.Request) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        return httpx.Response(status, headers=headers or {}, content=content)

    return evalkit.get_provider(target, api_key=KEY, base_url="http://mock.invalid/v1",
                                transport=httpx.MockTransport(answer))


def openai_error(message: str, type_: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


async def fail(provider, **fields) -> evalkit.ProviderError:
    with pytest.raises(evalkit.ProviderError) as caught:
        await provider.complete(evalkit.ChatRequest.from_prompt("hi", **fields))
    return caught.value


async def test_429_retry_after_seconds() -> None:
    p = provider_answering(429, openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
                           {"retry-after": "19"})
    err = await fail(p)
    assert isinstance(err, evalkit.RateLimitError)
    assert (err.kind, err.retryable, err.retry_after, err.status) == (ErrorKind.RATE_LIMIT, True, 19.0, 429)


async def test_429_retry_after_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    p = provider_answering(429, openai_error("slow down", "requests", "rate_limit_exceeded"),
                           {"retry-after": format_datetime(when, usegmt=True)})
    err = await fail(p)
    assert 25 <= err.retry_after <= 31


async def test_429_retry_after_ms_beats_retry_after() -> None:
    p = provider_answering(429, openai_error("slow", "tokens", "rate_limit_exceeded"),
                           {"retry-after-ms": "250", "retry-after": "1"})
    assert (await fail(p)).retry_after == 0.25


async def test_429_x_ratelimit_reset_duration() -> None:
    p = provider_answering(429, openai_error("slow", "tokens", "rate_limit_exceeded"),
                           {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
                            "x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "20ms"})
    assert (await fail(p)).retry_after == 360.0


async def test_insufficient_quota_is_a_rate_limit_that_waiting_does_not_cure() -> None:
    p = provider_answering(429, openai_error("You exceeded your current quota", "insufficient_quota",
                                             "insufficient_quota"))
    err = await fail(p)
    assert err.kind is ErrorKind.RATE_LIMIT and err.retryable is False


async def test_a_request_larger_than_the_tpm_budget_is_not_retried_but_a_tpm_429_is() -> None:
    too_large = provider_answering(429, openai_error(
        "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested "
        "38291. The input or output tokens must be reduced in order to run successfully.", "tokens",
        "rate_limit_exceeded"))
    busy = provider_answering(429, openai_error(
        "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29937, "
        "Requested 385. Please try again in 644ms.", "tokens", "rate_limit_exceeded"))
    assert (await fail(too_large)).retryable is False
    assert (await fail(busy)).retryable is True


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, ErrorKind.SERVER), (502, ErrorKind.SERVER), (503, ErrorKind.OVERLOADED), (504, ErrorKind.TIMEOUT)],
)
async def test_server_side_statuses(status: int, kind: ErrorKind) -> None:
    err = await fail(provider_answering(status, openai_error("The server had an error", "server_error", None)))
    assert err.kind is kind and err.retryable is True


async def test_openai_context_length_exceeded() -> None:
    body = openai_error("This model's maximum context length is 128000 tokens.", "invalid_request_error",
                        "context_length_exceeded")
    err = await fail(provider_answering(400, body))
    assert isinstance(err, evalkit.ContextLengthError) and err.retryable is False


async def test_401_is_auth_and_not_retryable() -> None:
    body = openai_error("Incorrect API key provided: sk-test-FA****0000.", "invalid_request_error",
                        "invalid_api_key")
    err = await fail(provider_answering(401, body))
    assert err.kind is ErrorKind.AUTH and err.retryable is False


async def test_azure_content_filter_400() -> None:
    body = {"error": {"message": "The response was filtered", "type": None, "param": "prompt",
                      "code": "content_filter", "status": 400}}
    err = await fail(provider_answering(400, body, target="azure:dep"))
    assert err.kind is ErrorKind.CONTENT_FILTER


async def test_malformed_json_on_200() -> None:
    err = await fail(provider_answering(200, raw=b'{"id": "chatcmpl-1", "choices": [ {"mess'))
    assert err.kind is ErrorKind.INVALID_RESPONSE and err.retryable


async def test_empty_choices_on_200() -> None:
    err = await fail(provider_answering(200, {"id": "x", "object": "chat.completion", "choices": []}))
    assert err.kind is ErrorKind.INVALID_RESPONSE


async def test_non_json_error_body() -> None:
    err = await fail(provider_answering(502, raw=b"<html>Bad Gateway</html>"))
    assert err.kind is ErrorKind.SERVER and "Bad Gateway" in err.message


def _sse(*chunks: dict, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def _delta(text: str, finish: str | None = None) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


async def test_stream_cut_before_final_event() -> None:
    p = provider_answering(200, raw=_sse(_delta("Hel"), _delta("lo"), done=False),
                           headers={"content-type": "text/event-stream"})
    err = await fail(p, stream=True)
    assert isinstance(err, evalkit.StreamInterruptedError) and err.retryable


async def test_stream_with_malformed_chunk() -> None:
    raw = _sse(_delta("Hel")) .replace(b"data: [DONE]", b"data: {not json\n\ndata: [DONE]")
    p = provider_answering(200, raw=raw, headers={"content-type": "text/event-stream"})
    assert (await fail(p, stream=True)).kind is ErrorKind.INVALID_RESPONSE


async def test_stream_iterator_yields_deltas_and_keeps_the_response() -> None:
    usage = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    p = provider_answering(200, raw=_sse(_delta("Hel"), _delta("lo", "stop"), usage),
                           headers={"content-type": "text/event-stream"})
    stream = p.stream(evalkit.ChatRequest.from_prompt("hi"))
    deltas = [d async for d in stream]
    assert deltas == ["Hel", "lo"]
    assert stream.response.text == "Hello" and stream.response.usage.output_tokens == 2


async def test_connection_refused_is_connection() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    p = evalkit.get_provider("openai:gpt-4o-mini", api_key=KEY, transport=httpx.MockTransport(refuse))
    err = await fail(p)
    assert err.kind is ErrorKind.CONNECTION and err.retryable


async def test_read_timeout_is_timeout() -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    p = evalkit.get_provider("openai:gpt-4o-mini", api_key=KEY, transport=httpx.MockTransport(stall))
    assert (await fail(p)).kind is ErrorKind.TIMEOUT


async def test_error_names_provider_and_model() -> None:
    err = await fail(provider_answering(500, openai_error("boom", "server_error", None)))
    assert (err.provider, err.model) == ("openai", "gpt-4o-mini")
    assert str(err).startswith("[server 500] openai:gpt-4o-mini: boom")


def test_every_kind_has_one_class() -> None:
    for kind in ErrorKind:
        err = evalkit.errors.provider_error(kind, "x")
        assert err.kind is kind and isinstance(err, evalkit.ProviderError)
