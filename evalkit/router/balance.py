"""WeightedBalancer: spread load over healthy targets; bounded attempts, no recursion."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Callable, Iterable, Literal, Sequence, Unpack

from ..errors import ErrorKind, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, RouterOptions, Target
from ._call import RoutedCall
from ._credentials import SAME_CREDENTIALS, FailedCredentials
from ._retry import DEFAULT_POLICY, RetryPolicy
from ._shared_breaker import BreakerOpened, breaker_opened_hook, make_breaker
from .health import BreakerSettings, TargetHealth

if TYPE_CHECKING:
    from .state import RedisState

__all__ = ["WeightedBalancer"]

Strategy = Literal["weighted", "least_inflight", "latency"]
STRATEGIES: tuple[Strategy, ...] = ("weighted", "least_inflight", "latency")


class WeightedBalancer(Router):
    """Choose among healthy targets per call; on failure try another, at most ``max_attempts`` in all.

    Strategies:

    * ``weighted``: random, proportional to ``weights``;
    * ``least_inflight``: fewest calls in flight (ties broken by weight);
    * ``latency``: proportional to ``weight / EWMA latency``; a target with
      fewer than ``cold_samples`` observations is tried first (cold start),
      and a zero or missing average never divides anything.

    Health is a :class:`~evalkit.router.health.CircuitBreaker` per target. The
    balancer never retries the same target within one call (that is the
    fallback chain's job) and never recurses: a call ends when every healthy
    target was tried once, or ``max_attempts`` were sent. After an ``auth``
    error, targets with the same endpoint and key are skipped for the call
    (``same_credentials``). A call cancelled while it holds the half-open
    probe (``asyncio.wait_for``, an outer deadline) gives the probe back.
    ``policy`` (a :class:`~evalkit.router.RetryPolicy`, default: the same
    defaults as a ``FallbackChain``'s) decides which errors end the call: an
    error whose action is ``stop`` ends it (by default a malformed request or
    a content-filter refusal), any other moves on to another target (the
    balancer never retries one; ``retries_per_target``, the backoff and the
    deadline are a chain's).
    ``on_breaker_open`` is called with a target's name when its breaker
    opens (default: this router's ``monitor``, if any); ``Router.from_config``
    points every node's at the config's one monitor.
    With ``state`` (a :class:`~evalkit.router.state.RedisState`) the breakers
    are shared per target name by every replica using it (one probe across
    them all); in-flight counts and latencies stay per replica.
    """

    kind = "balance"

    def __init__(self, targets: Iterable[Target | str], *, weights: Sequence[float] | None = None,
                 strategy: Strategy = "weighted", max_attempts: int | None = None,
                 breaker: BreakerSettings | None = None, cold_samples: int = 3, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic, state: RedisState | None = None,
                 policy: RetryPolicy | None = None, on_breaker_open: BreakerOpened | None = None,
                 **router_options: Unpack[RouterOptions]) -> None:
        super().__init__(targets, **router_options)
        n = len(self.targets)
        self.weights = tuple(float(w) for w in (weights or [1.0] * n))
        if len(self.weights) != n or any(w < 0 for w in self.weights) or not any(self.weights):
            raise ValueError("weights: one non-negative weight per target, not all zero")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        self.strategy = strategy
        self.max_attempts = max_attempts or n
        self.cold_samples = cold_samples
        self.state = state
        self.policy = policy or DEFAULT_POLICY
        self._rng = random.Random(seed)
        self.health = tuple(
            TargetHealth(make_breaker(t.name, breaker, clock=clock, state=state,
                                      on_open=breaker_opened_hook(self, t.name, on_breaker_open)))
            for t in self.targets
        )

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        tried: set[int] = set()
        errors: list[ProviderError] = []
        for _ in range(self.max_attempts):
            candidates = [i for i in range(len(self.targets))
                          if i not in tried and self.weights[i] > 0 and self.health[i].breaker.available()]
            if not candidates:
                break
            index = self._choose(candidates)
            tried.add(index)
            health, target = self.health[index], self.targets[index]
            permit = health.breaker.acquire()
            if permit is None:  # a shared breaker's answer needs Redis (the half-open probe)
                permit = await health.breaker.acquire_async()
            if not permit:
                continue  # another call (or replica) holds the half-open probe
            probe = health.breaker.state == "half_open"  # this call holds it
            health.in_flight += 1
            try:
                response = await self._attempt(target, request, attempts, call)
            except ProviderError as exc:
                health.breaker.record_failure(exc)
                errors.append(exc)
                if self._stream_lost(call) or self.policy.stops(exc):
                    raise self._exhausted(errors, attempts) from None
                if exc.kind is ErrorKind.AUTH:
                    self._skip_same_credentials(target, tried, attempts)
                continue
            except BaseException:
                # Cancelled (or a bug): no verdict on the target, but a held half-open probe must be
                # given back, or the breaker would wait for its result forever.
                if probe:
                    health.breaker.release()
                raise
            finally:
                health.in_flight -= 1
            health.breaker.record_success()
            health.observe_latency(response.latency_ms)
            return response
        for i, target in enumerate(self.targets):
            if i not in tried and self.weights[i] > 0:
                self._skip(target, "circuit_open", attempts)
        raise self._exhausted(errors, attempts)

    def _skip_same_credentials(self, failed: Target, tried: set[int], attempts: list[Attempt]) -> None:
        """Skip, for this call, every untried target with the credential that ``failed`` failed auth with."""
        bad_keys = FailedCredentials()
        bad_keys.add(failed)
        for i, target in enumerate(self.targets):
            if i not in tried and self.weights[i] > 0 and (why := bad_keys.why_skip(target)) is not None:
                tried.add(i)
                self._skip(target, SAME_CREDENTIALS, attempts, why)

    def _choose(self, candidates: list[int]) -> int:
        if len(candidates) == 1:
            return candidates[0]
        if self.strategy == "least_inflight":
            fewest = min(self.health[i].in_flight for i in candidates)
            candidates = [i for i in candidates if self.health[i].in_flight == fewest]
            return self._weighted(candidates, [self.weights[i] for i in candidates])
        if self.strategy == "latency":
            cold = [i for i in candidates if self.health[i].samples < self.cold_samples]
            if cold:
                return self._weighted(cold, [self.weights[i] for i in cold])
            return self._weighted(candidates, [self.weights[i] / max(self.health[i].ewma_ms, 1e-3)
                                               for i in candidates])
        return self._weighted(candidates, [self.weights[i] for i in candidates])

    def _weighted(self, items: list[int], weights: list[float]) -> int:
        point = self._rng.random() * sum(weights)
        for item, weight in zip(items, weights):
            point -= weight
            if point < 0:
                return item
        return items[-1]
