"""What a router does after a failed attempt, and how long it waits.

The router is evalkit's one retry owner: adapters never retry, and a router
that ran out of targets raises :class:`~evalkit.errors.AllTargetsFailed`, which
outer routers never retry. :class:`RetryPolicy` holds the whole decision, for
every policy that gives up or moves on after a failure: a
:class:`~evalkit.router.FallbackChain` (which also retries a target), a
:class:`~evalkit.router.WeightedBalancer` and a
:class:`~evalkit.router.CostAwareRouter` (which move on or stop, never retry
the same target). What the error itself says about trying again is its
:class:`~evalkit.errors.RetryDecision` (``error.retry``): the policy reads that,
never the error's fields one by one.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import ErrorKind, ProviderError, RetryDecision

__all__ = ["Action", "RetryPolicy", "DEFAULT_ACTIONS", "DEFAULT_POLICY"]


class Action(str, enum.Enum):
    """What to do after an attempt failed with some error kind."""

    RETRY = "retry"
    """Try the same target again after a backoff, then move on when its retries are spent."""
    NEXT = "next"
    """Move to the next target."""
    STOP = "stop"
    """Give up: no other target would answer differently (a malformed request)."""

    def __str__(self) -> str:
        return self.value


DEFAULT_ACTIONS: Mapping[ErrorKind, Action] = {
    ErrorKind.RATE_LIMIT: Action.RETRY,
    ErrorKind.OVERLOADED: Action.RETRY,
    ErrorKind.SERVER: Action.RETRY,
    ErrorKind.TIMEOUT: Action.NEXT,
    ErrorKind.CONNECTION: Action.RETRY,
    ErrorKind.STREAM_INTERRUPTED: Action.RETRY,
    ErrorKind.INVALID_RESPONSE: Action.RETRY,
    ErrorKind.CONTEXT_LENGTH: Action.NEXT,
    # A refusal is the vendor's safety decision: routing around it can be a safety bypass, so it
    # ends the call with the vendor's reason unless a policy opts in (with_actions({"content_filter": "next"})).
    ErrorKind.CONTENT_FILTER: Action.STOP,
    ErrorKind.NOT_FOUND: Action.NEXT,
    # A bad key for one vendor says nothing about the next target's; routers skip targets that
    # share the failed endpoint and key (router/_credentials.py).
    ErrorKind.AUTH: Action.NEXT,
    ErrorKind.BAD_REQUEST: Action.STOP,
    ErrorKind.BUDGET_EXCEEDED: Action.NEXT,
    # The shared state (Redis) did not answer, so a shared budget could not be checked and nothing was
    # sent: the same call may go through once Redis is back (retry_after: the state's retry interval).
    ErrorKind.STATE_UNAVAILABLE: Action.RETRY,
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-kind actions, exponential backoff with full jitter, and the bounds of one call.

    * ``retries_per_target``: how many times one target is retried (0 = never).
    * ``max_attempts``: attempts sent in one call, over all targets.
    * ``deadline_s``: wall-clock budget of one call; no attempt starts after it,
      and no backoff sleeps past it.
    * ``backoff_base_s`` / ``backoff_cap_s``: sleep before retry *n* is uniform
      in ``[0, min(cap, base * 2**n)]`` (AWS "full jitter").
    * ``retry_after_cap_s``: a vendor's ``retry_after`` is honoured up to this;
      a longer requested wait moves on to the next target instead.
    """

    actions: Mapping[ErrorKind, Action] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    retries_per_target: int = 1
    max_attempts: int = 6
    deadline_s: float = 60.0
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 8.0
    retry_after_cap_s: float = 10.0

    def action_for(self, error: ProviderError) -> Action:
        """The configured action for ``error``'s kind, within what its :class:`RetryDecision` allows.

        RETRY becomes NEXT when the error says the same call cannot succeed
        again (``error.retry.retryable`` false) or asks for a longer wait than
        ``retry_after_cap_s``.
        """
        action = self.actions.get(error.kind, Action.NEXT)
        if action is Action.RETRY and not self.may_retry(error.retry):
            return Action.NEXT
        return action

    def may_retry(self, decision: RetryDecision) -> bool:
        """Whether a failure with this retry decision may be retried on the same target under this policy."""
        if not decision.retryable:
            return False
        return decision.retry_after is None or decision.retry_after <= self.retry_after_cap_s

    def backoff_s(self, retry: int, error: ProviderError, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based) of the same target.

        Full jitter, but never less than the wait the error asks for
        (``error.retry.retry_after``, capped at ``retry_after_cap_s``).
        """
        jitter = rng.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * (2**retry)))
        asked = error.retry.retry_after
        if asked is not None:
            return max(jitter, min(asked, self.retry_after_cap_s))
        return jitter

    def stops(self, error: ProviderError) -> bool:
        """Whether ``error`` ends the call under this policy (its action is ``stop``)."""
        return self.action_for(error) is Action.STOP

    def with_actions(self, overrides: Mapping[ErrorKind, Action] | Mapping[str, str]
                     | Mapping[ErrorKind | str, Action | str]) -> RetryPolicy:
        """A copy with some kinds' actions changed (``{"content_filter": "stop"}``)."""
        from dataclasses import replace

        merged = dict(self.actions)
        merged.update({ErrorKind(k): Action(v) for k, v in overrides.items()})
        return replace(self, actions=merged)


DEFAULT_POLICY = RetryPolicy()
"""The policy of a router given none (``policy=None``)."""
