"""Retry and rate-limit header dialects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evalkit.providers._headers import (
    parse_duration,
    parse_retry_after,
    rate_limit_headers,
    retry_after_seconds,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("8.64s", 8.64), ("1h2m3s", 3723.0), ("9ms", 0.009),
     ("0.5", 0.5), ("60", 60.0)],
)
def test_openai_reset_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 s", "1x", "m5"])
def test_bad_durations_are_none(text: str) -> None:
    assert parse_duration(text) is None


@given(st.integers(0, 10), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_parts_add_up(h: int, m: int, s: int, ms: int) -> None:
    text = f"{h}h{m}m{s}s{ms}ms"
    assert parse_duration(text) == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(seconds=42)
    assert parse_retry_after(format_datetime(when, usegmt=True), now=NOW) == pytest.approx(42)


def test_retry_after_in_the_past_is_zero() -> None:
    when = datetime.fromtimestamp(NOW, timezone.utc) - timedelta(seconds=42)
    assert parse_retry_after(format_datetime(when, usegmt=True), now=NOW) == 0.0


def test_anthropic_rfc3339_reset_when_exhausted() -> None:
    reset = datetime.fromtimestamp(NOW + 12, timezone.utc).isoformat().replace("+00:00", "Z")
    headers = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}
    assert retry_after_seconds(headers, now=NOW) == pytest.approx(12)


def test_reset_of_a_budget_not_exhausted_is_not_a_wait() -> None:
    headers = {"x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms"}
    assert retry_after_seconds(headers) is None


def test_header_names_are_case_insensitive() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0


def test_rate_limit_headers_selects_and_lowercases() -> None:
    got = rate_limit_headers({"X-RateLimit-Limit-Requests": "500", "content-type": "json", "retry-after": "1"})
    assert got == {"x-ratelimit-limit-requests": "500", "retry-after": "1"}
