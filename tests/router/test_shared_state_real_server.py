"""A shared budget and a shared rate limit in front of a real third-party server: llama-cpp-python's.

Two replicas (two ``RedisState`` connections, as two processes would have) on
Debian's ``redis-server``; the money each call settles to is what llama.cpp's
own ``usage`` reports, not anything our emulator computed.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import evalkit
from evalkit import BudgetExceeded, ChatRequest
from evalkit.router import BudgetLedger, CostAwareRouter, FallbackChain, LimitedTarget, Limits, RedisState

PRICES = {"input": 1000, "output": 2000}  # USD per 1M tokens: large, so every call costs real cents
REQUEST = ChatRequest.from_prompt("Name a primary colour.", max_tokens=8)


def _router(server: Any, ledger: BudgetLedger) -> CostAwareRouter:
    live = evalkit.get_provider(server.target, base_url=server.base_url, prices=PRICES)
    return CostAwareRouter([(live, 1.0)], ledger=ledger, on_over_budget="refuse")


async def test_two_replicas_share_one_budget_settled_from_llamacpps_own_usage(
        llamacpp_server: Any, redis_server: Any, redis_prefix: str) -> None:
    states = [RedisState(redis_server.url, prefix=redis_prefix, timeout_ms=2000) for _ in range(2)]
    probe = _router(llamacpp_server, BudgetLedger("1"))
    worst = probe.quote(REQUEST)[0].worst_case
    await probe.aclose()
    cap = worst * 3 + Decimal("0.000001")  # room for three worst cases, not four
    routers = [_router(llamacpp_server, BudgetLedger(cap, period="total", state=s)) for s in states]

    async def ask(i: int) -> Any:
        try:
            return await routers[i % 2].complete(REQUEST)
        except BudgetExceeded as exc:
            return exc

    outcomes = await asyncio.gather(*(ask(i) for i in range(6)))
    for state in states:
        await state.flush()
    served = [o for o in outcomes if not isinstance(o, BudgetExceeded)]
    assert len(served) == 3  # the fourth reservation fitted neither replica's view of the one cap
    assert all(o.provider == llamacpp_server.target and o.usage.exact for o in served)
    snapshot = routers[0].ledger.snapshot()
    billed = sum((o.cost.total for o in served), Decimal(0))
    # What the ledger counts is llama.cpp's reported usage at our prices, to the nano-dollar (rounded up).
    assert billed <= snapshot["spent"] < billed + Decimal("0.000000003")
    assert snapshot["reserved"] == 0 and snapshot["spent"] <= cap
    for router in routers:
        await router.aclose()
    for state in states:
        await state.aclose()


async def test_an_rpm_limit_shared_by_two_replicas_lets_two_requests_reach_llamacpp(
        llamacpp_server: Any, redis_server: Any, redis_prefix: str) -> None:
    states = [RedisState(redis_server.url, prefix=redis_prefix, timeout_ms=2000) for _ in range(2)]
    chains = [FallbackChain([LimitedTarget(evalkit.get_provider(llamacpp_server.target,
                                                                base_url=llamacpp_server.base_url, prices=PRICES),
                                           Limits(rpm=2), state=s)], breaker=None, state=s) for s in states]

    async def ask(i: int) -> bool:
        try:
            await chains[i % 2].complete(REQUEST)
        except evalkit.ProviderError as exc:
            assert exc.code == "local_limit"  # refused here, before anything was sent
            return False
        return True

    answered = await asyncio.gather(*(ask(i) for i in range(6)))
    assert sum(answered) == 2  # one minute's budget for both replicas together, not two each
    for chain in chains:
        await chain.aclose()
    for state in states:
        await state.aclose()
