"""How many requests per second the provider emulator serves, at zero simulated delay.

Starts ``evalkit emulate --port 0 --time-scale 0`` in a subprocess, then drives
it with C concurrent clients for N requests, non-streamed and streamed (OpenAI
wire, ``max_tokens`` 64 so a streamed answer is ~22 SSE events), three runs
each, and prints requests/s per run and the median::

    python benchmarks/emulator_capacity.py                  # httpx, c=50, N=2000, 3 runs
    python benchmarks/emulator_capacity.py --client aiohttp --requests 5000

The client runs in this process: with httpx it is usually the bottleneck, so the
aiohttp numbers are the better estimate of the server's own capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
Send = Callable[[int], Awaitable[None]]


def start_emulator(datasets: bool) -> tuple[subprocess.Popen[str], str]:
    """The emulator subprocess and its base URL (the first line it prints)."""
    cmd = [sys.executable, "-m", "evalkit.cli", "emulate", "--port", "0", "--time-scale", "0"]
    if not datasets:
        cmd.append("--no-datasets")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO
    )
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        proc.kill()
        raise SystemExit("the emulator printed no base URL within 60 s")
    return proc, proc.stdout.readline().strip()  # type: ignore[union-attr]


def request_body(i: int, stream: bool, max_tokens: int) -> dict[str, Any]:
    # Distinct prompts, so nothing is served from a cache and fault draws would be independent.
    body: dict[str, Any] = {
        "model": "sim-small",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": f"Benchmark request number {i}: tell me something."}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def httpx_sender(client: httpx.AsyncClient, url: str, stream: bool, max_tokens: int) -> Send:
    async def send(i: int) -> None:
        body = request_body(i, stream, max_tokens)
        if stream:
            async with client.stream("POST", url, json=body) as response:
                async for _ in response.aiter_bytes():
                    pass
                response.raise_for_status()
        else:
            (await client.post(url, json=body)).raise_for_status()

    return send


def aiohttp_sender(session: Any, url: str, stream: bool, max_tokens: int) -> Send:
    async def send(i: int) -> None:
        async with session.post(url, json=request_body(i, stream, max_tokens)) as response:
            response.raise_for_status()
            async for _ in response.content.iter_any():
                pass

    return send


async def drive(send: Send, requests: int, concurrency: int) -> float:
    """Requests per second for ``requests`` calls with ``concurrency`` workers."""
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            await send(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def measure(base_url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    url = f"{base_url}/v1/chat/completions"
    headers = {"authorization": "Bearer benchmark"}
    results: dict[str, list[float]] = {}
    if args.client == "aiohttp":
        import aiohttp  # optional: only this client choice needs it

        connector = aiohttp.TCPConnector(limit=args.concurrency)
        client_cm: Any = aiohttp.ClientSession(headers=headers, connector=connector)
        make = aiohttp_sender
    else:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        client_cm = httpx.AsyncClient(headers=headers, limits=limits, timeout=60)
        make = httpx_sender
    async with client_cm as client:
        for mode in ("non-stream", "stream"):
            send = make(client, url, mode == "stream", args.max_tokens)
            await drive(send, min(args.requests, 200), args.concurrency)  # warm-up: connections, caches
            results[mode] = [await drive(send, args.requests, args.concurrency) for _ in range(args.runs)]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", "-c", type=int, default=50)
    parser.add_argument("--requests", "-n", type=int, default=2000, help="requests per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--client", choices=("httpx", "aiohttp"), default="httpx")
    parser.add_argument(
        "--datasets", action="store_true", help="load the bundled suites into the answer book"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    proc, base_url = start_emulator(args.datasets)
    try:
        results = asyncio.run(measure(base_url, args))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
    summary = {
        mode: {"runs": [round(r, 1) for r in runs], "median": round(statistics.median(runs), 1)}
        for mode, runs in results.items()
    }
    if args.json:
        print(
            json.dumps(
                {
                    "client": args.client,
                    "concurrency": args.concurrency,
                    "requests": args.requests,
                    "max_tokens": args.max_tokens,
                    "results": summary,
                }
            )
        )
        return 0
    print(
        f"emulator capacity: {args.client} client, c={args.concurrency}, {args.requests} requests/run, "
        f"max_tokens={args.max_tokens}, time scale 0"
    )
    for mode, row in summary.items():
        runs = ", ".join(f"{r:.0f}" for r in row["runs"])
        print(f"  {mode:<10}  median {row['median']:>7.0f} req/s   (runs: {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
