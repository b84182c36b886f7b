"""Four app processes sharing one Redis behave like one process: one budget, one health view, one rate limit.

Each replica is a separate Python process (``tests/router/replica_process.py``)
that builds its router from a routing YAML with a ``state:`` block and calls
the emulator, a real HTTP server in this process. Redis is Debian's
``redis-server``. Every test also shows that without shared state the same
workload breaks the rule it checks, so none of them holds by construction.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.redis_server import RedisServer

REPLICAS = 4
KEY = "sk-test-SHARED-STATE-0000"
ROOT = Path(__file__).resolve().parents[2]
RPM = 120
CLIENT_RPM = 115  # a little under the vendor's: a burst's first request, slower to connect, lands late


def _model(name: str, price: str, ttft_ms: int, extra: str = "") -> str:
    return (f"  - name: {name}\n    wires: [openai]\n    price: {price}\n    context_window: 100000\n"
            f"    latency: {{ttft_ms: {ttft_ms}, tokens_per_s: 100000}}\n    output_tokens: 8\n"
            f"    skills: {{default: 0.9}}\n{extra}")


CHEAP = "{input: 1.0, output: 2.0}"
FLEET = "version: 1\nmodels:\n" + "".join((
    _model("sim-priced", "{input: 1000.0, output: 2000.0}", 20),
    _model("sim-primary", CHEAP, 5),
    _model("sim-backup", CHEAP, 5),
    _model("sim-limited", CHEAP, 5, f"    rate_limits: {{requests_per_minute: {RPM}, enforce: true}}\n"),
))


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from evalkit.emulator import Emulator

    fleet = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet.write_text(FLEET)
    with Emulator(fleet, seed=5, time_scale=1.0, datasets=()) as emulator:
        yield emulator


def _target(name: str, emu: Any, extra: str = "") -> str:
    """A target named ``name`` for the fleet's ``sim-<name>``; attempts name it ``openai:sim-<name>``."""
    return (f"  {name}:\n    model: openai:sim-{name}\n    base_url: {emu.openai_base_url}\n"
            f"    api_key_env: SHARED_STATE_TEST_KEY\n{extra}")


def _state(backend: str, prefix: str) -> str:
    if backend == "memory":
        return ""
    # timeout_ms counts until the process reads the answer: four replicas, the emulator and Redis share two
    # cores here, and a loop busy with 50 calls may read late. A kill is seen at once (connection refused).
    return f"state: {{backend: redis, url_env: REDIS_URL, prefix: {prefix}, timeout_ms: 1000, retry_interval_s: 0.2}}\n"


class Replicas:
    """``REPLICAS`` processes running one routing config; each command goes to all and each answers."""

    def __init__(self, config: Path, redis_url: str, n: int = REPLICAS) -> None:
        env = {**os.environ, "REDIS_URL": redis_url, "SHARED_STATE_TEST_KEY": KEY, "PYTHONPATH": str(ROOT)}
        self.processes = [
            subprocess.Popen([sys.executable, "-m", "tests.router.replica_process", str(config)], cwd=ROOT,
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(n)]
        for process in self.processes:
            assert self._read(process, 60) == {"ready": True}

    def _read(self, process: subprocess.Popen[str], timeout: float) -> Any:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"replica {process.pid} gave no answer within {timeout}s")
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"replica {process.pid} ended (exit code {process.wait(5)})")
        return json.loads(line)

    def send(self, command: dict[str, Any], only: int | None = None, timeout: float = 120) -> list[Any]:
        chosen = self.processes if only is None else [self.processes[only]]
        for process in chosen:
            assert process.stdin is not None
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        return [self._read(process, timeout) for process in chosen]

    def close(self) -> list[int]:
        codes = []
        for process in self.processes:
            if process.poll() is None:
                process.stdin.write(json.dumps({"op": "exit"}) + "\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
            codes.append(process.wait(30))
        return codes


@pytest.fixture
def replicas(tmp_path: Path, redis_server: Any) -> Iterator[Any]:
    started: list[Replicas] = []

    def start(config_text: str, redis_url: str | None = None) -> Replicas:
        config = tmp_path / f"routing{len(started)}.yaml"
        config.write_text(config_text)
        group = Replicas(config, redis_url or redis_server.url)
        started.append(group)
        return group

    yield start
    for group in started:
        assert group.close() == [0] * REPLICAS  # no replica crashed


def _costs(outcomes: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(o["cost"]) for o in outcomes if o["cost"] is not None), Decimal(0))


