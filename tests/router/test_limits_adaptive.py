"""Adaptive in-flight limits (AIMD): halve on a vendor's throttling once per burst, recover one slot per window."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

from evalkit import ChatRequest, ChatResponse, FinishReason, RateLimitError, Usage
from evalkit.errors import AllTargetsFailed, OverloadedError, ProviderError, ServerError
from evalkit.router import FallbackChain
from evalkit.router._aimd import AimdLimit, remaining_fraction
from evalkit.router.limits import LOCAL_LIMIT, LimitedTarget, Limits, LocalLimitError

from .fakes import fast_policy

REQ = ChatRequest.from_prompt("hello", max_tokens=10)
UNSETTLED_S = 5.0


def openai_headers(remaining: int, limit: int = 1000, tokens_left: int = 10**6) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-limit-tokens": str(10**6), "x-ratelimit-remaining-tokens": str(tokens_left),
            "x-ratelimit-reset-requests": "6ms"}


def ok(headers: dict[str, str] | None = None) -> ChatResponse:
    return ChatResponse(text="ok", finish_reason=FinishReason.STOP, model="puppet",
                        usage=Usage(input_tokens=3, output_tokens=2), rate_limits=headers or {})


def vendor_429() -> RateLimitError:
    return RateLimitError("Rate limit reached for requests", status=429, provider="puppet", retry_after=0.0)


class Puppet:
    """A target whose calls each wait until the test settles them, oldest first: an answer or an error."""

    name = "puppet"

    def __init__(self) -> None:
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.started = 0

    async def complete(self, request: ChatRequest, on_delta: Any = None) -> ChatResponse:
        self.started += 1
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        outcome = await asyncio.wait_for(future, UNSETTLED_S)  # a call the test never settles fails it, no hang
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def settle(self, outcome: Any) -> None:
        """End the oldest call still waiting with ``outcome``, and let everyone react to it."""
        self.pending.popleft().set_result(outcome)
        await turns()

    def stream(self, request: ChatRequest) -> Any:
        puppet = self

        class Stream:
            response: ChatResponse | None = None

            async def __aiter__(self) -> Any:
                yield "o"
                Stream.response = await puppet.complete(request)
                self.response = Stream.response

        return Stream()


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def fire(limited: LimitedTarget, n: int) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.ensure_future(limited.complete(REQ)) for _ in range(n)]
    await turns()
    return tasks


def adaptive(ceiling: int = 32, **changes: Any) -> tuple[Puppet, LimitedTarget]:
    puppet = Puppet()
    return puppet, LimitedTarget(puppet, Limits(max_in_flight=ceiling, adaptive=True, **changes))


# -- multiplicative decrease ---------------------------------------------------------------------------------


async def test_a_burst_of_32_concurrent_429s_halves_the_limit_once() -> None:
    puppet, limited = adaptive(32)
    tasks = await fire(limited, 32)
    assert puppet.started == 32 and limited.allowed_in_flight == 32
    for _ in range(32):
        await puppet.settle(vendor_429())
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RateLimitError) for r in results)
    assert limited.allowed_in_flight == 16 and limited.decreases == 1


async def test_each_new_burst_halves_again_down_to_the_floor() -> None:
    puppet, limited = adaptive(32, min_in_flight=3)
    seen = []
    for _ in range(6):  # one call at a time: each started after the last decrease, so each one counts
        task = (await fire(limited, 1))[0]
        await puppet.settle(vendor_429())
        with pytest.raises(RateLimitError):
            await task
        seen.append(limited.allowed_in_flight)
    assert seen == [16, 8, 4, 3, 3, 3]
    assert limited.decreases == 4  # a 429 at the floor lowers nothing and is not counted


async def test_an_overload_decreases_but_a_local_refusal_or_a_server_error_does_not() -> None:
    for error, lowered in ((OverloadedError("Overloaded", status=529), True),
                           (LocalLimitError("local limit: x saturated; not sent"), False),
                           (RateLimitError("a vendor's own code", code=LOCAL_LIMIT), True),
                           (ServerError("boom", status=500), False)):
        puppet, limited = adaptive(8)
        task = (await fire(limited, 1))[0]
        await puppet.settle(error)
        with pytest.raises(ProviderError):
            await task
        assert (limited.allowed_in_flight, limited.decreases) == ((4, 1) if lowered else (8, 0)), error


async def test_a_cut_stops_new_calls_until_the_calls_in_flight_fall_below_it() -> None:
    puppet, limited = adaptive(8, on_saturated="wait")
    first = await fire(limited, 8)
    await puppet.settle(vendor_429())  # 7 still in flight, 4 allowed
    assert limited.allowed_in_flight == 4 and limited.in_flight == 7 and limited.saturated()
    late = await fire(limited, 2)
    assert puppet.started == 8  # the two late callers queue
    for in_flight in (6, 5, 4):
        await puppet.settle(ok())
        assert limited.in_flight == in_flight and puppet.started == 8 and limited.saturated()
    await puppet.settle(ok())  # 3 in flight < 4 allowed: the first queued caller goes, then it is full again
    assert puppet.started == 9 and limited.in_flight == 4 and limited.saturated()
    while puppet.pending:
        await puppet.settle(ok())
    await asyncio.gather(*first[1:], *late)
    assert puppet.started == 10 and limited.in_flight == 0 and not limited.saturated()


async def test_skip_mode_refuses_after_a_cut_and_says_the_limit_was_lowered() -> None:
    puppet, limited = adaptive(4)
    tasks = await fire(limited, 4)
    await puppet.settle(vendor_429())
    with pytest.raises(RateLimitError) as caught:
        await limited.complete(REQ)
    assert caught.value.code == LOCAL_LIMIT and puppet.started == 4
    assert "3 in flight (max 2, lowered from 4 after rate limits)" in caught.value.message
    while puppet.pending:
        await puppet.settle(ok())
    await asyncio.gather(*tasks, return_exceptions=True)


# -- additive increase ---------------------------------------------------------------------------------------


async def test_successes_recover_one_slot_per_window_up_to_the_ceiling_and_no_further() -> None:
    puppet, limited = adaptive(32)
    task = (await fire(limited, 1))[0]
    await puppet.settle(vendor_429())
    await asyncio.gather(task, return_exceptions=True)
    assert limited.allowed_in_flight == 16
    successes, trace = 0, []
    while limited.allowed_in_flight < 32:
        task = (await fire(limited, 1))[0]
        await puppet.settle(ok())
        await task
        successes += 1
        trace.append(limited.allowed_in_flight)
    # +1 after `allowed` successes each: 16 + 17 + ... + 31 successes to get from 16 back to 32.
    assert successes == sum(range(16, 32)) == 376
    assert trace == sorted(trace) and trace.count(16) == 15 and trace.count(17) == 17
    for _ in range(100):
        task = (await fire(limited, 1))[0]
        await puppet.settle(ok())
        await task
    assert limited.allowed_in_flight == 32


async def test_a_success_sent_before_the_cut_does_not_count_towards_recovery() -> None:
    puppet, limited = adaptive(2)
    stale = await fire(limited, 2)
    await puppet.settle(vendor_429())
    assert limited.allowed_in_flight == 1
    await puppet.settle(ok())  # sent under the old limit: says nothing about the new one
    await asyncio.gather(*stale, return_exceptions=True)
    assert limited.allowed_in_flight == 1
    fresh = (await fire(limited, 1))[0]
    await puppet.settle(ok())
    await fresh
    assert limited.allowed_in_flight == 2


async def test_a_429_from_a_call_sent_before_the_cut_does_not_cut_again_but_a_fresh_one_does() -> None:
    puppet, limited = adaptive(16, on_saturated="wait")
    stale = await fire(limited, 16)
    for _ in range(10):
        await puppet.settle(vendor_429())
    assert limited.allowed_in_flight == 8 and limited.decreases == 1
    while puppet.pending:  # the rest of the burst, and the queue behind it
        await puppet.settle(ok())
    fresh = await fire(limited, 1)
    await puppet.settle(vendor_429())
    await asyncio.gather(*stale, *fresh, return_exceptions=True)
    assert limited.allowed_in_flight == 4 and limited.decreases == 2


# -- rate-limit headers --------------------------------------------------------------------------------------


async def test_headers_under_20_percent_hold_and_under_5_percent_decrease_once_per_burst() -> None:
    puppet, limited = adaptive(8)
    task = (await fire(limited, 1))[0]
    await puppet.settle(vendor_429())
    await asyncio.gather(task, return_exceptions=True)
    assert limited.allowed_in_flight == 4

    async def one(headers: dict[str, str]) -> None:
        call = (await fire(limited, 1))[0]
        await puppet.settle(ok(headers))
        await call

    for _ in range(40):  # 19.9 % of the requests left: hold
        await one(openai_headers(remaining=199))
    assert limited.allowed_in_flight == 4
    for _ in range(4):  # 20 %: normal growth
        await one(openai_headers(remaining=200))
    assert limited.allowed_in_flight == 5
    for _ in range(5):  # requests fine, but 4 % of the tokens left: the smallest budget decides
        await one(openai_headers(remaining=900, tokens_left=40_000))
    assert limited.allowed_in_flight == 1 and limited.decreases == 3  # 5 -> 2 -> 1, then at the floor
    burst = await fire(limited, 1)
    await puppet.settle(ok(openai_headers(remaining=900)))
    await asyncio.gather(*burst)
    assert limited.allowed_in_flight == 2

    puppet, limited = adaptive(16)
    burst = await fire(limited, 16)
    for _ in range(16):  # a burst of answers saying 1 % is left: one decrease, like a burst of 429s
        await puppet.settle(ok(openai_headers(remaining=10)))
    await asyncio.gather(*burst)
    assert limited.allowed_in_flight == 8 and limited.decreases == 1


def test_remaining_fraction_reads_each_vendors_headers_and_ignores_what_it_cannot_read() -> None:
    assert remaining_fraction(openai_headers(remaining=250)) == pytest.approx(0.25)
    anthropic = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
                 "anthropic-ratelimit-tokens-limit": "1000", "anthropic-ratelimit-tokens-remaining": "900",
                 "anthropic-ratelimit-input-tokens-limit": "800", "anthropic-ratelimit-input-tokens-remaining": "80",
                 "anthropic-ratelimit-output-tokens-limit": "200", "anthropic-ratelimit-output-tokens-remaining": "150",
                 "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:00Z"}
    assert remaining_fraction(anthropic) == pytest.approx(0.1)  # input tokens are the scarcest
    assert remaining_fraction({}) is None
    assert remaining_fraction({"retry-after": "3", "x-ratelimit-reset-requests": "1s"}) is None
    garbled = {"x-ratelimit-limit-requests": "0", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-limit-tokens": "lots", "x-ratelimit-remaining-tokens": "nan"}
    assert remaining_fraction(garbled) is None
    nan = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "nan"}
    assert remaining_fraction(nan) is None


# -- streams, wrapped routers, settings ----------------------------------------------------------------------


async def test_a_stream_lowers_and_raises_the_limit_like_a_call() -> None:
    puppet, limited = adaptive(2)

    async def streamed(outcome: Any) -> Any:
        stream = limited.stream(REQ)

        async def read() -> list[str]:
            return [d async for d in stream]

        task = asyncio.ensure_future(read())
        await turns()
        await puppet.settle(outcome)
        return await asyncio.gather(task, return_exceptions=True)

    [failed] = await streamed(vendor_429())
    assert isinstance(failed, RateLimitError) and limited.allowed_in_flight == 1 and limited.decreases == 1
    [deltas] = await streamed(ok(openai_headers(remaining=900)))
    assert deltas == ["o"] and limited.allowed_in_flight == 2 and limited.in_flight == 0


async def test_a_wrapped_router_that_ran_out_of_targets_counts_by_its_last_error() -> None:
    puppet, limited = adaptive(8)
    throttled = AllTargetsFailed("all failed", errors=(ServerError("boom"), vendor_429()))
    nothing_sent = AllTargetsFailed("every breaker is open")
    for error in (nothing_sent, throttled):
        task = (await fire(limited, 1))[0]
        await puppet.settle(error)
        await asyncio.gather(task, return_exceptions=True)
    assert limited.allowed_in_flight == 4 and limited.decreases == 1


async def test_in_a_retrying_chain_a_429_burst_cuts_once_and_every_call_is_answered() -> None:
    puppet, limited = adaptive(8, on_saturated="wait")
    chain = FallbackChain([limited], policy=fast_policy(retries_per_target=3), breaker=None)
    calls = [asyncio.ensure_future(chain.complete(REQ)) for _ in range(8)]
    await turns()
    for _ in range(8):
        await puppet.settle(vendor_429())
    assert limited.allowed_in_flight == 4 and limited.decreases == 1
    for _ in range(200):  # the retries, 4 at a time at most
        if not puppet.pending:
            break
        assert len(puppet.pending) <= 4
        await puppet.settle(ok())
        await asyncio.sleep(0.001)
    answers = await asyncio.gather(*calls)
    assert [len(a.attempts) for a in answers] == [2] * 8
    assert limited.in_flight == 0 and limited.decreases == 1


def test_adaptive_settings_that_make_no_sense_are_refused() -> None:
    for bad, message in (({"adaptive": True}, "needs max_in_flight"),
                         ({"max_in_flight": 4, "min_in_flight": 2}, "only with adaptive"),
                         ({"max_in_flight": 4, "adaptive": True, "min_in_flight": 5}, "above max_in_flight"),
                         ({"max_in_flight": 4, "adaptive": True, "min_in_flight": 0}, "positive integer"),
                         ({"max_in_flight": 4, "adaptive": "yes"}, "True or False")):
        with pytest.raises(ValueError, match=message):
            Limits(**bad)
    assert Limits(max_in_flight=4, adaptive=True, min_in_flight=2.0).min_in_flight == 2
    plain = LimitedTarget(Puppet(), Limits(max_in_flight=4))
    assert plain.allowed_in_flight == 4 and plain.decreases == 0
    assert LimitedTarget(Puppet(), Limits()).allowed_in_flight is None


def test_the_controller_alone_is_bounded_by_its_floor_and_ceiling() -> None:
    limit = AimdLimit(ceiling=3, floor=2)
    limit.throttled(limit.generation)
    assert limit.allowed == 2
    for _ in range(100):
        limit.succeeded(limit.generation, {})
    assert limit.allowed == 3
    with pytest.raises(ValueError):
        AimdLimit(ceiling=2, floor=3)
