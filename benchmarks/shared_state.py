"""Shared router state on Redis (issue #16): what it adds to a routed call, against in-process state.

Run: ``python benchmarks/shared_state.py [--rounds 3] [--calls 2000] [--quick]``.

One run starts Debian's ``redis-server`` and the zero-delay OpenAI-compatible
upstream (``_upstream.py``) on 127.0.0.1, both pinned to core 1; this process
runs on core 0. Each composition is built twice, identical but for
``state=``: in memory (the default) and on a ``RedisState`` on loopback. The
two run in alternating rounds in this one process, so both see the same
machine:

* ``breakers``: the ``FallbackChain`` alone: no round trip while the breakers are closed;
* ``budget+breakers``: a ``CostAwareRouter`` with a ``BudgetLedger`` (cap far
  away) over a ``FallbackChain`` of two targets with circuit breakers: one
  awaited round trip to Redis per call (the reservation), the settle in the
  background, the breakers at zero round trips while closed;
* ``budget+breakers+rpm``: the same with ``Limits(rpm=...)`` on the primary:
  the shared GCRA window adds one round trip.

Measured per composition and state: p50 and p99 of a routed call at
concurrency 1 (sequential, after a warm-up), and calls per second at
concurrency 50. Reported: the p50 added by Redis (target ≤ 250 µs) and the
c=50 throughput as a ratio of the in-memory router's (target ≥ 0.5×),
medians over the rounds. The baseline round trip of redis-py itself (an
``EVALSHA`` of a one-line script) is printed first, so the added time can be
read against it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _upstream import pin  # noqa: E402  (this script's folder)

Send = Callable[[], Awaitable[Any]]
SERVER_CORE = 1
CLIENT_CORE = 0


class Servers:
    """``redis-server`` and ``_upstream.py`` on free ports, pinned to the server core."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []
        self.folder = tempfile.TemporaryDirectory()

    def __enter__(self) -> Servers:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.redis_port = sock.getsockname()[1]
        redis = subprocess.Popen(["taskset", "-c", str(SERVER_CORE), "redis-server", "--port", str(self.redis_port),
                                  "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", self.folder.name], stdout=subprocess.DEVNULL, text=True)
        upstream = subprocess.Popen([sys.executable, str(HERE / "_upstream.py"), "--port", "0",
                                     "--core", str(SERVER_CORE)], stdout=subprocess.PIPE, text=True)
        self.processes = [redis, upstream]
        line = upstream.stdout.readline() if upstream.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"upstream did not start: {line!r}")
        self.upstream_port = int(line.split()[1])
        _wait_for_redis(self.redis_port)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(5)
        self.folder.cleanup()


def _wait_for_redis(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def build(kind: str, upstream_port: int, state: Any) -> Any:
    """The routed composition ``kind`` with ``state`` (None: in memory)."""
    import evalkit
    from evalkit.router import BudgetLedger, Candidate, CostAwareRouter, FallbackChain, LimitedTarget, Limits

    base = f"http://127.0.0.1:{upstream_port}/v1"
    primary = evalkit.get_provider("openai:gpt-4o-mini", base_url=base, api_key="sk-bench-0000")
    backup = evalkit.get_provider("openai:gpt-4o", base_url=base, api_key="sk-bench-0000")
    first: Any = primary
    if kind.endswith("+rpm"):
        first = LimitedTarget(primary, Limits(rpm=10_000_000), state=state)  # far away: measures the check only
    chain = FallbackChain([first, backup], state=state)
    if kind == "breakers":
        return chain
    ledger = BudgetLedger(Decimal("1000000"), period="day", state=state, name=f"bench-{kind}")
    return CostAwareRouter([Candidate(chain, 1.0, {"input": 0.15, "output": 0.60})], ledger=ledger)


async def sequential(send: Send, n: int) -> list[float]:
    for _ in range(50):
        await send()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await send()
        times.append(time.perf_counter() - started)
    return times


async def concurrent(send: Send, n: int, concurrency: int = 50) -> float:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def redis_round_trip_us(url: str, n: int = 2000) -> float:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    script = client.register_script("return 1")
    await script()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await script()
        times.append(time.perf_counter() - started)
    await client.aclose()
    return statistics.median(times) * 1e6


async def main(args: argparse.Namespace) -> int:
    from evalkit import ChatRequest
    from evalkit.router.state import RedisState

    pinned = pin(CLIENT_CORE)
    request = ChatRequest.from_prompt("What is the capital of France?", max_tokens=16)
    kinds = ["breakers", "budget+breakers", "budget+breakers+rpm"]
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    with Servers() as servers:
        url = f"redis://127.0.0.1:{servers.redis_port}/0"
        print(f"client pinned to core {CLIENT_CORE}: {pinned}; redis-server and upstream on core {SERVER_CORE}")
        print(f"redis-py EVALSHA round trip on loopback: p50 {await redis_round_trip_us(url):.0f} µs")
        states = {"memory": None, "redis": RedisState(url, prefix="bench", timeout_ms=1000)}
        routers = {(kind, name): build(kind, servers.upstream_port, state)
                   for kind in kinds for name, state in states.items()}
        for round_ in range(args.rounds):
            for (kind, name), router in routers.items():
                async def send(router: Any = router) -> Any:
                    return await router.complete(request)

                p = results.setdefault((kind, name), {"p50": [], "p99": [], "rps": []})
                times = sorted(await sequential(send, args.calls))
                p["p50"].append(times[len(times) // 2] * 1e6)
                p["p99"].append(times[int(len(times) * 0.99)] * 1e6)
                p["rps"].append(await concurrent(send, args.calls * 2))
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
        for router in routers.values():
            await router.aclose()
        await states["redis"].aclose()
    return report(kinds, results)


def report(kinds: list[str], results: dict[tuple[str, str], dict[str, list[float]]]) -> int:
    failed = 0
    print(f"\n{'composition':<22} {'state':<7} {'p50 µs':>8} {'p99 µs':>8} {'c=50 calls/s':>13}")
    for kind in kinds:
        for name in ("memory", "redis"):
            r = results[(kind, name)]
            print(f"{kind:<22} {name:<7} {statistics.median(r['p50']):>8.0f} {statistics.median(r['p99']):>8.0f} "
                  f"{statistics.median(r['rps']):>13.0f}")
    print()
    for kind in kinds:
        mem, red = results[(kind, "memory")], results[(kind, "redis")]
        added = statistics.median(b - a for a, b in zip(mem["p50"], red["p50"]))
        ratio = statistics.median(b / a for a, b in zip(mem["rps"], red["rps"]))
        ok_latency, ok_throughput = added <= 250, ratio >= 0.5
        failed += (not ok_latency) + (not ok_throughput)
        print(f"{kind}: added p50 {added:.0f} µs (target ≤ 250) {'PASS' if ok_latency else 'FAIL'}; "
              f"c=50 throughput {ratio:.2f}× in-memory (target ≥ 0.5×) {'PASS' if ok_throughput else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per round (c=50: twice as many)")
    parser.add_argument("--quick", action="store_true", help="1 round of 300 calls: a smoke run")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.rounds, arguments.calls = 1, 300
    sys.exit(asyncio.run(main(arguments)))