# -- one budget ---------------------------------------------------------------------------------------

CAP = Decimal("6")
PRICED = "    prices: {input: 1000, output: 2000}\n"  # the fleet's price, so the ledger can price each call


def _budget_config(emu: Any, backend: str, prefix: str, cap: Decimal = CAP) -> str:
    return (f"version: 1\n{_state(backend, prefix)}targets:\n"
            f"{_target('priced', emu, PRICED)}"
            "router:\n  type: cost\n  on_over_budget: refuse\n  candidates:\n"
            "    - {target: priced, quality: 1}\n"
            f"budget: {{limit_usd: {cap}, period: total}}\n")


def test_four_processes_with_fifty_calls_each_in_flight_never_pass_one_shared_cap(
        emu: Any, replicas: Any, redis_prefix: str) -> None:
    group = replicas(_budget_config(emu, "redis", redis_prefix))
    results = group.send({"op": "spend", "concurrency": 50, "seconds": 60})
    outcomes = [o for result in results for o in result]
    served = [o for o in outcomes if o["ok"]]
    spent = _costs(served)
    # Every answer's own cost, summed over the four processes, stays within the one cap...
    assert spent <= CAP
    assert len(served) >= 50
    # ...and the replicas stopped only when the next reservation could not fit, not earlier.
    finals = [o["refusal"] for o in outcomes if o.get("refusal") and Decimal(o["refusal"]["reserved"]) == 0]
    assert len(finals) == 4 * 50
    for refusal in finals:
        assert Decimal(refusal["spent"]) + Decimal(refusal["requested"]) > CAP
    worst_case = max(Decimal(f["requested"]) for f in finals)
    assert CAP - spent < worst_case * 2  # the money left is less than what one more call may cost (+ rounding)
    assert {o["kind"] for o in outcomes if not o["ok"]} == {"budget_exceeded"}, [
        o["error"] for o in outcomes if o["kind"] not in (None, "budget_exceeded")][:3]


def test_without_shared_state_the_same_four_processes_spend_about_four_caps(
        emu: Any, replicas: Any, redis_prefix: str) -> None:
    group = replicas(_budget_config(emu, "memory", redis_prefix))
    results = group.send({"op": "spend", "concurrency": 50, "seconds": 60})
    spent = _costs([o for result in results for o in result if o["ok"]])
    assert spent > 3 * CAP  # the bug shared state fixes: each process had its own ledger


# -- one health view ------------------------------------------------------------------------------------


def _breaker_config(emu: Any, backend: str, prefix: str) -> str:
    return (f"version: 1\n{_state(backend, prefix)}targets:\n{_target('primary', emu)}{_target('backup', emu)}"
            "router:\n  type: fallback\n  targets: [primary, backup]\n"
            "  retry: {retries_per_target: 0}\n"
            "  breaker: {consecutive_failures: 2, cooldown_s: 2}\n")


