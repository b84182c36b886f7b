"""One replica of an app, in its own process: ``python -m tests.router.replica_process CONFIG``.

It builds its router from the routing YAML (``state:`` decides what it
shares), then reads one JSON command per line on stdin and answers each with
one JSON line on stdout. ``tests/router/test_shared_state_processes.py``
starts four of them against one Redis and one emulator.

Commands (``op``):

* ``calls``: ``n`` calls, ``concurrency`` at a time; one outcome per call.
* ``spend``: ``concurrency`` workers call until the budget refuses them for
  good (a refusal with nothing else held: the next reservation cannot fit),
  waiting briefly when a refusal was only due to calls in flight, and going
  on through state outages; stops at ``seconds`` at the latest.
* ``for_seconds``: ``concurrency`` workers call for ``seconds``.
* ``flush``: wait until the shared state has every background write.
* ``exit``: close the router (and its state) and end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from decimal import Decimal
from typing import Any

import evalkit
from evalkit import ChatRequest
from evalkit.errors import BudgetExceeded, ProviderError

_numbers = itertools.count()


def _request() -> ChatRequest:
    return ChatRequest.from_prompt(f"Tell me fact number {next(_numbers)}.", max_tokens=8)


def _outcome(response: Any = None, error: ProviderError | None = None) -> dict[str, Any]:
    attempts = response.attempts if response is not None else getattr(error, "attempts", ())
    outcome: dict[str, Any] = {
        "ok": error is None,
        "kind": None if error is None else error.kind.value,
        "error": None if error is None else error.message[:300],
        "sent": [a.target for a in attempts if a.sent],
        "failed": [[a.target, a.error_kind] for a in attempts if a.sent and a.error_kind],
        "skipped": [[a.target, a.error_kind] for a in attempts if not a.sent],
        "cost": None,
        "at": time.time(),
    }
    if response is not None and response.cost is not None:
        outcome["cost"] = str(response.cost.total)
    if isinstance(error, BudgetExceeded):
        outcome["refusal"] = {k: str(getattr(error, k, None)) for k in ("cap", "spent", "reserved", "requested")}
    return outcome


async def _call(router: Any) -> dict[str, Any]:
    try:
        return _outcome(await router.complete(_request()))
    except ProviderError as exc:
        return _outcome(error=exc)


async def calls(router: Any, command: dict[str, Any]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(command.get("concurrency", 1))

    async def one() -> dict[str, Any]:
        async with gate:
            return await _call(router)

    return list(await asyncio.gather(*(one() for _ in range(command["n"]))))


async def spend(router: Any, command: dict[str, Any]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + command.get("seconds", 60)

    async def worker() -> None:
        while time.monotonic() < deadline:
            outcome = await _call(router)
            outcomes.append(outcome)
            refusal = outcome.get("refusal")
            if refusal is not None and refusal["reserved"] != "None" and Decimal(refusal["reserved"]) == 0:
                return  # refused with nothing else held: the next reservation cannot fit
            if not outcome["ok"]:
                await asyncio.sleep(0.01)

    await asyncio.gather(*(worker() for _ in range(command["concurrency"])))
    return outcomes


async def for_seconds(router: Any, command: dict[str, Any]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + command["seconds"]

    async def worker() -> None:
        while time.monotonic() < deadline:
            outcomes.append(await _call(router))
            if not outcomes[-1]["ok"]:
                await asyncio.sleep(0.005)

    await asyncio.gather(*(worker() for _ in range(command["concurrency"])))
    return outcomes


async def main(config: str) -> None:
    router = evalkit.Router.from_config(config)
    state = getattr(router, "state", None)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ops = {"calls": calls, "spend": spend, "for_seconds": for_seconds}
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "exit":
            break
        if command["op"] == "flush":
            if state is not None:
                await state.flush()
            print(json.dumps({"flushed": True}), flush=True)
            continue
        print(json.dumps(await ops[command["op"]](router, command)), flush=True)
    await router.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
