"""Enforced per-model rate limits: continuous-refill token buckets and the vendors' 429s.

The bucket arithmetic is checked on a fake clock (exact numbers); the HTTP
behaviour against a running emulator, with bounds that hold however slow the
machine is: a bucket never admits more than its capacity plus what refilled
while the calls were made.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import evalkit
from evalkit.emulator import Emulator
from evalkit.emulator._rate_limits import RateBuckets, minute_seconds
from evalkit.emulator.fleet import parse_fleet_text
from evalkit.errors import ConfigError, ErrorKind
from evalkit.providers._headers import retry_after_seconds

from .helpers import TLS, post
from .test_fleet import MINIMAL_MODEL
from .wire_calls import WIRES, chat_request, conversation

TIME_SCALE = 0.1  # one emulator minute = 6 real seconds
FLEET = """
version: 1
defaults:
  wires: [openai, anthropic, gemini]
  price: {input: 1, output: 2}
  context_window: 100000
  max_output_tokens: 100
  latency: {ttft_ms: 0, tokens_per_s: 100000}
  output_tokens: 5
  skills: {default: 1.0}
models:
  - name: rpm30
    rate_limits: {requests_per_minute: 30, enforce: true}
  - name: rpm60
    rate_limits: {requests_per_minute: 60, enforce: true}
  - name: tpm
    rate_limits: {requests_per_minute: 10000, tokens_per_minute: 1200, enforce: true}
  - name: rpm1
    rate_limits: {requests_per_minute: 1, enforce: true}
  - name: reported
    rate_limits: {requests_per_minute: 5}
