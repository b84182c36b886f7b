"""Adaptive limits pace by time too: a vendor's Retry-After holds the target, a low budget spaces calls."""

from __future__ import annotations

import pytest

from evalkit import RateLimitError
from evalkit.providers import remaining_fraction, request_budget
from evalkit.router._aimd import AimdLimit


def low(remaining: int, limit: int = 60, reset: str = "5.0s") -> dict[str, str]:
    """OpenAI's request headers with ``remaining`` left; ``reset``: until the budget is full again."""
    return {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": reset}


def test_a_low_budget_spaces_calls_at_the_refill_rate_less_the_calls_the_vendor_had_not_counted() -> None:
    aimd = AimdLimit(32)
    for _ in range(5):  # five calls start; the first answers with 10 of 60 left, refilled 50 per 5 s
        aimd.started(0.0)
    aimd.succeeded(0, low(10), index=1, now=0.0)
    assert aimd.interval_s == 0.1 and aimd.level == 10 - 4, "4 calls started after it were not counted yet"
    now, starts = 0.0, []
    while len(starts) < 9:
        if aimd.wait_s(now) == 0.0:
            aimd.started(now)
            starts.append(round(now, 3))
        else:
            now += 0.01
    assert starts[:6] == [0.0] * 6, "what is left goes at once"
    assert [round(b - a, 2) for a, b in zip(starts[5:], starts[6:])] == [0.1, 0.1, 0.1], "then one per refill"


def test_an_answer_older_than_the_tracked_one_does_not_make_the_budget_look_fuller() -> None:
    aimd = AimdLimit(32)
    for _ in range(10):
        aimd.started(0.0)
    aimd.succeeded(0, low(2), index=8, now=0.0)
    assert aimd.level == 0 and aimd.wait_s(0.0) > 0, "2 left, and 2 calls started after it: none"
    aimd.succeeded(0, low(11), index=3, now=0.0)  # counted by the vendor before the answer above
    assert aimd.level == 0 and aimd.wait_s(0.0) > 0
    aimd.succeeded(0, low(50), index=10, now=0.0)  # a newer answer: the budget is ample again
    assert aimd.level is None


def test_a_429_holds_the_target_until_its_retry_after_then_lets_calls_in_one_refill_apart() -> None:
    aimd = AimdLimit(32)
    aimd.started(0.0)
    aimd.succeeded(0, low(5, reset="5.5s"), index=1, now=0.0)
    aimd.started(0.0)
    aimd.failed(0, RateLimitError("slow down", status=429, retry_after=2.0), 1.0, index=2)
    assert aimd.wait_s(1.0) == 2.0 and aimd.wait_s(2.9) > 0.0 and aimd.wait_s(3.0) == 0.0
    aimd.started(3.0)
    assert abs(aimd.wait_s(3.0) - 0.1) < 1e-9, "the next one waits a refill, not a stampede at 3.0"


def test_a_429_without_a_known_refill_rate_only_holds_until_its_retry_after() -> None:
    aimd = AimdLimit(8)
    aimd.failed(0, RateLimitError("slow down", status=429, retry_after=0.5), 10.0, index=0)
    assert aimd.wait_s(10.2) > 0 and aimd.wait_s(10.5) == 0.0 and aimd.level is None
    aimd.failed(aimd.generation, RateLimitError("busy", status=429), 11.0, index=0)
    assert aimd.wait_s(11.0) == 0.0, "no Retry-After: nothing to wait for by time, the limit halves"


def test_request_budget_reads_openai_and_anthropic_headers() -> None:
    assert request_budget(low(10, reset="5s")) == (10.0, 0.1)
    anthropic = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                 "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:10Z"}
    budget = request_budget(anthropic, now=1767225600.0)  # 2026-01-01T00:00:00Z
    assert budget is not None and budget.remaining == 0 and abs(budget.refill_interval_s - 0.2) < 1e-9
    assert request_budget(low(60)) is None, "nothing used: no rate to learn"
    assert request_budget({"x-ratelimit-remaining-requests": "3"}) is None
    assert request_budget(low(10, reset="soon")) is None


def recorded_headers(path: str) -> dict[str, str]:
    """The first response's headers in a cassette of ../shared/wire, lower-cased as ChatResponse holds them."""
    import yaml

    from tests.shared import shared_path

    wire = shared_path("wire", must_contain=("openai",))
    if wire is None:
        pytest.skip("../shared/wire is not here")
    response = yaml.safe_load((wire / path).read_text())["interactions"][0]["response"]
    return {k.lower(): v[0] if isinstance(v, list) else v for k, v in response["headers"].items()}


@pytest.mark.parametrize(("cassette", "fraction", "interval"), [
    # OpenAI: 9,999 of 10,000 requests left, reset "8.64s" = a day's 10,000 requests, one per 8.64 s.
    ("openai/test_chat.yaml", 0.9999, 8.64),
    # Anthropic: 5 of 5 left, so nothing used and no rate to learn from.
    ("anthropic/test_anthropic_message_create_legacy.yaml", 1.0, None),
])
def test_vendors_recorded_rate_limit_headers_read_as_they_mean(cassette: str, fraction: float,
                                                               interval: float | None) -> None:
    headers = recorded_headers(cassette)
    assert remaining_fraction(headers) == pytest.approx(fraction, abs=1e-3)
    budget = request_budget(headers)
    assert (budget.refill_interval_s if budget else None) == (pytest.approx(interval) if interval else None)
    aimd = AimdLimit(32)
    aimd.started(0.0)
    aimd.succeeded(0, headers, index=1, now=0.0)
    assert aimd.level is None and aimd.wait_s(0.0) == 0.0, "a full budget paces nothing"
