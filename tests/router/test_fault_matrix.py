"""Every injected fault kind × every policy, against the emulator on loopback.

For each case two models fail independently with probability P per attempt.
Checked: every request gets a response or one error holding all its attempts;
the success rate matches the theoretical one within 4 binomial standard
deviations (the emulator's draws are seeded, so the outcome is also
reproducible); every attempt reaches the monitor; the emulator never saw
more requests than the router recorded attempts, so no loop retried anything
behind the policy's back; and no policy returns a refusal or an empty answer
(both arrive as HTTP 200) as a success.
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest

import evalkit
from evalkit.errors import AllTargetsFailed, ProviderError
from evalkit.router import (
    BreakerSettings,
    Candidate,
    CostAwareRouter,
    FallbackChain,
    Monitor,
    RetryPolicy,
    TaskRouter,
    WeightedBalancer,
)

P = 0.3
N = 150
# emulator fault kind -> whether FallbackChain retries it (else it moves on)
KINDS = {"429": True, "500": True, "503": True, "529": True, "reset": True, "cut": True, "malformed": True,
         "empty": True, "timeout": False, "context_length": False, "content_filter": False}
CLIENT_TIMEOUT_S = 1.0


def _fleet(tmp_path: Path) -> Path:
    models = []
    for kind in KINDS:
        for role in ("a", "b"):
            models.append(f"""\
  - name: sim-{role}-{kind.replace('_', '-')}
    wires: [openai]
    price: {{input: {1.0 if role == 'a' else 5.0}, output: {2.0 if role == 'a' else 10.0}}}
    context_window: 100000
    latency: {{ttft_ms: 1, tokens_per_s: 100000}}
    output_tokens: 8
    skills: {{default: 0.9}}
    faults: {{"{kind}": {P}, retry_after_s: 0, stall_s: 3}}
""")
    path = tmp_path / "fleet.yaml"
    path.write_text("version: 1\nmodels:\n" + "".join(models))
    return path


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory):
    from evalkit.emulator import Emulator

    with Emulator(_fleet(tmp_path_factory.mktemp("fleet")), seed=11, time_scale=0.0, datasets=()) as emulator:
        yield emulator


def _leaf(emu: Any, name: str, kind: str) -> Any:
    # Only the stall case needs a short timeout; elsewhere a busy CI machine must not add timeouts.
    timeout = CLIENT_TIMEOUT_S if kind == "timeout" else 20.0
    return evalkit.get_provider(f"openai:{name}", base_url=emu.openai_base_url, api_key="test-key",
                                timeout=timeout, prices={"input": 1, "output": 2})


POLICY = RetryPolicy(retries_per_target=1, max_attempts=10, backoff_base_s=0.0, backoff_cap_s=0.0,
                     deadline_s=30.0)
NO_BREAKER = BreakerSettings(consecutive_failures=10**6, min_volume=10**6)


def _chain(a: Any, b: Any, monitor: Monitor) -> Any:
    # Faults here are independent draws, not a down target: the theory assumes no breaker skips one.
    return FallbackChain([a, b], policy=POLICY, seed=1, monitor=monitor, breaker=None)


def _balancer(a: Any, b: Any, monitor: Monitor) -> Any:
    return WeightedBalancer([a, b], breaker=NO_BREAKER, seed=1, monitor=monitor)


def _tasks(a: Any, b: Any, monitor: Monitor) -> Any:
    return TaskRouter({"simple_qa": FallbackChain([a, b], policy=POLICY, seed=1, breaker=None)},
                      default=FallbackChain([b, a], policy=POLICY, seed=2, breaker=None), monitor=monitor)


def _cost(a: Any, b: Any, monitor: Monitor) -> Any:
    ledger = evalkit.BudgetLedger(Decimal(1000))
    return CostAwareRouter([Candidate(a, 0.8), Candidate(b, 0.9)], ledger=ledger, min_quality=0.5,
                           monitor=monitor)


# policy -> (builder, success probability given whether the kind is retried by a chain)
POLICIES: dict[str, tuple[Callable[..., Any], Callable[[bool], float]]] = {
    "fallback": (_chain, lambda retried: 1 - P ** (4 if retried else 2)),
    "balancer": (_balancer, lambda retried: 1 - P**2),
    "task": (_tasks, lambda retried: 1 - P ** (4 if retried else 2)),
    "cost": (_cost, lambda retried: 1 - P**2),
}


async def _drive(router: Any) -> list[Any]:
    gate = asyncio.Semaphore(24)

    async def one(i: int) -> Any:
        request = evalkit.ChatRequest.from_prompt(f"Tell me fact number {i}.", max_tokens=8, stream=True)
        async with gate:
            try:
                return await router.complete(request)
            except ProviderError as exc:
                return exc

    return await asyncio.gather(*(one(i) for i in range(N)))


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fault_matrix(emu: Any, kind: str, policy: str) -> None:
    emu.reset()
    suffix = kind.replace("_", "-")
    a, b = _leaf(emu, f"sim-a-{suffix}", kind), _leaf(emu, f"sim-b-{suffix}", kind)
    monitor = Monitor()
    build, theory = POLICIES[policy]
    outcomes = asyncio.run(_drive(build(a, b, monitor)))

    attempts = [x for o in outcomes for x in (o.attempts if o.attempts is not None else ())]
    for outcome in outcomes:
        assert isinstance(outcome, (evalkit.ChatResponse, AllTargetsFailed)), repr(outcome)
        assert outcome.attempts, "a response or one error holding all attempts"
    answers = [o for o in outcomes if isinstance(o, evalkit.ChatResponse)]
    for answer in answers:  # a 200 refusal or empty answer is a failed attempt, never a success
        assert answer.text.strip() and answer.finish_reason is not evalkit.FinishReason.CONTENT_FILTER, answer
    served = len(answers)
    # A refusal ends the call (routing around it could bypass a safety decision): one attempt decides.
    expected = 1 - P if kind == "content_filter" else theory(KINDS[kind])
    tolerance = 4 * math.sqrt(expected * (1 - expected) / N) + 1 / N
    assert abs(served / N - expected) <= tolerance, f"{served}/{N} vs {expected:.3f} ± {tolerance:.3f}"

    assert len(monitor) == len(attempts), "every attempt is in the monitor"
    sent = [x for x in attempts if x.sent]
    models = emu.stats()["models"]
    for leaf in (a, b):
        seen_by_server = models.get(leaf.model, {}).get("requests", 0)
        recorded = sum(x.target == leaf.name for x in sent)
        # A pooled connection the server closed (after a cut or a reset) can fail before the request
        # reaches the server: such attempts are recorded as connection errors the server never saw.
        unseen = sum(x.target == leaf.name and x.error_kind == "connection" for x in sent)
        assert recorded - unseen <= seen_by_server <= recorded, (
            f"{leaf.name}: server saw {seen_by_server}, router recorded {recorded} ({unseen} connection errors)")
    failed_kinds = {x.error_kind for x in sent if x.error_kind}
    assert failed_kinds <= {"rate_limit", "server", "overloaded", "connection", "stream_interrupted",
                            "invalid_response", "timeout", "context_length", "content_filter"}
