"""``Limits`` rpm/tpm shared by replicas through a real Redis: one GCRA window per target, local in-flight.

Each replica is a :class:`LimitedTarget` with its own :class:`RedisState` (its
own connections and replica id), as separate processes would have.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit import ChatRequest, ChatResponse, FinishReason, RateLimitError, Usage
from evalkit.router._bucket import TokenBucket
from evalkit.router._shared_rate import CORRECT, TAKE
from evalkit.router.limits import LOCAL_LIMIT, LimitedTarget, Limits
from evalkit.router.state import RedisState
from evalkit.tokens import count_tokens
from tests.redis_server import RedisServer

REQ = ChatRequest.from_prompt("hello", max_tokens=10)
BIG = ChatRequest.from_prompt("hello", max_tokens=600)


class Counting:
    """Answers at once with ``usage``; counts the calls that reached it."""

    def __init__(self, name: str = "openai:gpt-4o-mini", usage: Usage | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.name = name
        self.usage = usage or Usage(input_tokens=10, output_tokens=5)
        self.gate = gate
        self.calls = 0

    async def complete(self, request: ChatRequest, on_delta: Any = None) -> ChatResponse:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return ChatResponse(text="ok", finish_reason=FinishReason.STOP, model=self.name, usage=self.usage,
                            provider=self.name)


def estimate(request: ChatRequest, name: str = "openai:gpt-4o-mini") -> int:
    return count_tokens(list(request.messages), name).count + (request.max_tokens or 0)


@pytest.fixture
async def states(redis_server, redis_prefix):
    """``make(url=None, **settings)``: a new RedisState (one replica) on the session server or ``url``."""
    made: list[RedisState] = []

    def make(url: str | None = None, **settings: Any) -> RedisState:
        # A generous timeout: on a loaded machine a 50 ms stall would be an outage (local limits) mid-test.
        settings.setdefault("timeout_ms", 2000)
        made.append(RedisState(url or redis_server.url, prefix=redis_prefix, **settings))
        return made[-1]

    yield make
    for state in made:
        await state.aclose()


async def hammer(target: LimitedTarget, until: float) -> int:
    """Call ``target`` in a loop until ``until`` (monotonic); the calls that passed."""
    passed = 0
    while time.monotonic() < until:
        try:
            await target.complete(REQ)
            passed += 1
        except RateLimitError as exc:
            assert exc.code == LOCAL_LIMIT
        await asyncio.sleep(0.002)
    return passed


async def exhaust(target: LimitedTarget) -> int:
    """Call until the first refusal: the calls that passed."""
    for passed in itertools.count():
        try:
            await target.complete(REQ)
        except RateLimitError:
            return passed
    raise AssertionError("unreachable")


def shared_level(state: RedisState, name: str, which: str, per_minute: float) -> float:
    """What the shared bucket holds now, read from its key (GCRA: capacity less what TAT is ahead of now)."""
    client = state.sync_client()
    raw = client.get(state.key("rate", name, which))
    seconds, micros = client.time()
    if raw is None:
        return per_minute
    ahead = max(float(raw) - (seconds * 1e6 + micros), 0.0)
    return per_minute - ahead * per_minute / 60e6


async def test_replicas_share_one_rpm_window_where_local_limits_would_multiply_it(states) -> None:
    rpm, replicas, run_s = 120.0, 3, 2.5
    limits = Limits(rpm=rpm)
    shared = [LimitedTarget(Counting(), limits, state=states()) for _ in range(replicas)]
    alone = [LimitedTarget(Counting(), limits) for _ in range(replicas)]  # the same replicas without the state
    started = time.monotonic()
    counts = await asyncio.gather(*(hammer(t, started + run_s) for t in shared + alone))
    elapsed = time.monotonic() - started
    bound = rpm + rpm / 60 * elapsed + 1
    shared_total, alone_total = sum(counts[:replicas]), sum(counts[replicas:])
    assert shared_total <= bound, f"{shared_total} calls passed over {elapsed:.2f}s; the window allows {bound:.1f}"
    assert shared_total >= rpm, "the shared window's whole first minute is usable"
    assert alone_total > 2 * bound, "per-process buckets pass about replicas x the limit (the bug)"


async def test_tpm_is_shared_and_corrected_with_the_actual_usage(states) -> None:
    tpm = 1000.0
    first, second = (LimitedTarget(Counting(), Limits(tpm=tpm), state=states()) for _ in range(2))
    assert 600 < estimate(BIG) <= tpm < 2 * estimate(BIG)
    await first.complete(BIG)
    await first._shared.state.flush()  # the correction runs in the background
    # Only 15 tokens were used, so another replica's worst case still fits the minute.
    await second.complete(BIG)
    await second._shared.state.flush()
    assert shared_level(second._shared.state, first.name, "tpm", tpm) == pytest.approx(tpm - 30, abs=2)


async def test_a_tpm_overrun_on_one_replica_delays_the_next_call_on_another(states) -> None:
    tpm = 1200.0
    heavy = Counting(usage=Usage(input_tokens=1000, output_tokens=1000))
    first = LimitedTarget(heavy, Limits(tpm=tpm), state=states())
    second_provider = Counting()
    second = LimitedTarget(second_provider, Limits(tpm=tpm), state=states())
    await first.complete(REQ)
    await first._shared.state.flush()
    with pytest.raises(RateLimitError) as caught:
        await second.complete(REQ)
    # Level is 1200 - 2000 = -800; the next call needs its estimate on top, at 20 tokens/s.
    assert caught.value.retry_after == pytest.approx((800 + estimate(REQ)) / 20.0, rel=0.01)
    assert second_provider.calls == 0


async def test_skip_refuses_with_the_shared_wait_and_wait_sends_when_the_window_refills(states) -> None:
    limits = Limits(rpm=120)  # one request every 0.5 s
    first = LimitedTarget(Counting(), limits, state=states())
    assert await exhaust(first) >= 120
    provider = Counting()
    skip = LimitedTarget(provider, limits, state=states())
    with pytest.raises(RateLimitError) as caught:
        await skip.complete(REQ)
    assert caught.value.code == LOCAL_LIMIT and 0 < caught.value.retry_after <= 0.5
    assert provider.calls == 0 and skip.in_flight == 0

    short = LimitedTarget(provider, Limits(rpm=120, on_saturated="wait", max_wait_s=0.05), state=states())
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await short.complete(REQ)
    assert 0.05 <= time.monotonic() - started < 0.45 and caught.value.retry_after > 0
    assert "after waiting" in str(caught.value) and provider.calls == 0

    patient = LimitedTarget(provider, Limits(rpm=120, on_saturated="wait", max_wait_s=2.0), state=states())
    await patient.complete(REQ)
    assert provider.calls == 1


async def test_one_replicas_waiters_are_served_first_come_first_served(states) -> None:
    limits = Limits(rpm=240, on_saturated="wait", max_wait_s=5.0)  # one request every 0.25 s
    await exhaust(LimitedTarget(Counting(), Limits(rpm=240), state=states()))
    waiting = LimitedTarget(Counting(), limits, state=states())
    order: list[int] = []

    async def call(i: int) -> None:
        await waiting.complete(REQ)
        order.append(i)

    started = time.monotonic()
    tasks = []
    for i in range(3):
        tasks.append(asyncio.ensure_future(call(i)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert time.monotonic() - started >= 0.5, "three calls in a drained window take at least two refills"


async def test_max_in_flight_stays_per_replica(states) -> None:
    gate = asyncio.Event()
    limits = Limits(max_in_flight=1, rpm=1000)
    first, second = (LimitedTarget(Counting(gate=gate), limits, state=states()) for _ in range(2))
    held = [asyncio.ensure_future(t.complete(REQ)) for t in (first, second)]
    await asyncio.sleep(0.05)
    assert first.in_flight == second.in_flight == 1, "each replica has its own slot"
    with pytest.raises(RateLimitError) as caught:
        await first.complete(REQ)
    assert caught.value.retry_after is None, "a full in-flight limit is local: nobody knows when it ends"
    gate.set()
    await asyncio.gather(*held)
    assert first.in_flight == second.in_flight == 0


async def test_a_slot_is_held_while_redis_answers_so_concurrent_calls_cannot_overshoot_it(states) -> None:
    gate = asyncio.Event()
    provider = Counting(gate=gate)
    target = LimitedTarget(provider, Limits(max_in_flight=3, rpm=10_000), state=states())
    calls = [asyncio.ensure_future(target.complete(REQ)) for _ in range(50)]  # all check before Redis answers
    await asyncio.sleep(0.1)
    gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert provider.calls == 3 and sum(isinstance(r, RateLimitError) for r in results) == 47
    assert target.in_flight == 0


async def test_a_stream_takes_from_the_shared_window_and_is_corrected(states) -> None:
    class Streaming(Counting):
        def stream(self, request: ChatRequest) -> Any:
            outer = self

            class Stream:
                response = None

                async def __aiter__(self) -> Any:
                    yield "o"
                    self.response = await outer.complete(request)

            return Stream()

    state = states()
    tpm = 1000.0
    target = LimitedTarget(Streaming(), Limits(tpm=tpm), state=state)
    stream = target.stream(BIG)
    assert [delta async for delta in stream] == ["o"] and stream.response.text == "ok"
    await state.flush()
    assert shared_level(state, target.name, "tpm", tpm) == pytest.approx(tpm - 15, abs=2)


async def test_saturated_answers_from_the_last_shared_answer_without_io(states) -> None:
    limits = Limits(rpm=120)
    await exhaust(LimitedTarget(Counting(), limits, state=states()))
    state = states()
    other = LimitedTarget(Counting(), limits, state=state)
    assert not other.saturated(), "a replica that has not asked since knows nothing yet"
    with pytest.raises(RateLimitError) as caught:
        await other.complete(REQ)
    runs = []
    real_run = state.run
    state.run = lambda *a, **k: runs.append(a) or real_run(*a, **k)  # type: ignore[method-assign]
    assert other.saturated() and other.saturated(REQ)
    with pytest.raises(RateLimitError):
        await other.complete(REQ)  # refused without a round trip: the RPM window is known to be empty
    assert runs == []
    await asyncio.sleep(caught.value.retry_after + 0.01)
    assert not other.saturated()
    await other.complete(REQ)
    assert len(runs) == 1


async def test_idle_targets_leave_no_keys_behind(states) -> None:
    state = states()
    target = LimitedTarget(Counting(), Limits(rpm=120, tpm=6000), state=state)
    await target.complete(REQ)
    await state.flush()
    client = state.sync_client()
    rpm_ttl = client.pttl(state.key("rate", target.name, "rpm"))
    tpm_ttl = client.pttl(state.key("rate", target.name, "tpm"))
    # Full again 0.5 s after one request (120 rpm) and 0.15 s after 15 tokens (6000 tpm), plus a second.
    assert 1000 < rpm_ttl <= 1500 and 1000 < tpm_ttl <= 1150


async def test_corrections_of_concurrent_calls_add_up_exactly_in_fewer_round_trips(states) -> None:
    tpm, calls = 60_000.0, 200  # 1000 tokens/s of refill
    state = states()
    target = LimitedTarget(Counting(usage=Usage(input_tokens=7, output_tokens=3)), Limits(tpm=tpm), state=state)
    runs: list[Any] = []
    real_run = state.run
    state.run = lambda script, *a: runs.append(script) or real_run(script, *a)  # type: ignore[method-assign]
    started = time.monotonic()
    await asyncio.gather(*(target.complete(REQ) for _ in range(calls)))
    await state.flush()
    level = shared_level(state, target.name, "tpm", tpm)
    used = 10 * calls  # each call's estimate is corrected to the 10 tokens it used, none twice, none lost
    assert tpm - used - 5 <= level <= tpm - used + 1000 * (time.monotonic() - started) + 5
    assert runs.count(TAKE) == calls and runs.count(CORRECT) < calls / 10


# -- Redis down, slow, back -----------------------------------------------------------------------


async def test_redis_killed_mid_run_means_local_limits_then_one_shared_window_again(tmp_path, redis_prefix) -> None:
    server = RedisServer(tmp_path).start()
    made = [RedisState(server.url, prefix=redis_prefix, timeout_ms=50, retry_interval_s=0.2) for _ in range(2)]
    rpm = 120.0
    replicas = [LimitedTarget(Counting(), Limits(rpm=rpm), state=state) for state in made]
    try:
        assert sum([await exhaust(replicas[0]), await exhaust(replicas[1])]) <= rpm + 2
        server.kill()
        await asyncio.sleep(0.5)  # until the last shared answer's wait ends: refused without asking till then
        # No crash, no error but the limits' own: each replica has its own minute, less what it used itself.
        during = [await exhaust(replica) for replica in replicas]
        assert during[0] <= 3 and rpm - 1 <= during[1] <= rpm + 3, during
        assert not made[0].up
        server.start()  # an empty server on the same port, as after a crash
        await asyncio.sleep(0.25)  # the retry interval
        started = time.monotonic()
        counts = await asyncio.gather(*(hammer(r, started + 1.0) for r in replicas))
        elapsed = time.monotonic() - started
        assert made[0].up and made[1].up
        assert rpm - 1 <= sum(counts) <= rpm + rpm / 60 * elapsed + 1, counts
    finally:
        for state in made:
            await state.aclose()
        server.kill()


async def test_a_stalled_redis_costs_a_call_one_timeout_then_local_limits_until_it_answers(
        tmp_path, redis_prefix) -> None:
    server = RedisServer(tmp_path).start()
    state = RedisState(server.url, prefix=redis_prefix, timeout_ms=50, retry_interval_s=0.3)
    target = LimitedTarget(Counting(), Limits(rpm=600), state=state)
    key = state.key("rate", target.name, "rpm")
    try:
        await target.complete(REQ)
        server.pause()
        started = time.monotonic()
        await target.complete(REQ)  # no error: one timeout, then this replica's own bucket
        assert 0.05 <= time.monotonic() - started < 0.2
        started = time.monotonic()
        for _ in range(5):
            await target.complete(REQ)
        assert time.monotonic() - started < 0.02, "while Redis is marked down nothing waits for it"
        assert target._shared.local_requests.level == pytest.approx(600 - 7, abs=2), "local counts every call"
        server.resume()
        state.sync_client().delete(key)  # forget what Redis took so far: the next take must land there
        await asyncio.sleep(0.35)
        await target.complete(REQ)
        assert state.up and state.sync_client().exists(key), "shared again, without a restart"
    finally:
        await state.aclose()
        server.kill()


class ReplyDropper:
    """A TCP proxy to Redis that can swallow Redis's answers: the command runs, the client never hears back."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.dropping = False
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def start(self) -> ReplyDropper:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, answers: bool) -> None:
            while data := await source.read(65536):
                if not (answers and self.dropping):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer, False), pipe(upstream_reader, writer, True),
                             return_exceptions=True)

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_correction_whose_answer_was_lost_is_applied_once(redis_server, redis_prefix) -> None:
    proxy = await ReplyDropper(redis_server.port).start()
    state = RedisState(proxy.url, prefix=redis_prefix, timeout_ms=50, retry_interval_s=0.2)
    tpm = 6000.0  # 100 tokens/s of refill
    heavy = Counting(usage=Usage(input_tokens=500, output_tokens=500))  # 1000 used: more than estimated
    target = LimitedTarget(heavy, Limits(tpm=tpm), state=state)
    direct = RedisState(redis_server.url, prefix=redis_prefix)  # reads past the proxy: a blocking read stalls it
    def level() -> float:
        return shared_level(direct, target.name, "tpm", tpm)

    try:
        started = time.monotonic()
        await target.complete(REQ)
        await state.flush()  # Redis knows the scripts now: what is sent next runs at once
        await target.complete(BIG)
        proxy.dropping = True  # the correction leaves after this: Redis runs it, its answer is lost
        await asyncio.sleep(0.1)
        assert not state.up and state.failures == 1
        assert level() == pytest.approx(tpm - 2000, abs=20), "Redis did apply the correction"
        await target.complete(REQ)  # Redis is down: the local bucket
        proxy.dropping = False
        await asyncio.sleep(0.25)
        await target.complete(REQ)  # shared again: the state recovers and sends the correction again
        await state.flush()
        assert state.up and heavy.calls == 4
        # Three shared calls of 1000 tokens each (the lost correction counted once, not twice), plus the refill.
        assert tpm - 3000 - 5 <= level() <= tpm - 3000 + 100 * (time.monotonic() - started) + 5
    finally:
        await state.aclose()
        await direct.aclose()
        await proxy.aclose()