def _primary_requests(emu: Any) -> int:
    return emu.stats()["models"].get("sim-primary", {}).get("requests", 0)


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_a_breaker_opened_by_one_process_is_respected_by_the_others_with_one_probe(
        emu: Any, replicas: Any, redis_prefix: str, backend: str) -> None:
    emu.reset()
    group = replicas(_breaker_config(emu, backend, redis_prefix))
    emu.script("sim-primary", ["500", "500"])
    first = group.send({"op": "calls", "n": 2, "concurrency": 1}, only=0)[0]
    assert [o["failed"] for o in first] == [[["openai:sim-primary", "server"]]] * 2  # process A opened the breaker
    group.send({"op": "flush"}, only=0)
    before = _primary_requests(emu)
    others = [group.send({"op": "calls", "n": 1}, only=i)[0][0] for i in (1, 2, 3)]
    if backend == "memory":  # each process has its own breaker: B, C and D still send to the dead primary
        assert _primary_requests(emu) == before + 3
        return
    # B, C and D skip the primary on their very next call: nothing reaches it.
    assert [o["skipped"] for o in others] == [[["openai:sim-primary", "circuit_open"]]] * 3
    assert all(o["sent"] == ["openai:sim-backup"] for o in others)
    assert _primary_requests(emu) == before
    # After the cooldown, 4 processes x 20 concurrent calls race for the half-open probe: exactly one goes.
    time.sleep(2.1)
    emu.script("sim-primary", ["500"])
    results = group.send({"op": "calls", "n": 20, "concurrency": 20})
    assert _primary_requests(emu) == before + 1
    assert sum(o["sent"][:1] == ["openai:sim-primary"] for r in results for o in r) == 1
    assert all(o["ok"] for r in results for o in r)  # everyone else was served by the backup


# -- one rate limit ----------------------------------------------------------------------------------------


def _rpm_config(emu: Any, backend: str, prefix: str) -> str:
    limits = f"    limits: {{rpm: {CLIENT_RPM}, on_saturated: skip}}\n"
    return (f"version: 1\n{_state(backend, prefix)}targets:\n{_target('limited', emu, limits)}"
            "router:\n  type: fallback\n  targets: [limited]\n  retry: {retries_per_target: 0}\n"
            "  breaker: off\n")


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_an_rpm_limit_shared_by_four_processes_holds_within_one_request(
        emu: Any, replicas: Any, redis_prefix: str, backend: str) -> None:
    emu.reset()
    group = replicas(_rpm_config(emu, backend, redis_prefix))
    started = time.time()
    group.send({"op": "for_seconds", "seconds": 3, "concurrency": 8})
    elapsed = time.time() - started
    at_vendor = emu.stats()["models"]["sim-limited"]
    sent = at_vendor["requests"]  # what reached the emulator: local refusals never leave the process
    allowed = CLIENT_RPM + CLIENT_RPM / 60 * elapsed  # a minute's burst plus the refill: the bucket vendors meter
    vendor_429s = at_vendor["by_status"].get("429", 0)
    if backend == "memory":
        assert sent > 2 * allowed and vendor_429s > 0  # four buckets: four times the limit, and the vendor says so
        return
    assert CLIENT_RPM <= sent <= allowed + 1
    assert vendor_429s == 0  # the emulator enforces the same limit: the replicas never passed it


KILL_CAP = Decimal("60")

# -- Redis dies mid-run ----------------------------------------------------------------------------------------


def test_redis_killed_and_restarted_mid_run_no_crash_no_overspend_and_recovery(
        emu: Any, replicas: Any, redis_prefix: str, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", durable=True)
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        # A cap that takes the four replicas a few seconds to spend, two calls in flight each.
        group = replicas(_budget_config(emu, "redis", redis_prefix, KILL_CAP), redis_url=server.url)
        import threading

        def outage() -> None:
            time.sleep(1.0)
            server.kill()
            time.sleep(1.0)
            server.start()

        killer = threading.Thread(target=outage)
        killer.start()
        results = group.send({"op": "spend", "concurrency": 2, "seconds": 60})
        killer.join()
    finally:
        server.kill()
    outcomes = sorted((o for r in results for o in r), key=lambda o: o["at"])
    kinds = {o["kind"] for o in outcomes}
    assert "state_unavailable" in kinds  # the outage was seen, as a typed error: no request was sent for those
    assert all(o["sent"] == [] for o in outcomes if o["kind"] == "state_unavailable")
    last_outage = max(i for i, o in enumerate(outcomes) if o["kind"] == "state_unavailable")
    assert any(o["ok"] for o in outcomes[last_outage:])  # served again after the restart, same processes
    assert _costs([o for o in outcomes if o["ok"]]) <= KILL_CAP  # and never more than the cap in all
