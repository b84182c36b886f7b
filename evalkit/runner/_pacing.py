"""How a run asks each target: retries, an adaptive in-flight limit and the spend cap.

A plain target (a provider) is asked through the router's own parts, so a run
retries and paces the way production routing does, and every attempt is a row
of ``attempts_df``::

    FallbackChain([LimitedTarget(provider, adaptive in-flight limit)], policy=run_retry_policy(retries))

* **Retries**: the chain is the one retry owner, with full-jitter backoff that
  honours a vendor's ``Retry-After`` (up to two minutes: a run can wait where
  an interactive call could not; a longer one ends the cell as failed, which
  ``--retry-failed`` asks again). Unlike an interactive chain it retries
  timeouts too: there is no next target to go to.
* **Adaptive concurrency**: the target's in-flight limit starts at the run's
  concurrency, halves on a vendor's 429/529 or when its rate-limit headers say
  the budget is nearly gone, and grows back by about one per round of
  successes (AIMD), so a run converges on what the provider allows instead of
  storming it. The run's scheduler gives a saturated target no new cells.
* **Spend cap**: with one, a one-candidate
  :class:`~evalkit.router.CostAwareRouter` sits between the chain and the
  limited target, so every attempt, each retry included, reserves its worst
  case in the run's :class:`~evalkit.router.BudgetLedger` before it is sent.

A routing config (a router) is its own retry owner and is asked as it is, with
one thing added: when every leaf under it has an in-flight limit
(``limits: {max_in_flight: N}``), the run sends it no more cells at once than
those limits add up to, and the rest wait their turn, instead of being refused
by the router's own limits (``on_saturated: skip``) as local 429s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..errors import ConfigError, ErrorKind
from ..providers import Provider
from ..router import (Action, BudgetLedger, CostAwareRouter, FallbackChain, LimitedTarget, Limits, RetryPolicy,
                      Router)

__all__ = ["TRANSIENT_KINDS", "PacedTarget", "check_priced", "leaf_capacity", "paced", "run_retry_policy",
           "spend_ledger"]

# A queued attempt may wait this long for a slot of its target's adaptive limit.
_SLOT_WAIT_S = 900.0


def run_retry_policy(retries: int) -> RetryPolicy:
    """The policy of a run's cells: ``retries`` retries of the one target, transient errors only.

    No deadline for the whole cell: each attempt is bounded by the provider's
    own timeout and deadlines, each backoff by ``retry_after_cap_s``.
    """
    return RetryPolicy(retries_per_target=retries, max_attempts=retries + 1, deadline_s=math.inf,
                       backoff_base_s=0.5, backoff_cap_s=30.0,
                       retry_after_cap_s=120.0).with_actions({"timeout": "retry"})


TRANSIENT_KINDS = frozenset({kind.value for kind, action in run_retry_policy(0).actions.items()
                             if action is Action.RETRY} | {ErrorKind.BUDGET_EXCEEDED.value})
"""Error kinds a later ask may not meet again, what ``--resume --retry-failed`` asks again: those a cell
retries, and a spend cap that had no room then."""


@dataclass(frozen=True, slots=True)
class PacedTarget:
    """What a cell calls (``call``), the gate the scheduler checks (``gate``) and the target's own name."""

    call: Provider
    gate: LimitedTarget | None
    name: str


def paced(target: Provider, *, retries: int, concurrency: int, ledger: BudgetLedger | None = None) -> PacedTarget:
    """``target`` as a run asks it (see the module docstring)."""
    if isinstance(target, Router):
        room = leaf_capacity(target)
        gate = None if room is None else LimitedTarget(target, Limits(
            max_in_flight=min(room, concurrency), on_saturated="wait", max_wait_s=_SLOT_WAIT_S))
        inner: Provider = target if gate is None else gate
        return PacedTarget(inner if ledger is None else _capped(inner, ledger), gate, target.name)
    gate = LimitedTarget(target, Limits(max_in_flight=concurrency, adaptive=True, on_saturated="wait",
                                        max_wait_s=_SLOT_WAIT_S))
    inner = gate if ledger is None else _capped(gate, ledger)
    chain = FallbackChain([inner], policy=run_retry_policy(retries), breaker=None, name=target.name)
    return PacedTarget(chain, gate, target.name)


def leaf_capacity(target: Provider) -> int | None:
    """Calls ``target`` can have in flight before its own in-flight limits refuse one; ``None``: no such bound.

    A limited target holds its ``max_in_flight`` (or less, what is under it);
    a router holds what its targets hold together; a leaf without a limit is
    unbounded, and so is any router with such a leaf (it can take the overflow).
    """
    if isinstance(target, LimitedTarget):
        own, inner = target.limits.max_in_flight, leaf_capacity(target.target)
        return inner if own is None else own if inner is None else min(own, inner)
    if isinstance(target, Router):
        rooms = [room for t in target.targets if (room := leaf_capacity(t)) is not None]
        return None if not rooms or len(rooms) < len(target.targets) else sum(rooms)
    return None


def _capped(target: Provider, ledger: BudgetLedger) -> CostAwareRouter:
    # One candidate, refused at once when its worst case does not fit: the run stops asking new cells.
    return CostAwareRouter([(target, 1.0)], ledger=ledger, on_over_budget="refuse", fallback_on_error=False,
                           name=target.name)


def check_priced(targets: Sequence[Provider], judge: Provider | None = None) -> None:
    """A :class:`~evalkit.ConfigError` on ``--max-spend`` naming a target whose worst case has no price.

    Checked by building what the run will (:func:`_capped`), before anything is written.
    """
    for target in [*targets, *([judge] if judge is not None else [])]:
        try:
            _capped(target, BudgetLedger(0, period="total"))
        except ConfigError:
            what = "a router, whose calls" if isinstance(target, Router) else "a model whose price"
            raise ConfigError(f"cannot cap spend on {target.name}: it is {what} evalkit cannot price before "
                              "sending; run without --max-spend, or give it prices", field="--max-spend") from None


def spend_ledger(cap: Decimal | None, already_spent: Decimal) -> BudgetLedger | None:
    """The run's ledger: ``cap`` for the whole run, what earlier invocations spent counted as spent."""
    if cap is None:
        return None
    if already_spent > cap:
        raise ConfigError(f"this run has already spent ${already_spent:.4f}, more than the cap ${cap}",
                          field="--max-spend")
    ledger = BudgetLedger(cap, period="total")
    if already_spent:
        ledger.reserve("earlier invocations", already_spent).settle(already_spent)
    return ledger
