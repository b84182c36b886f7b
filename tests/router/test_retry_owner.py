"""One retry owner: the balancer and the cost-aware router take a RetryPolicy (in code and in YAML), the policy
reads each error's RetryDecision, and a balance/cost node's retry block refuses what it could not change."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from evalkit import ChatRequest, ConfigError
from evalkit.errors import AllTargetsFailed, ErrorKind, RateLimitError, RetryDecision
from evalkit.router import (Action, BudgetLedger, Candidate, CostAwareRouter, RetryPolicy, Router, TaskRouter,
                            WeightedBalancer)

from .fakes import ScriptedProvider

REQ = ChatRequest.from_prompt("hello", max_tokens=10)
PRICES = {"input": 1, "output": 2}


def balancer(a: ScriptedProvider, b: ScriptedProvider, policy: RetryPolicy | None = None) -> WeightedBalancer:
    return WeightedBalancer([a, b], seed=0, policy=policy)


async def test_a_balancer_stops_or_moves_on_as_its_policy_says() -> None:
    # The defaults stop on a content-filter refusal (routing around it can bypass a safety filter)...
    a, b = ScriptedProvider("a", default="content_filter"), ScriptedProvider("b", default="content_filter")
    with pytest.raises(AllTargetsFailed):
        await balancer(a, b).complete(REQ)
    assert a.calls + b.calls == 1
    # ...a policy that opts in moves on to the other target.
    a, b = ScriptedProvider("a", default="content_filter"), ScriptedProvider("b", default="content_filter")
    with pytest.raises(AllTargetsFailed):
        await balancer(a, b, RetryPolicy().with_actions({"content_filter": "next"})).complete(REQ)
    assert (a.calls, b.calls) == (1, 1)
    # And a policy can stop where the defaults move on.
    a, b = ScriptedProvider("a", default="server"), ScriptedProvider("b", default="server")
    with pytest.raises(AllTargetsFailed):
        await balancer(a, b, RetryPolicy().with_actions({"server": "stop"})).complete(REQ)
    assert a.calls + b.calls == 1


async def test_a_balancer_never_retries_one_target_whatever_the_policy() -> None:
    a, b = ScriptedProvider("a", default="server"), ScriptedProvider("b", default="server")
    policy = RetryPolicy(retries_per_target=3, backoff_base_s=0.0, backoff_cap_s=0.0)
    with pytest.raises(AllTargetsFailed):
        await balancer(a, b, policy).complete(REQ)
    assert (a.calls, b.calls) == (1, 1)  # retries are a FallbackChain's job


def cost_router(cheap: ScriptedProvider, dear: ScriptedProvider, policy: RetryPolicy | None = None
                ) -> CostAwareRouter:
    return CostAwareRouter([Candidate(cheap, 0.8, {"input": 1, "output": 1}),
                            Candidate(dear, 0.9, {"input": 5, "output": 5})],
                           ledger=BudgetLedger(Decimal(100)), policy=policy)


async def test_a_cost_router_stops_or_moves_on_as_its_policy_says() -> None:
    cheap, dear = ScriptedProvider("cheap", ["server"]), ScriptedProvider("dear")
    assert (await cost_router(cheap, dear).complete(REQ)).text == "answer from dear"
    cheap, dear = ScriptedProvider("cheap", ["server"]), ScriptedProvider("dear")
    with pytest.raises(AllTargetsFailed) as caught:
        await cost_router(cheap, dear, RetryPolicy().with_actions({"server": "stop"})).complete(REQ)
    assert caught.value.kind is ErrorKind.SERVER and dear.calls == 0
    cheap, dear = ScriptedProvider("cheap", ["content_filter"]), ScriptedProvider("dear")
    with pytest.raises(AllTargetsFailed):
        await cost_router(cheap, dear).complete(REQ)
    cheap, dear = ScriptedProvider("cheap", ["content_filter"]), ScriptedProvider("dear")
    routed = cost_router(cheap, dear, RetryPolicy().with_actions({"content_filter": "next"}))
    assert (await routed.complete(REQ)).text == "answer from dear"


def test_the_policy_decides_from_the_errors_retry_decision() -> None:
    policy = RetryPolicy(retry_after_cap_s=10.0)
    assert policy.may_retry(RetryDecision(True)) and policy.may_retry(RetryDecision(True, 10.0))
    assert not policy.may_retry(RetryDecision(True, 30.0))  # longer than the policy waits: move on
    assert not policy.may_retry(RetryDecision(False))
    throttled = RateLimitError("slow down", retry_after=30.0)
    assert throttled.retry == RetryDecision(True, 30.0) and policy.action_for(throttled) is Action.NEXT
    assert policy.action_for(RateLimitError("slow down", retry_after=2.0)) is Action.RETRY
    assert policy.action_for(RateLimitError("quota gone", retryable=False)) is Action.NEXT


# -- from YAML --------------------------------------------------------------------------------------------

CONFIG = """\
version: 1
targets:
  a: {model: "openai:a", api_key_env: EVALKIT_TEST_KEY, prices: {input: 1, output: 2}}
  b: {model: "openai:b", api_key_env: EVALKIT_TEST_KEY, prices: {input: 3, output: 4}}
