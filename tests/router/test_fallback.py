"""FallbackChain: order, retries, skips, bounds, and the one error that holds every attempt."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import evalkit
from evalkit.errors import AllTargetsFailed, ErrorKind
from evalkit.router import Action, FallbackChain

from .fakes import ScriptedProvider, fast_policy

REQ = evalkit.ChatRequest.from_prompt("hello", max_tokens=10)


async def test_first_healthy_target_serves_and_attempts_are_listed() -> None:
    a, b = ScriptedProvider("a", ["server", "server"]), ScriptedProvider("b")
    chain = FallbackChain([a, b], policy=fast_policy(retries_per_target=1))
    response = await chain.complete(REQ)
    assert response.provider == "b"
    assert [(x.target, x.error_kind, x.retry, x.depth) for x in response.attempts] == [
        ("a", "server", 0, 0), ("a", "server", 1, 0), ("b", None, 0, 1)]


async def test_auth_moves_to_another_provider_and_skips_targets_with_the_same_key() -> None:
    openai_key = ("openai", "https://api.openai.com/v1", 1)
    a = ScriptedProvider("openai:a", default="auth", credential=openai_key)
    a2 = ScriptedProvider("openai:a2", default="auth", credential=openai_key)
    b = ScriptedProvider("anthropic:b", credential=("anthropic", "https://api.anthropic.com", 2))
    response = await FallbackChain([a, a2, b], policy=fast_policy()).complete(REQ)
    assert (a.calls, a2.calls, response.provider) == (1, 0, "anthropic:b")
    assert [(x.target, x.error_kind, x.sent) for x in response.attempts] == [
        ("openai:a", "auth", True), ("openai:a2", "same_credentials", False), ("anthropic:b", None, True)]
    assert "openai:a" in response.attempts[1].error


async def test_auth_tries_targets_with_another_key_or_an_unknown_one() -> None:
    a = ScriptedProvider("openai:a", default="auth", credential=("openai", "u", 1))
    other_key = ScriptedProvider("openai:b", default="auth", credential=("openai", "u", 2))
    # The same key inside a nested router: a router's credentials are unknown, so it is tried.
    inner = FallbackChain([ScriptedProvider("x", credential=("openai", "u", 1))], name="inner")
    response = await FallbackChain([a, other_key, inner], policy=fast_policy()).complete(REQ)
    assert (a.calls, other_key.calls, response.provider) == (1, 1, "x")


async def test_auth_of_every_target_is_one_error() -> None:
    a, b = ScriptedProvider("a", ["auth"]), ScriptedProvider("b", ["auth"])
    with pytest.raises(AllTargetsFailed) as caught:
        await FallbackChain([a, b], policy=fast_policy(retries_per_target=3)).complete(REQ)
    assert (a.calls, b.calls) == (1, 1) and caught.value.kind is ErrorKind.AUTH  # never retried


async def test_bad_request_still_stops_the_chain() -> None:
    a, b = ScriptedProvider("a", ["bad_request"]), ScriptedProvider("b")
    with pytest.raises(AllTargetsFailed) as caught:
        await FallbackChain([a, b], policy=fast_policy()).complete(REQ)
    assert b.calls == 0 and caught.value.kind is ErrorKind.BAD_REQUEST


async def test_auth_over_http_skips_providers_sharing_the_endpoint_and_key() -> None:
    """Real providers: the credential identity is vendor, base URL and key, never shown."""
    bad, good = "sk-test-REVOKED-0000000000000000", "sk-test-VALID-11111111111111111"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != f"Bearer {good}":
            return httpx.Response(401, json={"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
        return httpx.Response(200, json={"id": "c1", "model": "gpt-4o", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    def provider(model: str, key: str) -> evalkit.HTTPProvider:
        return evalkit.get_provider(f"openai:{model}", api_key=key, base_url="http://mock.invalid/v1",
                                    transport=httpx.MockTransport(answer))

    first, same_key = provider("gpt-4o-mini", bad), provider("gpt-4o", bad)
    other_key = provider("gpt-4o", good)
    assert first.credential_id() == same_key.credential_id() != other_key.credential_id()
    assert bad not in repr(first.credential_id())
    response = await FallbackChain([first, same_key, other_key], policy=fast_policy()).complete(REQ)
    assert [(x.target, x.error_kind) for x in response.attempts] == [
        ("openai:gpt-4o-mini", "auth"), ("openai:gpt-4o", "same_credentials"), ("openai:gpt-4o", None)]


async def test_everything_fails_one_error_holds_every_attempt() -> None:
    targets = [ScriptedProvider(n, default="overloaded") for n in "abc"]
    with pytest.raises(AllTargetsFailed) as caught:
        await FallbackChain(targets, policy=fast_policy(retries_per_target=1, max_attempts=10)).complete(REQ)
    err = caught.value
    assert len(err.attempts) == 6 and len(err.errors) == 6
    assert err.retryable is False and err.kind is ErrorKind.OVERLOADED


async def test_max_attempts_bounds_the_call() -> None:
    targets = [ScriptedProvider(n, default="server") for n in "abcdef"]
    with pytest.raises(AllTargetsFailed) as caught:
        await FallbackChain(targets, policy=fast_policy(retries_per_target=5, max_attempts=4)).complete(REQ)
    assert sum(t.calls for t in targets) == 4 == len(caught.value.attempts)


async def test_deadline_bounds_a_slow_target() -> None:
    slow, fast = ScriptedProvider("slow", delay_s=5.0), ScriptedProvider("fast")
    chain = FallbackChain([slow, fast], policy=fast_policy(deadline_s=0.05))
    with pytest.raises(AllTargetsFailed) as caught:
        await chain.complete(REQ)
    assert caught.value.attempts[0].error_kind == "timeout"


async def test_retry_after_beyond_cap_moves_on_at_once() -> None:
    a, b = ScriptedProvider("a", ["rate_limit"], retry_after=120.0), ScriptedProvider("b")
    response = await FallbackChain([a, b], policy=fast_policy(retries_per_target=3)).complete(REQ)
    assert a.calls == 1 and response.provider == "b"


async def test_context_window_skips_small_targets_without_calling_them() -> None:
    small = ScriptedProvider("small", context_window=50)
    big = ScriptedProvider("big", context_window=100_000)
    request = evalkit.ChatRequest.from_prompt("word " * 400, max_tokens=10)
    response = await FallbackChain([small, big], policy=fast_policy()).complete(request)
    assert small.calls == 0 and response.provider == "big"
    assert response.attempts[0].sent is False and response.attempts[0].error_kind == "context_window"


async def test_context_length_error_skips_later_targets_no_larger() -> None:
    a = ScriptedProvider("a", ["context_length"], context_window=8000)
    b = ScriptedProvider("b", context_window=8000)
    c = ScriptedProvider("c", context_window=32000)
    response = await FallbackChain([a, b, c], policy=fast_policy()).complete(REQ)
    assert (a.calls, b.calls, response.provider) == (1, 0, "c")


async def test_content_filter_action_is_configurable() -> None:
    a, b = ScriptedProvider("a", ["content_filter"]), ScriptedProvider("b")
    policy = fast_policy().with_actions({"content_filter": "stop"})
    with pytest.raises(AllTargetsFailed):
        await FallbackChain([a, b], policy=policy).complete(REQ)
    assert b.calls == 0 and policy.actions[ErrorKind.CONTENT_FILTER] is Action.STOP


async def test_nested_chain_is_not_retried_by_the_outer_chain() -> None:
    inner_a, inner_b = ScriptedProvider("ia", default="server"), ScriptedProvider("ib", default="server")
    inner = FallbackChain([inner_a, inner_b], policy=fast_policy(retries_per_target=1), name="inner")
    outer_b = ScriptedProvider("ob")
    response = await FallbackChain([inner, outer_b], policy=fast_policy(retries_per_target=3)).complete(REQ)
    assert (inner_a.calls, inner_b.calls) == (2, 2), "inner retries once per target, outer never re-runs it"
    assert response.provider == "ob" and len(response.attempts) == 5
    assert response.attempts[-1].depth == 2


async def test_backoff_sleeps_honour_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    a = ScriptedProvider("a", ["rate_limit"], retry_after=2.0)
    policy = fast_policy(retry_after_cap_s=5.0, backoff_base_s=0.1, backoff_cap_s=0.1)
    await FallbackChain([a], policy=policy).complete(REQ)
    assert slept == [2.0]
