"""Router overhead (issue #4): evalkit's providers and routers against raw httpx, side by side.

Run: ``python benchmarks/router_overhead.py [--quick] [--reps 3] [--layouts] [--json PATH] [--only A,B]``
(default: a few minutes on 2 cores; ``--quick``: a smoke run under a minute).
LiteLLM rows need the ``bench`` extra (``pip install litellm``); without it they print n/a.

One run starts a zero-delay OpenAI-compatible upstream (``_upstream.py``: plain
asyncio streams, HTTP/1.1 keep-alive) on 127.0.0.1 pinned to core 1, and first
reports what it sustains against a raw aiohttp client at c=50 and how busy its
core was, so you can see it is not the bottleneck. Every variant then runs in a
fresh interpreter pinned to core 0 (LiteLLM's threads and one variant's garbage
never touch another), sending the same request (one short user prompt,
``max_tokens`` 16):

* raw ``httpx.AsyncClient`` posts (the floor every ratio is against), the same
  on ``httpx_aiohttp.AiohttpTransport``, and raw aiohttp;
* ``get_provider`` direct, ``FallbackChain`` / ``WeightedBalancer`` of 3 targets,
  ``TaskRouter`` and ``CostAwareRouter`` (n/a until ``evalkit/router/cost.py``
  exists), each on httpx's own connection pool (``[httpx]``: one client per
  provider, ``transport=httpx.AsyncHTTPTransport()``) and on ``AiohttpTransport``
  (``[aiohttp]``, evalkit's default since this benchmark showed it scales);
* LiteLLM's ``Router`` with 3 deployments (offline: ``LITELLM_LOCAL_MODEL_COST_MAP``);
* one fallback hop (primary answers 500, the chain moves on without a retry)
  next to a healthy chain in the same process, for evalkit and LiteLLM;
* streamed calls (SSE with a usage chunk); with ``--layouts`` also pool
  layouts (raw httpx with tuned limits, one httpx client shared by 3 providers);
* each routing policy alone: routers over in-process stub targets that return
  a real ``ChatResponse`` at once, against calling the stub directly.

Measured per variant: p50/p99 latency at concurrency 1 (sequential requests
after a warm-up), throughput at c=50 (a fixed number of requests), and client
CPU per request (``time.process_time()``, all threads) at c=1, c=50 and c=100.
Rows are interleaved over ``--reps`` repetitions and medians are reported with
their ratio to raw httpx; then every issue #4 target is checked (PASS/FAIL).
LiteLLM rows send a quarter of the requests (it is ~10x slower). Other work on
the machine shows up as noise: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from _upstream import HOST, pin, upstream_stats  # this script's folder is on sys.path

HERE = Path(__file__).resolve().parent

PROMPT = "What is the capital of France? Answer in one word."
MAX_TOKENS = 16
MODEL = "gpt-4o-mini"
API_KEY = "sk-bench-local-not-a-secret"  # the upstream ignores it
CLIENT_CORE, UPSTREAM_CORE = 0, 1
WORKER_TIMEOUT_S = 600
LEVELS = (50, 100)  # concurrency of the throughput / CPU runs
CHUNKS = 5  # rows measured in one worker alternate at c=1 in this many chunks

Send = Callable[[], Awaitable[None]]
Close = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Counts:
    warm: int
    seq: int     # sequential requests at c=1
    conc: int    # requests per concurrency level
    stub: int    # calls per policy, per chunk, in the stub-target runs

    def scaled(self, factor: float) -> Counts:
        """Fewer requests for a slow variant; still a few rounds at the largest concurrency."""
        return Counts(max(20, int(self.warm * factor)), max(100, int(self.seq * factor)),
                      max(2 * max(LEVELS), int(self.conc * factor)), self.stub)


DEFAULT_COUNTS = Counts(warm=100, seq=1000, conc=800, stub=2000)
QUICK_COUNTS = Counts(warm=30, seq=200, conc=300, stub=300)


@dataclass(frozen=True)
class Row:
    key: str            # builder[:transport]
    label: str
    kind: str = "full"  # "full": c=1, c=50, c=100; "c1": c=1 only; "policy": stub targets
    scale: float = 1.0  # of the request counts
    batch: str = ""     # consecutive rows of one batch share a worker and alternate at c=1


def all_rows(layouts: bool) -> list[Row]:
    rows = [Row("policy", "routing policies alone (stub targets)", "policy"),
            Row("raw_httpx", "raw httpx (1 client, default pool)"),
            Row("raw_httpx_aiohttp", "raw httpx + AiohttpTransport"),
            Row("raw_aiohttp", "raw aiohttp (reference)")]
    if layouts:
        rows += [Row("raw_httpx_tuned", "raw httpx (http1, limits 200/200)"),
                 Row("balance:shared", "WeightedBalancer x3 [1 shared httpx]")]
    for transport in ("httpx", "aiohttp"):
        rows += [Row(f"direct:{transport}", f"evalkit get_provider [{transport}]"),
                 Row(f"fallback:{transport}", f"FallbackChain x3 [{transport}]"),
                 Row(f"balance:{transport}", f"WeightedBalancer x3 [{transport}]"),
                 Row(f"task:{transport}", f"TaskRouter [{transport}]"),
                 Row(f"cost:{transport}", f"CostAwareRouter [{transport}]")]
    rows += [Row("litellm", "LiteLLM Router x3", scale=0.25, batch="litellm"),
             Row("litellm_hop", "LiteLLM fallback hop 500->next", "c1", 0.25, "litellm")]
    for transport in ("httpx", "aiohttp"):
        rows += [Row(f"hopbase:{transport}", f"FallbackChain x3, no hop [{transport}]", "c1", 1, transport),
                 Row(f"hop:{transport}", f"fallback hop 500->next [{transport}]", "c1", 1, transport)]
    rows += [Row("raw_httpx_stream", "raw httpx, stream=True", "c1"),
             Row("direct_stream:httpx", "evalkit provider.stream [httpx]", "c1"),
             Row("fallback_stream:httpx", "FallbackChain x3 .stream [httpx]", "c1")]
    return rows


# --------------------------------------------------------------------------------------
# Builders: each returns (send, close) for one variant; they run in the worker process.
# --------------------------------------------------------------------------------------

def _payload(stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": MAX_TOKENS}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"unexpected answer: {what}")


async def build_raw_httpx(base: str, variant: str) -> tuple[Send, Close]:
    import httpx

    if variant == "tuned":
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        client = httpx.AsyncClient(http1=True, limits=limits)
    elif variant == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        client = httpx.AsyncClient(transport=AiohttpTransport())
    else:
        client = httpx.AsyncClient()
    url, headers, payload = f"{base}/v1/chat/completions", {"Authorization": f"Bearer {API_KEY}"}, _payload()

    async def send() -> None:
        response = await client.post(url, json=payload, headers=headers)
        _check(response.status_code == 200 and bool(json.loads(response.content)["choices"]), "raw httpx")

    return send, client.aclose


async def build_raw_httpx_stream(base: str) -> tuple[Send, Close]:
    import httpx

    client = httpx.AsyncClient()
    url, headers = f"{base}/v1/chat/completions", {"Authorization": f"Bearer {API_KEY}"}
    payload = _payload(stream=True)

    async def send() -> None:
        text = []
        async with client.stream("POST", url, json=payload, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    text += [c["delta"].get("content") or "" for c in choices]
        _check("".join(text) == "Paris.", "raw httpx stream")

    return send, client.aclose


async def build_raw_aiohttp(base: str) -> tuple[Send, Close]:
    import aiohttp

    session = aiohttp.ClientSession()
    url, headers, payload = f"{base}/v1/chat/completions", {"Authorization": f"Bearer {API_KEY}"}, _payload()

    async def send() -> None:
        async with session.post(url, json=payload, headers=headers) as response:
            body = await response.read()
        _check(response.status == 200 and bool(json.loads(body)["choices"]), "raw aiohttp")

    return send, session.close


def _provider_options(transport: str, shared: Any) -> dict[str, Any]:
    """``get_provider`` options for one provider on ``transport`` (see the row labels)."""
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return {"transport": AiohttpTransport()}
    if transport == "shared":
        return {"client": shared}
    import httpx

    # evalkit's default is the aiohttp transport; the [httpx] rows ask for httpx's own pool explicitly.
    return {"transport": httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200,
                                                                       max_keepalive_connections=100))}


def _providers(base: str, transport: str, paths: tuple[str, ...]) -> tuple[list[Any], list[Close]]:
    """One evalkit provider per path, on ``transport``, and what closes them all."""
    import httpx

    from evalkit import get_provider

    providers: list[Any] = []
    closers: list[Close] = []
    shared = None
    if transport == "shared":  # evalkit's limits, one pool for all three providers
        shared = httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=100))
        closers.append(shared.aclose)
    for path in paths:
        options = _provider_options(transport, shared)
        url = f"{base}{path}/v1"
        providers.append(get_provider(f"openai:{MODEL}", api_key=API_KEY, base_url=url, **options))
        if shared is None:  # a provider does not close a client it was given
            closers.append(providers[-1].aclose)
    return providers, closers


def _router(kind: str, targets: list[Any]) -> Any:
    from evalkit.router import FallbackChain, RetryPolicy, TaskRouter, WeightedBalancer

    if kind in ("fallback", "fallback_stream"):
        return FallbackChain(targets)
    if kind in ("hop", "hopbase"):  # a 500 moves straight on: one hop, no backoff sleep
        return FallbackChain(targets, policy=RetryPolicy(retries_per_target=0))
    if kind == "balance":
        return WeightedBalancer(targets, seed=1)
    if kind == "task":
        a, b, c = targets
        return TaskRouter({"simple_qa": a, "code": b, "creative": c}, default=a)
    if kind == "task_learned":  # what `evalkit recommend` deploys: the classifier trained on `default`
        a, b, c = targets
        return TaskRouter({"factual_qa": a, "code": b, "creative": c}, default=a, classifier=_learned_classifier())
    if kind == "prompt":  # a per-prompt router over the three stubs (model from benchmarks/prompt_router.py)
        from evalkit.router import PromptRouter

        return PromptRouter(_prompt_model(), list(targets))
    if kind == "cost":
        return _cost_router(targets)
    raise ValueError(kind)


def _prompt_model() -> Any:
    sys.path.insert(0, str(Path(__file__).parent))
    from prompt_router import _small_model  # the same small synthetic model that benchmark times

    return _small_model()


def _learned_classifier() -> Any:
    from evalkit.analysis.classifier_training import examples_from_dataset, train_task_classifier
    from evalkit.datasets import load_dataset

    texts, labels, ids = examples_from_dataset(load_dataset("default"))
    return train_task_classifier(texts, labels, ids=ids, seed=0)[0]


class NotBuilt(Exception):
    """A variant whose code is not in this checkout (or environment) yet."""


def _cost_router(targets: list[Any]) -> Any:
    try:
        from evalkit.router.cost import Candidate, CostAwareRouter
    except ImportError:
        raise NotBuilt("n/a (not built yet)") from None
    from evalkit.router.budget import BudgetLedger

    candidates = [Candidate(t, q) for t, q in zip(targets, (1.0, 0.95, 0.9))]
    return CostAwareRouter(candidates, ledger=BudgetLedger("1000000", period="total"))


async def build_evalkit(base: str, kind: str, transport: str) -> tuple[Send, Close]:
    from evalkit import ChatRequest

    paths = ("/fail", "", "") if kind == "hop" else ("",) if kind.startswith("direct") else ("", "", "")
    providers, closers = _providers(base, transport, paths)
    target = providers[0] if kind.startswith("direct") else _router(kind, providers)
    streaming = kind.endswith("_stream")
    request = ChatRequest.from_prompt(PROMPT, max_tokens=MAX_TOKENS)
    sent = 2 if kind == "hop" else 1

    async def send() -> None:
        if streaming:
            stream = target.stream(request)
            text = "".join([delta async for delta in stream])
            _check(text == "Paris." and stream.response is not None, "evalkit stream")
            return
        response = await target.complete(request)
        _check(response.text == "Paris." and len(response.attempts or (None,)) == sent, kind)

    async def close() -> None:
        for closer in closers:
            await closer()

    return send, close


def _litellm() -> Any:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no cost-map fetch at import
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import logging

    try:
        import litellm
    except ImportError:
        raise NotBuilt("n/a (litellm not installed: pip install litellm)") from None
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


async def build_litellm(base: str, hop: bool) -> tuple[Send, Close]:
    litellm = _litellm()

    def deployment(name: str, path: str = "") -> dict[str, Any]:
        params = {"model": f"openai/{MODEL}", "api_base": f"{base}{path}/v1", "api_key": API_KEY}
        return {"model_name": name, "litellm_params": params}

    if hop:
        router = litellm.Router(model_list=[deployment("primary", "/fail"), deployment("backup")],
                                fallbacks=[{"primary": ["backup"]}], num_retries=0, disable_cooldowns=True)
    else:
        router = litellm.Router(model_list=[deployment("bench") for _ in range(3)])
    model, messages = ("primary" if hop else "bench"), [{"role": "user", "content": PROMPT}]

    async def send() -> None:
        response = await router.acompletion(model=model, messages=messages, max_tokens=MAX_TOKENS)
        _check(response.choices[0].message.content == "Paris.", "litellm")

    async def close() -> None:
        return None

    return send, close


async def build(key: str, base: str) -> tuple[Send, Close]:
    kind, _, transport = key.partition(":")
    if kind == "raw_httpx_stream":
        return await build_raw_httpx_stream(base)
    if kind.startswith("raw_httpx"):
        return await build_raw_httpx(base, kind.removeprefix("raw_httpx").lstrip("_"))
    if kind == "raw_aiohttp":
        return await build_raw_aiohttp(base)
    if kind.startswith("litellm"):
        return await build_litellm(base, hop=kind == "litellm_hop")
    return await build_evalkit(base, kind, transport)


# --------------------------------------------------------------------------------------
# Each routing policy alone: stub targets, no I/O (worker process)
# --------------------------------------------------------------------------------------

class Stub:
    """A target that answers at once with a real response (or fails like a 500), priced like the real one."""

    context_window = None

    def __init__(self, real: Any, response: Any, fail: bool = False) -> None:
        self.name, self.model, self.vendor = real.name, real.model, real.vendor
        self.prices = real.prices
        self._response, self._fail = response, fail

    async def complete(self, request: Any) -> Any:
        if self._fail:
            from evalkit.errors import ServerError

            raise ServerError("The server had an error while processing your request.", status=500,
                              provider=self.vendor, model=self.model)
        return self._response


async def _stub_targets(base: str) -> tuple[dict[str, Any], Close]:
    """``{policy name: callable target}``: the stub alone, and each router over three stubs."""
    from evalkit import ChatRequest, get_provider

    real = get_provider(f"openai:{MODEL}", api_key=API_KEY, base_url=f"{base}/v1")
    response = await real.complete(ChatRequest.from_prompt(PROMPT, max_tokens=MAX_TOKENS))
    stubs = [Stub(real, response) for _ in range(3)]
    targets: dict[str, Any] = {"stub direct": stubs[0]}
    for kind, label in (("fallback", "FallbackChain x3"), ("balance", "WeightedBalancer x3"),
                        ("task", "TaskRouter"), ("task_learned", "TaskRouter (learned classifier)"),
                        ("prompt", "PromptRouter"), ("cost", "CostAwareRouter")):
        try:
            targets[label] = _router(kind, stubs)
        except NotBuilt as exc:
            targets[label] = str(exc)
    failing = Stub(real, response, fail=True)
    targets["FallbackChain hop (stub 500->next)"] = _router("hop", [failing, *stubs[1:]])
    return targets, real.aclose


async def policy_main(port: int, counts: Counts) -> dict[str, Any]:
    """p50 and CPU per call of each policy over stubs, alternating policies in chunks."""
    from evalkit import ChatRequest

    targets, close = await _stub_targets(f"http://{HOST}:{port}")
    request = ChatRequest.from_prompt(PROMPT, max_tokens=MAX_TOKENS)
    live = {name: t for name, t in targets.items() if not isinstance(t, str)}
    latencies: dict[str, list[float]] = {name: [] for name in live}
    cpu = dict.fromkeys(live, 0.0)
    try:
        for name, target in live.items():  # warm-up
            for _ in range(counts.warm):
                await target.complete(request)
        for _ in range(CHUNKS):
            for name, target in live.items():
                send = _sender(target, request)
                lat, spent = await sequential(send, counts.stub)
                latencies[name] += lat
                cpu[name] += spent
    finally:
        await close()
    out: dict[str, Any] = {}
    for name, target in targets.items():
        if name not in live:
            out[name] = {"na": target}
            continue
        calls = len(latencies[name])
        out[name] = {"p50_us": percentile(latencies[name], 50), "cpu_us": cpu[name] / calls * 1e6}
    return out


def _sender(target: Any, request: Any) -> Send:
    async def send() -> None:
        await target.complete(request)

    return send


# --------------------------------------------------------------------------------------
# Measurement (worker process)
# --------------------------------------------------------------------------------------

async def sequential(send: Send, n: int) -> tuple[list[float], float]:
    """Latencies (µs) of ``n`` back-to-back requests, and the CPU seconds they took."""
    latencies = []
    gc.collect()
    cpu = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        await send()
        latencies.append((time.perf_counter() - started) * 1e6)
    return latencies, time.process_time() - cpu


async def concurrent(send: Send, n: int, concurrency: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``n`` requests sent by ``concurrency`` workers."""
    shared = iter(range(n))

    async def worker() -> None:
        for _ in shared:
            await send()

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def measure_c1(sends: dict[str, Send], counts: dict[str, Counts]) -> dict[str, dict[str, float]]:
    """c=1 latency and CPU; several rows alternate in chunks so drift hits them alike."""
    chunks = CHUNKS if len(sends) > 1 else 1
    latencies: dict[str, list[float]] = {key: [] for key in sends}
    cpu = dict.fromkeys(sends, 0.0)
    for key, send in sends.items():
        await sequential(send, counts[key].warm)
    for _ in range(chunks):
        for key, send in sends.items():
            lat, spent = await sequential(send, max(1, counts[key].seq // chunks))
            latencies[key] += lat
            cpu[key] += spent
    return {key: {"p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99),
                  "cpu1_us": cpu[key] / len(lat) * 1e6} for key, lat in latencies.items()}


async def measure_concurrency(send: Send, counts: Counts, port: int) -> dict[str, float]:
    out = {}
    for level in LEVELS:
        await concurrent(send, max(counts.warm, level), level)
        before = upstream_stats(port)
        wall, cpu = await concurrent(send, counts.conc, level)
        after = upstream_stats(port)
        out[f"rps{level}"] = counts.conc / wall
        out[f"cpu{level}_us"] = cpu / counts.conc * 1e6
        out[f"upstream_busy{level}"] = (after["cpu_s"] - before["cpu_s"]) / wall
    return out


async def measure_batch(rows: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    """Build every row of the batch, measure them, close them; a failure is that row's result."""
    results: dict[str, dict[str, Any]] = {}
    built: dict[str, tuple[Send, Close]] = {}
    for row in rows:
        try:
            built[row["key"]] = await build(row["key"], f"http://{HOST}:{port}")
        except NotBuilt as exc:
            results[row["key"]] = {"na": str(exc)}
    counts = {row["key"]: Counts(**row["counts"]) for row in rows}
    try:
        results.update(await measure_c1({key: send for key, (send, _) in built.items()}, counts))
        for row in rows:
            if row["kind"] == "full" and row["key"] in built:
                send = built[row["key"]][0]
                results[row["key"]].update(await measure_concurrency(send, counts[row["key"]], port))
    except Exception as exc:  # noqa: BLE001 - a broken variant is reported, the others still run
        for key in built:
            results[key] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        for _, close in built.values():
            await close()
    return [results[row["key"]] for row in rows]


async def worker_main(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("capacity"):
        return await capacity_main(spec["port"], Counts(**spec["counts"]))
    if spec["rows"][0]["kind"] == "policy":
        return {"results": [await policy_main(spec["port"], Counts(**spec["rows"][0]["counts"]))]}
    return {"results": await measure_batch(spec["rows"], spec["port"])}


async def capacity_main(port: int, counts: Counts) -> dict[str, Any]:
    """The upstream alone: raw aiohttp at c=50, and how busy the upstream's core was."""
    send, close = await build_raw_aiohttp(f"http://{HOST}:{port}")
    n = 4 * counts.conc
    try:
        await concurrent(send, 500, 50)
        before = upstream_stats(port)
        wall, cpu = await concurrent(send, n, 50)
        after = upstream_stats(port)
    finally:
        await close()
    busy = (after["cpu_s"] - before["cpu_s"]) / wall
    rps = n / wall
    return {"rps": rps, "busy": busy, "client_busy": cpu / wall, "capacity_rps": rps / max(busy, 1e-9)}


# --------------------------------------------------------------------------------------
# Orchestration (parent process)
# --------------------------------------------------------------------------------------

class Upstream:
    """``_upstream.py`` in a subprocess pinned to core 1; ``port`` once it listens."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        cmd = [sys.executable, str(HERE / "_upstream.py"), "--port", "0", "--core", str(UPSTREAM_CORE)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "PORT <n>", or "" if it died
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"upstream did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh interpreter (pinned to core 0 like this process)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT_S}s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:200]}
    return json.loads(lines[-1][len("RESULT "):])


def batches(rows: list[Row]) -> list[list[Row]]:
    """Consecutive rows of one named batch together; every other row alone."""
    out: list[list[Row]] = []
    for row in rows:
        if out and row.batch and out[-1][-1].batch == row.batch:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def run_all(rows: list[Row], counts: Counts, reps: int, port: int) -> dict[str, list[dict[str, Any]]]:
    """Every row ``reps`` times, interleaved so that drift hits all rows alike."""
    samples: dict[str, list[dict[str, Any]]] = {row.key: [] for row in rows}
    started = time.perf_counter()
    for rep in range(reps):
        for batch in batches(rows):
            batch = [row for row in batch  # n/a or broken: once is enough
                     if not any("na" in s or "error" in s for s in samples[row.key])]
            if not batch:
                continue
            specs = [{"key": r.key, "kind": r.kind, "counts": asdict(counts.scaled(r.scale))} for r in batch]
            out = run_worker({"port": port, "rows": specs})
            for row, result in zip(batch, out.get("results") or [out] * len(batch)):
                samples[row.key].append(result)
                note = result.get("na") or result.get("error") or "ok"
                print(f"  [{time.perf_counter() - started:6.1f}s] rep {rep + 1}/{reps} {row.label}: {note}",
                      file=sys.stderr, flush=True)
    return samples


def medians(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each metric over repetitions (nested dicts: per policy)."""
    bad = next((s for s in samples if "na" in s or "error" in s), None)
    if not samples or bad is not None:
        bad = bad or {"error": "not run"}
        return {"na": bad.get("na") or f"error: {bad['error']}"}
    return {metric: medians([s[metric] for s in samples]) if isinstance(value, dict)
            else statistics.median(s[metric] for s in samples) for metric, value in samples[0].items()}


# --------------------------------------------------------------------------------------
# Report (parent process)
# --------------------------------------------------------------------------------------

COLUMNS = (  # metric, header
    ("p50_us", "p50 c=1 µs"),
    ("p99_us", "p99 c=1 µs"),
    ("cpu1_us", "CPU/req c=1"),
    ("rps50", "req/s c=50"),
    ("cpu50_us", "CPU/req c=50"),
    ("cpu100_us", "CPU/req c=100"),
)
WIDTHS = (38, *([16] * len(COLUMNS)), 9, 9)


def cell(value: float | None, base: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" + (f" ({value / base:.2f}x)" if base else "")


def print_table(rows: list[Row], results: dict[str, dict[str, Any]]) -> None:
    base = results.get("raw_httpx", {})
    headers = ("variant", *(header for _, header in COLUMNS), "c100/c1", "up busy")
    print(headers[0].ljust(WIDTHS[0]) + "".join(h.rjust(w) for h, w in zip(headers[1:], WIDTHS[1:])))
    for row in rows:
        if row.kind == "policy":
            continue
        r = results[row.key]
        if "na" in r:
            print(f"{row.label:<{WIDTHS[0]}}{r['na']}")
            continue
        cells = [cell(r.get(metric), base.get(metric)) for metric, _ in COLUMNS]
        cells.append(f"{r['cpu100_us'] / r['cpu1_us']:.2f}" if "cpu100_us" in r else "-")
        cells.append(f"{r['upstream_busy50'] * 100:.0f}%" if "upstream_busy50" in r else "-")
        print(f"{row.label:<{WIDTHS[0]}}" + "".join(c.rjust(w) for c, w in zip(cells, WIDTHS[1:])))
    print("(x): ratio to raw httpx (1 client, default pool). CPU/req: client process CPU per request, µs,\n"
          "all threads. c100/c1: CPU/req at c=100 over c=1. up busy: upstream core use during the c=50 run.")


def print_policies(policy: dict[str, Any]) -> None:
    print("\nEach routing policy alone: routers over in-process stubs that answer a real response at once")
    if "na" in policy:
        print(f"  {policy['na']}")
        return
    base = policy.get("stub direct", {})
    print(f"  {'policy':<36}{'p50 µs/call':>12}{'+ vs stub':>11}{'CPU µs/call':>13}{'+ vs stub':>11}")
    for name, r in policy.items():
        if "na" in r:
            print(f"  {name:<36}{r['na']}")
            continue
        p50_extra = "" if name == "stub direct" else f"{r['p50_us'] - base['p50_us']:+.1f}"
        cpu_extra = "" if name == "stub direct" else f"{r['cpu_us'] - base['cpu_us']:+.1f}"
        print(f"  {name:<36}{r['p50_us']:>12.1f}{p50_extra:>11}{r['cpu_us']:>13.1f}{cpu_extra:>11}")


def print_capacity(cap: dict[str, Any]) -> None:
    if "error" in cap:
        print(f"upstream capacity check failed: {cap['error']}")
        return
    print(f"Upstream alone (raw aiohttp client, c=50): {cap['rps']:.0f} req/s with the upstream core "
          f"{cap['busy'] * 100:.0f}% busy and the client core {cap['client_busy'] * 100:.0f}% busy "
          f"-> upstream capacity ~{cap['capacity_rps']:.0f} req/s.")


# --------------------------------------------------------------------------------------
# Targets of issue #4
# --------------------------------------------------------------------------------------

ROUTER_KINDS = ("fallback", "balance", "task", "cost")
POLICY_NAMES = {"fallback": "FallbackChain x3", "balance": "WeightedBalancer x3", "task": "TaskRouter",
                "task_learned": "TaskRouter (learned classifier)", "prompt": "PromptRouter",
                "cost": "CostAwareRouter"}


def _latency_target(r: dict, ctx: dict) -> tuple[bool | None, str]:
    raw = ctx["raw"]
    ratio, cpu = r["p50_us"] / raw["p50_us"], r["cpu1_us"] - raw["cpu1_us"]
    return ratio <= 1.2 and cpu <= 250, f"p50 {ratio:.2f}x raw httpx, CPU {cpu:+.0f} µs/call"


def _throughput_target(r: dict, ctx: dict) -> tuple[bool | None, str]:
    lite = ctx["litellm"]
    if "rps50" not in lite:
        return None, "LiteLLM n/a"
    ratio = r["rps50"] / lite["rps50"]
    goal = "meets the 10x goal" if ratio >= 10 else "below the 10x goal"
    return ratio >= 5, f"{r['rps50']:.0f} req/s = {ratio:.1f}x LiteLLM's {lite['rps50']:.0f} ({goal})"


def _scaling_target(r: dict, ctx: dict) -> tuple[bool | None, str]:
    ratio = r["cpu100_us"] / r["cpu1_us"]
    return ratio <= 1.5, f"CPU/req c=100 {r['cpu100_us']:.0f} µs = {ratio:.2f}x c=1 ({r['cpu1_us']:.0f} µs)"


ROW_TARGETS = (
    ("router p50 at c=1 <= 1.2x raw httpx and <= +250 µs CPU per call", _latency_target, ROUTER_KINDS),
    ("throughput at c=50 >= 5x LiteLLM Router (goal 10x)", _throughput_target, ("direct", *ROUTER_KINDS)),
    ("CPU per request at c=100 <= 1.5x its c=1 value", _scaling_target, ("direct", *ROUTER_KINDS)),
)


def _verdict(target: str, row: str, ok: bool | None, detail: str) -> dict[str, Any]:
    return {"target": target, "row": row, "ok": ok, "detail": detail}


def row_verdicts(labels: dict[str, str], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ctx = {"raw": results.get("raw_httpx", {}), "litellm": results.get("litellm", {})}
    out = []
    for title, check, kinds in ROW_TARGETS:
        for transport in ("httpx", "aiohttp"):
            for kind in kinds:
                key = f"{kind}:{transport}"
                if key not in results:
                    continue
                r = results[key]
                if "na" in r or "p50_us" not in ctx["raw"]:
                    out.append(_verdict(title, labels[key], None, r.get("na", "raw httpx n/a")))
                else:
                    out.append(_verdict(title, labels[key], *check(r, ctx)))
    return out


def policy_verdicts(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    title = "each routing policy <= +50 µs p50 on its own (over stub targets)"
    policy = results.get("policy", {"na": "not run"})
    base = policy.get("stub direct", {})
    out = []
    for name in POLICY_NAMES.values():
        r = policy.get(name, {"na": policy.get("na", "not run")})
        if "na" in r or "p50_us" not in base:
            out.append(_verdict(title, name, None, r.get("na", "n/a")))
            continue
        extra, cpu = r["p50_us"] - base["p50_us"], r["cpu_us"] - base["cpu_us"]
        out.append(_verdict(title, name, extra <= 50, f"p50 {extra:+.1f} µs, CPU {cpu:+.1f} µs per call"))
    return out


def hop_verdicts(labels: dict[str, str], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    title = "one fallback hop <= 2.2x a healthy call (same process, alternating)"
    out = []
    for transport in ("httpx", "aiohttp"):
        hop, healthy = results.get(f"hop:{transport}"), results.get(f"hopbase:{transport}", {})
        if hop is None:
            continue
        ok, detail = None, hop.get("na") or healthy.get("na") or "n/a"
        if "p50_us" in hop and "p50_us" in healthy:
            ratio = hop["p50_us"] / healthy["p50_us"]
            ok, detail = ratio <= 2.2, (f"p50 {hop['p50_us']:.0f} µs = {ratio:.2f}x a healthy chain's "
                                        f"{healthy['p50_us']:.0f} µs")
        out.append(_verdict(title, labels[f"hop:{transport}"], ok, detail))
    return out


def print_verdicts(verdicts: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> None:
    print("\nTargets (issue #4)")
    title = None
    for v in verdicts:
        if v["target"] != title:
            title = v["target"]
            print(f"  {title}")
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[v["ok"]]
        print(f"    [{mark}] {v['row']:<38} {v['detail']}")
    hop, healthy = results.get("litellm_hop", {}), results.get("litellm", {})
    if "p50_us" in hop and "p50_us" in healthy:
        print(f"  for comparison: LiteLLM's fallback hop p50 {hop['p50_us']:.0f} µs = "
              f"{hop['p50_us'] / healthy['p50_us']:.2f}x a healthy LiteLLM call")


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

def pin_client() -> str:
    if pin(CLIENT_CORE):
        return f"client pinned to core {CLIENT_CORE}, upstream to core {UPSTREAM_CORE}"
    return "one core only: client and upstream share it (no pinning)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, one repetition (smoke run)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per row (default 3; --quick: 1)")
    parser.add_argument("--layouts", action="store_true", help="also pool/client layout rows")
    parser.add_argument("--only", default=None,
                        help="comma-separated: rows whose key or label contains one of these (+ raw httpx)")
    parser.add_argument("--json", type=Path, default=None, help="also write every sample and verdict here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker is not None:
        print("RESULT " + json.dumps(asyncio.run(worker_main(json.loads(args.worker)))), flush=True)
        return
    counts = QUICK_COUNTS if args.quick else DEFAULT_COUNTS
    reps = args.reps or (1 if args.quick else 3)
    wanted = [w.strip().lower() for w in args.only.split(",")] if args.only else []
    rows = [r for r in all_rows(args.layouts) if not wanted or r.key == "raw_httpx"
            or any(w in r.key.lower() or w in r.label.lower() for w in wanted)]
    layout, load_before = pin_client(), os.getloadavg()[0]
    print(f"router_overhead: {reps} rep(s), {counts}, {layout}; python {sys.version.split()[0]}")
    with Upstream() as upstream:
        cap = run_worker({"capacity": True, "port": upstream.port, "counts": asdict(counts)})
        print_capacity(cap)
        samples = run_all(rows, counts, reps, upstream.port)
    results = {key: medians(values) for key, values in samples.items()}
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f} "
          f"(anything above ~1 means other work shared these cores)\n")
    print_table(rows, results)
    if "policy" in results:
        print_policies(results["policy"])
    labels = {row.key: row.label for row in rows}
    verdicts = row_verdicts(labels, results) + policy_verdicts(results) + hop_verdicts(labels, results)
    verdicts.sort(key=lambda v: [t for t, *_ in ROW_TARGETS].index(v["target"])
                  if v["target"] in [t for t, *_ in ROW_TARGETS] else len(ROW_TARGETS))
    print_verdicts(verdicts, results)
    if args.json:
        report = {"counts": asdict(counts), "reps": reps, "layout": layout, "upstream": cap,
                  "results": results, "samples": samples, "verdicts": verdicts}
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
