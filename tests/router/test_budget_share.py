"""BudgetLedger(max_share_of_remaining=...): no single call takes more than a share of what is left.

The seed's rule was "no single call uses more than 10 % of the remaining daily budget";
without it one call could reserve 90 % of what was left.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from evalkit import ChatRequest
from evalkit.errors import BudgetExceeded
from evalkit.router.budget import BudgetLedger
from evalkit.router.cost import Candidate, CostAwareRouter

from .test_cost import MeteredProvider

D = Decimal


def test_one_call_may_not_take_90_percent_of_what_is_left() -> None:
    ledger = BudgetLedger("10", max_share_of_remaining="0.1")
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve("a", D("9"))  # 90 % of the $10 left
    err = caught.value
    assert err.scope == "share" and err.requested == D(9) and err.cap == D(10)
    assert "max_share_of_remaining=0.1" in err.message and "$10 left" in err.message
    assert ledger.reserved == 0 and ledger.snapshot()["refused"] == 1
    assert ledger.reserve("a", D("1")).amount == D(1)  # exactly 10 % of $10 fits


def test_the_share_is_of_what_remains_after_spend_and_holds() -> None:
    ledger = BudgetLedger("100", max_share_of_remaining=D("0.1"))
    ledger.reserve("a", D("10")).settle(D("10"))  # $90 left
    held = ledger.reserve("a", D("9"))  # $81 left
    with pytest.raises(BudgetExceeded):
        ledger.reserve("a", D("8.2"))  # > 8.1
    ledger.reserve("a", D("8.1"))
    held.release()
    assert ledger.remaining == D("81.9")


def test_a_per_target_cap_has_its_own_share() -> None:
    ledger = BudgetLedger("100", per_target={"small": "10"}, max_share_of_remaining="0.5")
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve("small", D("6"))  # fits the shared rule (6 <= 50), not the target's (6 > 5)
    assert caught.value.scope == "share" and "cap for small" in caught.value.message
    assert ledger.reserve("small", D("5")).amount == D(5)
    assert ledger.reserve("other", D("40")).amount == D(40)  # no per-target cap: only the shared share (47.5)


def test_without_the_option_nothing_changes() -> None:
    ledger = BudgetLedger("10")
    assert ledger.reserve("a", D("9")).amount == D(9)
    assert ledger.snapshot()["max_share_of_remaining"] is None


@pytest.mark.parametrize("bad", ["0", "-0.1", "1.5", "NaN", "lots", 0.1, True])
def test_the_share_must_be_a_fraction_in_0_1(bad) -> None:
    with pytest.raises((ValueError, TypeError), match=r"max_share_of_remaining (must|is not)"):
        BudgetLedger("10", max_share_of_remaining=bad)


def test_one_is_allowed_and_means_the_whole_remainder() -> None:
    ledger = BudgetLedger("10", max_share_of_remaining=1)
    assert ledger.reserve("a", D("10")).amount == D(10)


async def test_a_cost_router_downgrades_a_call_too_big_for_the_share() -> None:
    request = ChatRequest.from_prompt("hello", max_tokens=1000)
    cheap, dear = MeteredProvider("cheap", "1", "1"), MeteredProvider("dear", "100", "100")
    ledger = BudgetLedger("1", max_share_of_remaining="0.1")
    router = CostAwareRouter([Candidate(dear, 1.0), Candidate(cheap, 0.5)], ledger=ledger, min_quality=0.8,
                             allow_downgrade=True)
    worst = {q.target: q.worst_case for q in router.quote(request)}
    assert worst["dear"] > D("0.1") > worst["cheap"]  # dear alone would take > 10 % of $1
    response = await router.complete(request)
    assert response.provider == "cheap" and dear.calls == 0
    refused = response.attempts[0]
    assert refused.error_kind == "budget_exceeded" and "max_share_of_remaining" in refused.error
