"""RedisState, the seam every shared component uses: scripts, outages, background and batched writes.

Against Debian's real ``redis-server``; outages use a server of the test's own
(killed, paused, restarted on the same port).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import ConfigError, StateUnavailableError
from evalkit.router.state import RedisState, SharedScript
from tests.redis_server import RedisServer

INCR = SharedScript("test_incr", "return redis.call('INCRBY', KEYS[1], ARGV[1])")
# Idempotent, as deferred writes must be: the marker makes a second run a no-op.
ONCE = SharedScript("test_once", """
if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 0""")


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def _count(state: RedisState, key: str) -> int:
    return int(state.read(lambda client: client.get(state.key(key))) or 0)


async def test_a_script_runs_atomically_under_the_prefix(redis_server: Any, redis_prefix: str) -> None:
    state = RedisState(redis_server.url, prefix=redis_prefix)
    results = await asyncio.gather(*(state.run(INCR, [state.key("n")], [1]) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))  # each increment saw the one before: no lost update
    assert _count(state, "n") == 50
    await state.aclose()


async def test_redis_down_is_a_typed_error_at_once_then_tried_again_after_the_interval(
        own_server: RedisServer) -> None:
    state = RedisState(own_server.url, prefix="p", timeout_ms=50, retry_interval_s=0.2)
    await state.run(INCR, [state.key("n")], [1])
    own_server.kill()
    with pytest.raises(StateUnavailableError) as first:
        await state.run(INCR, [state.key("n")], [1])
    assert first.value.kind.value == "state_unavailable" and first.value.retry_after == pytest.approx(0.2)
    assert not state.up
    started = time.monotonic()
    with pytest.raises(StateUnavailableError, match="is down"):  # within the interval: no network wait at all
        await state.run(INCR, [state.key("n")], [1])
    assert time.monotonic() - started < 0.01
    own_server.start()
    await asyncio.sleep(0.25)
    assert await state.run(INCR, [state.key("n")], [1]) == 1  # back, same object: the restarted Redis is empty
    assert state.up and state.failures == 1
    await state.aclose()


async def test_a_paused_redis_costs_one_timeout_not_a_hang(own_server: RedisServer) -> None:
    state = RedisState(own_server.url, prefix="p", timeout_ms=50, retry_interval_s=5)
    await state.run(INCR, [state.key("n")], [1])
    own_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailableError):
            await state.run(INCR, [state.key("n")], [1])
        assert time.monotonic() - started < 0.5
    finally:
        own_server.resume()
    await state.aclose()


async def test_deferred_writes_share_one_round_trip(redis_server: Any, redis_prefix: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    state = RedisState(redis_server.url, prefix=redis_prefix)
    batches: list[int] = []
    send = state._pipeline

    async def counted(batch: list[Any]) -> None:
        batches.append(len(batch))
        await send(batch)

    monkeypatch.setattr(state, "_pipeline", counted)
    for i in range(20):
        state.defer(ONCE, [state.key("total"), state.key("seen")], [1, f"w{i}"])
    assert _count(state, "total") == 0  # nobody waited for them
    await state.flush()
    assert _count(state, "total") == 20
    assert batches == [20]  # one pipeline, one round trip, for twenty settles
    await state.aclose()


async def test_writes_deferred_while_redis_is_down_land_once_it_is_back(own_server: RedisServer) -> None:
    state = RedisState(own_server.url, prefix="p", timeout_ms=50, retry_interval_s=0.1)
    await state.run(INCR, [state.key("warm")], [1])
    own_server.kill()
    for i in range(5):
        state.defer(ONCE, [state.key("total"), state.key("seen")], [1, f"w{i}"])
    await state.flush()  # they failed: kept, not lost
    own_server.start()
    await asyncio.sleep(0.15)
    await state.run(INCR, [state.key("warm")], [1])  # the first answer after the outage sends what was kept
    await state.flush()
    assert _count(state, "total") == 5
    await state.aclose()


async def test_a_write_from_another_thread_is_run_by_the_loop_that_owns_the_connections(
        redis_server: Any, redis_prefix: str) -> None:
    state = RedisState(redis_server.url, prefix=redis_prefix)
    await state.run(INCR, [state.key("n")], [1])
    thread = threading.Thread(target=state.background, args=(lambda: state.run(INCR, [state.key("n")], [5]),))
    thread.start()
    thread.join()
    for _ in range(100):
        await asyncio.sleep(0.005)
        if _count(state, "n") == 6:
            break
    assert _count(state, "n") == 6
    await state.aclose()


async def test_messages_reach_every_replica_and_a_late_channel_is_subscribed(redis_server: Any,
                                                                            redis_prefix: str) -> None:
    one, two = RedisState(redis_server.url, prefix=redis_prefix), RedisState(redis_server.url, prefix=redis_prefix)
    heard: list[str] = []
    late: list[str] = []
    subscribed: list[int] = []
    two.subscribe("news", heard.append)
    two.on_subscribed(lambda: subscribed.append(1))
    two.ensure_listening()
    await asyncio.sleep(0.1)
    two.subscribe("late", late.append)  # after the listener started: it must subscribe again
    two.ensure_listening()
    await asyncio.sleep(0.1)
    await one.publish("news", "opened")
    await one.publish("late", "too")
    await asyncio.sleep(0.1)
    assert (heard, late) == (["opened"], ["too"])
    assert len(subscribed) >= 2  # told after each subscription, so owners can re-read what they missed
    await one.aclose()
    await two.aclose()


def test_only_variable_names_are_configured_and_an_unset_one_is_a_located_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALKIT_NO_SUCH_REDIS", raising=False)
    with pytest.raises(ConfigError, match="state.url_env: environment variable EVALKIT_NO_SUCH_REDIS"):
        RedisState(url_env="EVALKIT_NO_SUCH_REDIS")
    monkeypatch.setenv("EVALKIT_TEST_REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("EVALKIT_TEST_REDIS_PASSWORD", "hunter2-secret")
    state = RedisState(host_env="EVALKIT_TEST_REDIS_HOST", password_env="EVALKIT_TEST_REDIS_PASSWORD")
    assert "hunter2" not in repr(state) and "EVALKIT_TEST_REDIS_HOST" in repr(state)
