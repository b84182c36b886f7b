"""Starting the emulator waits on the server's own signal: no poll, and no blocked event loop in async code."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from evalkit.emulator import Emulator

SLOW_START_S = 0.3


@pytest.fixture
def slow_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn takes SLOW_START_S to listen (as on a loaded machine): long enough to see how start() waits."""
    original = uvicorn.Server.startup

    async def startup(self: uvicorn.Server, sockets: Any = None) -> None:
        await asyncio.sleep(SLOW_START_S)
        await original(self, sockets=sockets)

    monkeypatch.setattr(uvicorn.Server, "startup", startup)


def test_start_waits_for_the_server_without_polling(slow_startup: None, monkeypatch: pytest.MonkeyPatch) -> None:
    caller = threading.current_thread()
    naps: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread() is caller:
            naps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    with Emulator(seed=0, time_scale=0.0, datasets=()) as emu:
        assert httpx.get(f"{emu.base_url}/v1/models", headers={"authorization": "Bearer k"}).status_code == 200
    assert naps == [], f"start() polled the server {len(naps)} times"


def test_astart_leaves_the_event_loop_free_while_the_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server only comes up once another task on the caller's event loop has run: a start that
    # blocks the loop would hold that task until the server gave up waiting for it.
    other_task_ran = threading.Event()
    seen_by_server: list[bool] = []
    original = uvicorn.Server.startup

    async def startup(self: uvicorn.Server, sockets: Any = None) -> None:
        seen_by_server.append(await asyncio.to_thread(other_task_ran.wait, 5))
        await original(self, sockets=sockets)

    monkeypatch.setattr(uvicorn.Server, "startup", startup)

    async def main() -> int:
        async def other_task() -> None:
            other_task_ran.set()

        task = asyncio.create_task(other_task())
        async with Emulator(seed=0, time_scale=0.0, datasets=()) as emu, httpx.AsyncClient() as client:
            reply = await client.get(f"{emu.openai_base_url}/models", headers={"authorization": "Bearer k"})
        await task
        assert not emu.running
        return reply.status_code

    assert asyncio.run(main()) == 200
    assert seen_by_server == [True], "the event loop was blocked while the emulator started"


def test_a_server_that_fails_to_start_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def startup(self: uvicorn.Server, sockets: Any = None) -> None:
        raise OSError("no listening today")

    monkeypatch.setattr(uvicorn.Server, "startup", startup)
    emu = Emulator(seed=0, time_scale=0.0, datasets=())
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="no listening today"):
        emu.start()
    assert time.monotonic() - began < 5  # not the 10 s start timeout
    assert not emu.running

    async def main() -> None:
        with pytest.raises(RuntimeError, match="no listening today"):
            await emu.astart()

    asyncio.run(main())
    assert not emu.running