"""
PROVIDER_MODELS = {"openai": "openai_base_url", "anthropic": "anthropic_base_url", "gemini": "gemini_base_url"}


@pytest.fixture(scope="module")
def _limited() -> Iterator[Emulator]:
    with Emulator(parse_fleet_text(FLEET), seed=0, time_scale=TIME_SCALE, datasets=()) as emu:
        yield emu


@pytest.fixture
def limited(_limited: Emulator) -> Emulator:
    """Models with enforced limits at time scale 0.1; every bucket full at the start of a test."""
    _limited.reset()
    return _limited


def _call(emu: Emulator, wire: str, model: str, *, max_tokens: int = 20) -> httpx.Response:
    url, headers, body = chat_request(emu, wire, model, conversation("Say hi."), stream=False)
    if wire == "gemini":
        body["generationConfig"]["maxOutputTokens"] = max_tokens
    else:
        body["max_tokens"] = max_tokens
    return post(url, headers=headers, json=body)


def _drain(emu: Emulator, wire: str, model: str, limit: int = 500) -> tuple[int, httpx.Response, float]:
    """Call until the first 429: (calls admitted before it, the 429, seconds it took)."""
    start = time.monotonic()
    for admitted in range(limit):
        response = _call(emu, wire, model)
        if response.status_code == 429:
            return admitted, response, time.monotonic() - start
        assert response.status_code == 200, response.text
    raise AssertionError(f"no 429 after {limit} calls")


# -- the buckets, on a fake clock -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _spec(rpm: int = 600, tpm: int = 100_000, *, enforce: bool = True) -> Any:
    flag = "true" if enforce else "false"
    text = f"models:{MINIMAL_MODEL}    rate_limits: {{requests_per_minute: {rpm}, tokens_per_minute: {tpm}, " \
           f"enforce: {flag}}}\n"
    return parse_fleet_text(text).model("m")


def test_a_600_rpm_bucket_allows_a_minute_of_burst_then_its_rate_in_scaled_time() -> None:
    clock = FakeClock()
    buckets = RateBuckets(time_scale=0.02, clock=clock)  # a minute lasts 1.2 s: one request per 2 ms
    spec = _spec(rpm=600)
    remaining = [buckets.take(spec, 10).snapshot.remaining_requests for _ in range(600)]
    assert remaining == list(range(599, -1, -1))  # the headers fall with every call
    refused = buckets.take(spec, 10)
    assert refused.refused == "requests"
    assert refused.retry_after_s == pytest.approx(0.002)
    assert refused.snapshot.remaining_requests == 0
    assert refused.snapshot.reset_requests_s == pytest.approx(1.2)  # fully replenished in one minute
    clock.now += 0.0019
    assert buckets.take(spec, 10).refused == "requests"  # not yet: refused calls are not charged...
    clock.now += 0.0001
    assert buckets.take(spec, 10).refused is None  # ...and exactly the Retry-After later there is room
    clock.now += 0.2  # refills at 500 requests/s, never past the minute's budget
    assert buckets.take(spec, 10).snapshot.remaining_requests == 99
    clock.now += 60
    assert buckets.take(spec, 10).snapshot.remaining_requests == 599


def test_tokens_are_metered_before_the_call_and_too_large_never_fits() -> None:
    clock = FakeClock()
    buckets = RateBuckets(time_scale=1.0, clock=clock)  # unscaled: 1,000 tokens per minute
    spec = _spec(rpm=10_000, tpm=1000)
    assert buckets.take(spec, 600).snapshot.remaining_tokens == 400
    short = buckets.take(spec, 500)
    assert short.refused == "tokens"
    assert short.retry_after_s == pytest.approx(100 * 60 / 1000)  # 100 tokens short at 1,000 per 60 s
    assert short.snapshot.remaining_tokens == 400 and short.snapshot.remaining_requests == 9_999
    too_large = buckets.take(spec, 1001)
    assert (too_large.refused, too_large.retry_after_s) == ("too_large", None)


def test_unenforced_limits_only_report_and_stop_at_empty() -> None:
    clock = FakeClock()
    buckets = RateBuckets(time_scale=1.0, clock=clock)
    spec = _spec(rpm=5, enforce=False)
    admissions = [buckets.take(spec, 1) for _ in range(8)]
    assert all(a.refused is None for a in admissions)
    assert [a.snapshot.remaining_requests for a in admissions] == [4, 3, 2, 1, 0, 0, 0, 0]


def test_a_minute_is_scaled_by_the_time_scale_but_never_vanishes() -> None:
    assert minute_seconds(0.02) == pytest.approx(1.2)
    assert minute_seconds(1.0) == 60
    assert minute_seconds(0.0) == 60  # time scale 0 removes delays, not the limits


# -- the fleet file -----------------------------------------------------------------------------------


def test_old_rate_limits_stay_valid_and_report_only() -> None:
    spec = parse_fleet_text(f"models:{MINIMAL_MODEL}    rate_limits: {{requests_per_minute: 50}}\n").model("m")
    assert (spec.rate_limits.requests_per_minute, spec.rate_limits.enforce) == (50, False)
    assert _spec().rate_limits.enforce is True


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("rate_limits: {enforce: yes please}", "models[0].rate_limits.enforce", "true or false"),
        ("rate_limits: {enforce: 1}", "models[0].rate_limits.enforce", "true or false"),
        ("rate_limits: {rpm: 10}", "models[0].rate_limits.rpm", "unknown key 'rpm'"),
        ("rate_limits: {requests_per_minute: 0, enforce: true}", "models[0].rate_limits.requests_per_minute",
         "> 0"),
    ],
)
def test_bad_rate_limits_name_file_line_and_field(line: str, field: str, message: str) -> None:
    text = f"models:{MINIMAL_MODEL}    {line}\n"
    with pytest.raises(ConfigError, match=message) as info:
        parse_fleet_text(text, source="fleet.yaml")
    assert (info.value.file, info.value.field, info.value.line) == ("fleet.yaml", field, 8)


# -- over HTTP: the vendors' 429s -----------------------------------------------------------------------


def test_openai_429_is_openais_with_remaining_zero_and_retry_after(limited: Emulator) -> None:
    admitted, response, elapsed = _drain(limited, "openai", "rpm30")
    assert 30 <= admitted <= 30 + 5 * elapsed  # a minute's burst, plus what refilled (5/s) meanwhile
    error = response.json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("rate_limit_exceeded", "requests", None)
    assert error["message"].startswith("Rate limit reached for rpm30 in organization org-emulator on requests "
                                       "per min (RPM): Limit 30, Used 30, Requested 1. Please try again in ")
    headers = response.headers
    assert headers["x-ratelimit-limit-requests"] == "30" and headers["x-ratelimit-remaining-requests"] == "0"
    wait = retry_after_seconds(headers)
    assert 0 < wait <= 0.2 + 0.001  # at most one request's refill: 6 s / 30
    assert float(headers["retry-after"]) == pytest.approx(int(headers["retry-after-ms"]) / 1000)


def test_anthropic_429_is_anthropics_with_its_headers(limited: Emulator) -> None:
    _, response, _ = _drain(limited, "anthropic", "rpm30")
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "rate limit of 30 requests per minute" in body["error"]["message"]
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert response.headers["anthropic-ratelimit-requests-limit"] == "30"
    assert response.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert 0 < retry_after_seconds(response.headers) <= 0.201


def test_gemini_429_is_resource_exhausted_with_quota_failure_and_retry_info(limited: Emulator) -> None:
    _, response, _ = _drain(limited, "gemini", "rpm30")
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in error["details"]}
    violation = details["QuotaFailure"]["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert violation["quotaValue"] == "30" and violation["quotaDimensions"]["model"] == "rpm30"
    delay = details["RetryInfo"]["retryDelay"]
    assert delay.endswith("s") and float(delay[:-1]) == retry_after_seconds(response.headers)
    assert 0 < float(delay[:-1]) <= 0.201


@pytest.mark.parametrize("wire", WIRES)
def test_waiting_the_retry_after_is_enough(limited: Emulator, wire: str) -> None:
    for _ in range(3):  # honest every time, not by luck
        _, response, _ = _drain(limited, wire, "rpm30")
        time.sleep(retry_after_seconds(response.headers))
        assert _call(limited, wire, "rpm30").status_code == 200


def test_a_tokens_budget_counts_prompt_and_output_cap(limited: Emulator) -> None:
    # 1,200 tokens a minute (200/s here); each call meters its prompt (a few tokens) + max_tokens 200.
    start = time.monotonic()
    responses = [_call(limited, "openai", "tpm", max_tokens=200) for _ in range(8)]
    elapsed = time.monotonic() - start
    statuses = [r.status_code for r in responses]
    assert statuses[:5] == [200] * 5 and 429 in statuses
    assert statuses.count(200) <= 5 + elapsed * 200 / 200 + 1
    response = next(r for r in responses if r.status_code == 429)
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "on tokens per min (TPM): Limit 1200" in error["message"]
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 200 + 10
    assert response.headers["x-ratelimit-remaining-requests"] != "0"  # the requests budget was not the problem
    limited.reset()
    gemini = [_call(limited, "gemini", "tpm", max_tokens=200) for _ in range(8)]
    error = next(r for r in gemini if r.status_code == 429).json()["error"]
    assert "GenerateContentInputTokensPerModelPerMinute" in json.dumps(error["details"])


def test_a_call_larger_than_the_whole_budget_is_too_large_without_retry_after(limited: Emulator) -> None:
    response = _call(limited, "openai", "tpm", max_tokens=1300)
    error = response.json()["error"]
    assert response.status_code == 429 and error["message"].startswith("Request too large for tpm")
    assert "retry-after" not in response.headers
    assert limited.stats()["models"]["tpm"]["rate_limited"] == {"too_large": 1}


def test_200s_report_the_bucket_so_a_client_sees_it_fall(limited: Emulator) -> None:
    for wire, name in (("openai", "x-ratelimit-remaining-requests"),
                       ("anthropic", "anthropic-ratelimit-requests-remaining")):
        limited.reset()
        start = time.monotonic()
        seen = [int(_call(limited, wire, "rpm60").headers[name]) for _ in range(10)]
        refilled = 10 * (time.monotonic() - start)  # 60 a minute = 10/s here
        assert seen[0] == 59 and seen == sorted(seen, reverse=True), (wire, seen)
        assert seen[-1] <= 50 + refilled, (wire, seen)
    limited.reset()
    tokens = [int(_call(limited, "openai", "tpm", max_tokens=100).headers["x-ratelimit-remaining-tokens"])
              for _ in range(3)]
    assert 1200 - tokens[0] >= 100 and tokens[0] - tokens[1] >= 50  # prompt + cap, less a little refill


def test_calls_paced_under_the_limit_all_pass_from_an_empty_bucket(limited: Emulator) -> None:
    _drain(limited, "openai", "rpm60")  # 60 a minute = 10/s at this time scale
    start = time.monotonic()
    statuses = []
    for i in range(1, 13):  # 8 calls/s; each sent at or after its slot, never early
        time.sleep(max(start + i * 0.125 - time.monotonic(), 0.0))
        statuses.append(_call(limited, "openai", "rpm60").status_code)
    assert statuses == [200] * 12


def test_a_refused_call_draws_no_fault_and_consumes_no_script_step(limited: Emulator) -> None:
    assert _call(limited, "openai", "rpm1").status_code == 200  # one a minute: 6 s to refill here
    limited.script("rpm1", ["500"])
    assert _call(limited, "openai", "rpm1").status_code == 429  # refused at the gate...
    stats = limited.stats()
    assert stats["scripts"]["rpm1"] == ["500"]  # ...before the scripted fault was taken
    assert stats["models"]["rpm1"]["rate_limited"] == {"requests": 1}
    assert stats["models"]["rpm1"]["faults"] == {}


def test_unenforced_limits_never_refuse(limited: Emulator) -> None:
    statuses = [_call(limited, "openai", "reported").status_code for _ in range(8)]
    assert statuses == [200] * 8


# -- evalkit's own providers -------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_evalkit_classifies_the_429_as_rate_limit_with_retry_after(limited: Emulator, wire: str) -> None:
    async def ask() -> tuple[Any, Any, list[Any]]:
        async with httpx.AsyncClient(verify=TLS, timeout=10) as client:
            provider = evalkit.get_provider(f"{wire}:rpm30", base_url=getattr(limited, PROVIDER_MODELS[wire]),
                                            api_key="k", client=client,
                                            prices=limited.fleet.model("rpm30").price.as_prices())
            request = evalkit.ChatRequest.from_prompt("Say hi.", max_tokens=20)
            answers = []
            for _ in range(100):  # until the budget runs out
                try:
                    answers.append(await provider.complete(request))
                except evalkit.ProviderError as exc:
                    await asyncio.sleep(exc.retry_after or 0)
                    return exc, await provider.complete(request), answers
            raise AssertionError("never rate limited")

    error, answer, answers = asyncio.run(ask())
    assert error.kind is ErrorKind.RATE_LIMIT and error.status == 429
    assert 0 < error.retry_after <= 0.201  # one request's refill at most: 6 s / 30
    assert answer.text  # waiting the Retry-After was enough
    assert len(answers) >= 30
    if wire != "gemini":  # Gemini sends no rate-limit headers on a 200
        remaining = [int(next(v for k, v in a.rate_limits.items() if k.endswith(("remaining-requests",
                                                                                   "requests-remaining"))))
                     for a in answers]
        assert remaining[:3] == [29, 28, 27]


def test_a_600_rpm_limit_in_seconds() -> None:
    # time_scale 0.5: a minute lasts 30 s, so 600 RPM refills 20 requests/s after its 600-request burst.
    fleet = parse_fleet_text(FLEET.split("models:")[0] + """models:
  - name: rpm600
    rate_limits: {requests_per_minute: 600, enforce: true}
""")
    with Emulator(fleet, seed=0, time_scale=0.5, datasets=()) as emu:
        url, headers, body = chat_request(emu, "openai", "rpm600", conversation("Say hi."), stream=False)

        async def burst() -> tuple[list[httpx.Response], float]:
            async with httpx.AsyncClient(verify=TLS, timeout=10) as client:
                gate = asyncio.Semaphore(16)

                async def one() -> httpx.Response:
                    async with gate:
                        return await client.post(url, headers=headers, json=body)

                start = time.monotonic()
                responses = await asyncio.gather(*(one() for _ in range(700)))
                return responses, time.monotonic() - start

        responses, elapsed = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    admitted = statuses.count(200)
    assert admitted + statuses.count(429) == 700
    assert 600 <= admitted <= 600 + 20 * elapsed + 1, (admitted, elapsed)
    refused = [r for r in responses if r.status_code == 429]
    assert refused and all(0 < retry_after_seconds(r.headers) <= 0.051 for r in refused)  # 30 s / 600
