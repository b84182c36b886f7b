"""The runner's throughput next to a raw aiohttp client, and its peak memory on a 100k-attempt run.

Run: ``python benchmarks/runner_throughput.py [--requests 10000] [--concurrency 100]
[--delay-ms 50] [--rss-attempts 100000] [--runs 3]``.

1. Throughput: an OpenAI-compatible upstream on 127.0.0.1 (a subprocess pinned
   to core 1 when there are two) answers every chat completion after a fixed
   delay. In the same run, a raw aiohttp client posts N requests at concurrency
   C (the baseline), then ``evalkit.runner.run_suite`` asks the same number of
   cells (a trivial regex grader, results persisted to Parquet). Ideal at 50 ms
   and c=100: 2,000 req/s. The runner runs as ``evalkit run`` does by default: retries (a one-target
   FallbackChain) and an adaptive in-flight limit per target (issue 15). Target: runner >= 0.85x the
   raw client for the whole run (setup and compaction included).
2. Memory: a subprocess runs a 100k-attempt suite against the upstream at zero
   delay and reports its peak RSS (target < 1 GB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# A key of a real key's length (OpenAI's are 51 to 164 characters): at 8 characters or more it is
# registered for scrubbing, so the runner's per-row secret checks are part of what is measured.
KEY = "fake-benchmark-key-for-the-runner-throughput-test-not-a-secret"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_completion_tokens": 16}


# -- the upstream (its own process) ------------------------------------------------------------

async def _serve(port: int, delay_s: float) -> None:
    from _upstream import answer, _content_length  # the prebuilt real-shaped responses

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).lower()  # _upstream's helpers expect lower case
                body = await reader.readexactly(_content_length(head))
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(answer(head, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def start_upstream(delay_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, __file__, "--serve", "--delay-ms", str(delay_ms)],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().split()
    return process, f"http://127.0.0.1:{line[1]}"


# -- the two clients ---------------------------------------------------------------------------

async def raw_aiohttp(base: str, n: int, concurrency: int) -> float:
    import aiohttp

    url, payload = f"{base}/v1/chat/completions", json.dumps(BODY).encode()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        counter = iter(range(n))

        async def worker() -> None:
            for _ in counter:
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def write_suite(path: Path, n: int) -> None:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"q{i}", "task_type": "factual_qa",
                                     "prompt": f"What is the capital of France? ({i})", "reference": "Paris",
                                     "grader": {"type": "regex", "pattern": "Paris"}}) + "\n")


async def evalkit_runner(base: str, suite: Path, concurrency: int, runs_dir: Path) -> tuple[float, int, float]:
    from evalkit.runner import RunOptions, run_suite

    os.environ.update(OPENAI_BASE_URL=f"{base}/v1", OPENAI_API_KEY=KEY)
    started = time.perf_counter()
    result = await run_suite(suite, ["openai:gpt-4o-mini"], options=RunOptions(concurrency=concurrency,
                             max_tokens=16), runs_dir=runs_dir, progress=False)
    elapsed = time.perf_counter() - started
    return result.totals.done / elapsed, result.totals.errors, result.totals.cells_per_s


# -- memory ------------------------------------------------------------------------------------

def _rss_child(base: str, suite: str, runs_dir: str, concurrency: int) -> None:
    done, errors, _ = asyncio.run(evalkit_runner(base, Path(suite), concurrency, Path(runs_dir)))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rate": done, "errors": errors, "peak_rss_mb": peak_kb / 1024}), flush=True)


def measure_rss(attempts: int, concurrency: int, tmp: Path) -> dict:
    upstream, base = start_upstream(0)
    try:
        suite = tmp / "rss.jsonl"
        write_suite(suite, attempts)
        out = subprocess.run([sys.executable, __file__, "--rss-child", base, str(suite), str(tmp / "rss-runs"),
                              str(concurrency)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        upstream.kill()


# -- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rss-attempts", type=int, default=100_000, help="0 skips the memory check")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        asyncio.run(_serve(0, args.delay_ms / 1000))
        return
    if args.rss_child:
        base, suite, runs_dir, concurrency = args.rss_child
        _rss_child(base, suite, runs_dir, int(concurrency))
        return
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        report_throughput(args, tmp)
        if args.rss_attempts:
            rss = measure_rss(args.rss_attempts, args.concurrency, tmp)
            verdict = "PASS" if rss["peak_rss_mb"] < 1024 else "FAIL"
            print(f"\n{args.rss_attempts:,} attempts at zero delay: {rss['rate']:.0f} cells/s, "
                  f"peak RSS {rss['peak_rss_mb']:.0f} MB (target < 1024 MB: {verdict}), errors {rss['errors']}")


def report_throughput(args: argparse.Namespace, tmp: Path) -> None:
    upstream, base = start_upstream(args.delay_ms)
    try:
        suite = tmp / "suite.jsonl"
        write_suite(suite, args.requests)
        raw, ours, steady, errors = [], [], [], 0
        for run in range(args.runs):  # interleaved so drift hits both alike
            raw.append(asyncio.run(raw_aiohttp(base, args.requests, args.concurrency)))
            rate, failed, asking = asyncio.run(evalkit_runner(base, suite, args.concurrency, tmp / f"runs{run}"))
            ours.append(rate)
            steady.append(asking)
            errors += failed
    finally:
        upstream.kill()
    ideal = args.concurrency / (args.delay_ms / 1000) if args.delay_ms else float("nan")
    raw_median, ours_median = statistics.median(raw), statistics.median(ours)
    ratio = ours_median / raw_median
    print(f"{args.requests:,} requests, concurrency {args.concurrency}, upstream delay {args.delay_ms:g} ms "
          f"(ideal {ideal:,.0f} req/s); median of {args.runs}")
    print(f"{'client':<34}{'req/s':>10}{'ratio':>8}   runs")
    print(f"{'raw aiohttp (baseline)':<34}{raw_median:>10.0f}{1.0:>8.2f}   {', '.join(f'{r:.0f}' for r in raw)}")
    print(f"{'evalkit runner (grade + Parquet)':<34}{ours_median:>10.0f}{ratio:>8.2f}   "
          f"{', '.join(f'{r:.0f}' for r in ours)}")
    steady_median = statistics.median(steady)
    print(f"{'  of which while asking (no setup)':<34}{steady_median:>10.0f}{steady_median / raw_median:>8.2f}   "
          f"{', '.join(f'{r:.0f}' for r in steady)}")
    print(f"target runner (whole run) >= 0.85x raw aiohttp: {'PASS' if ratio >= 0.85 else 'FAIL'}; "
          f"failed cells: {errors}")


if __name__ == "__main__":
    main()