# -- the script against TokenBucket ----------------------------------------------------------------

_RUN = 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rpm=st.sampled_from([1.0, 2.0, 7.0, 60.0, 120.0]), tpm=st.sampled_from([100.0, 1000.0, 12345.0]),
       steps=st.lists(st.tuples(st.integers(0, 20_000), st.booleans(), st.integers(-3000, 3000)), max_size=40))
def test_the_script_is_a_token_bucket(redis_server, redis_prefix, rpm: float, tpm: float,
                                      steps: list[tuple[int, bool, int]]) -> None:
    """Takes and corrections at the same (injected) times: the same answers as two local TokenBuckets."""
    global _RUN
    _RUN += 1
    state = RedisState(redis_server.url, prefix=redis_prefix)
    client = state.sync_client()
    take, correct = client.register_script(TAKE.text), client.register_script(CORRECT.text)
    keys = [state.key("rate", f"t{_RUN}", "rpm"), state.key("rate", f"t{_RUN}", "tpm")]
    requests, tokens = TokenBucket(rpm, 0.0), TokenBucket(tpm, 0.0)
    now_ms = 0
    for index, (dt_ms, is_take, amount) in enumerate(steps):
        now_ms += dt_ms
        now, now_us = now_ms / 1000, now_ms * 1000
        if is_take:
            amount = abs(amount)
            rpm_wait, tpm_wait = requests.wait_s(1, now), tokens.wait_s(amount, now)
            answer = take(keys=keys, args=[rpm, tpm, amount, now_us])
            if rpm_wait == 0 and tpm_wait == 0:
                assert answer[0] == 1, (index, answer)
                requests.take(1)
                tokens.take(amount)
                assert answer[1] / 1e6 == pytest.approx(requests.wait_s(1, now), abs=1e-5)
            else:
                assert answer[0] == 0, (index, answer, rpm_wait, tpm_wait)
                assert answer[1] / 1e6 == pytest.approx(rpm_wait, abs=1e-5)
                assert answer[2] / 1e6 == pytest.approx(tpm_wait, abs=1e-5)
        else:
            name = state.key("fix", str(_RUN), str(index))
            assert correct(keys=[keys[1], name], args=[tpm, amount, now_us]) == 1
            assert correct(keys=[keys[1], name], args=[tpm, amount, now_us]) == 0, "a named batch applies once"
            tokens.wait_s(0, now)  # refill to now, as the script does
            tokens.give_back(amount)
    client.close()