router:
  type: task
  routes:
    simple_qa:
      type: balance
      targets: [a, b]
      retry: {actions: {content_filter: next, server: stop}}
    code:
      type: cost
      candidates: [{target: a, quality: 0.8}, {target: b, quality: 0.9}]
      retry: {actions: {server: stop}}
  default: {type: balance, targets: [a, b]}
"""


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-test-retry-key")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_balance_and_cost_nodes_take_their_retry_actions_from_the_config(tmp_path: Path) -> None:
    router = Router.from_config(write(tmp_path, CONFIG))
    assert isinstance(router, TaskRouter)
    qa, code, default = router.routes["simple_qa"], router.routes["code"], router.default
    assert isinstance(qa, WeightedBalancer) and isinstance(code, CostAwareRouter)
    assert isinstance(default, WeightedBalancer)
    assert qa.policy.actions[ErrorKind.CONTENT_FILTER] is Action.NEXT
    assert qa.policy.actions[ErrorKind.SERVER] is Action.STOP
    assert code.policy.actions[ErrorKind.SERVER] is Action.STOP
    assert default.policy == RetryPolicy()  # none given: a chain's defaults


@pytest.mark.parametrize(("old", "new", "where"), [
    ("retry: {actions: {server: stop}}", "retry: {retries_per_target: 2}",
     "routing.yaml:15: router.routes.code.retry.retries_per_target: applies only to a fallback node"),
    ("retry: {actions: {content_filter: next, server: stop}}", "retry: {actions: {server: retry}}",
     "routing.yaml:11: router.routes.simple_qa.retry.actions.server: 'retry' changes nothing here"),
    ("retry: {actions: {server: stop}}", "retry: {actions: {servr: stop}}",
     "routing.yaml:15: router.routes.code.retry.actions.servr: unknown error kind 'servr'"),
    ("retry: {actions: {server: stop}}", "retry: {actions: {server: halt}}",
     "routing.yaml:15: router.routes.code.retry.actions.server: unknown value 'halt'"),
    ("retry: {actions: {server: stop}}", "retry: {}",
     "routing.yaml:15: router.routes.code.retry.actions: missing"),
])
def test_a_bad_retry_block_on_a_balance_or_cost_node_is_located(tmp_path: Path, old: str, new: str,
                                                                where: str) -> None:
    assert old in CONFIG
    with pytest.raises(ConfigError) as caught:
        Router.from_config(write(tmp_path, CONFIG.replace(old, new)))
    assert f"/routing.yaml:{where.split(':', 1)[1]}" in str(caught.value)
