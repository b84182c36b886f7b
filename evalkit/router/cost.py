"""CostAwareRouter: the cheapest candidate good enough for the request, within a budget.

Each candidate has a quality (0–1, or a tier name from :data:`QUALITY_TIERS`)
and prices. Per request the router keeps the candidates at or above the
required quality, orders them by their *worst-case* cost for this request, and
sends to the cheapest one that its :class:`~evalkit.router.budget.BudgetLedger`
can cover. The worst case is what the ledger reserves before the call: the
prompt padded by :attr:`CostAwareRouter.input_margin_percent` and
:attr:`CostAwareRouter.input_pad_tokens`, and every output token the vendor can
bill (thinking included; ``max_tokens`` is set to ``default_max_tokens`` on a
request that has none, so the worst case really is bounded), times the
requests one call can send; after the call the reservation settles to what
those requests may be billed (:mod:`evalkit.router._worst_case`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Unpack

from ..errors import (
    AllTargetsFailed,
    BudgetExceeded,
    ConfigError,
    NotFoundError,
    ProviderError,
    StateUnavailableError,
)
from ..pricing import Prices
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, RouterOptions, Target, as_target
from ._call import RoutedCall
from ._retry import DEFAULT_POLICY, RetryPolicy
from ._worst_case import PricedTarget, PromptTokens, Quote, settle
from .budget import BudgetLedger

__all__ = ["QUALITY_TIERS", "Candidate", "CostAwareRouter", "Quote"]

QUALITY_TIERS: Mapping[str, float] = {"basic": 0.25, "standard": 0.5, "premium": 0.75, "frontier": 1.0}
"""Tier names accepted wherever a quality is: a candidate's, a router's or ``metadata["min_quality"]``."""

_MILLION = Decimal(1_000_000)
_BUDGET_DETAILS = ("cap", "spent", "reserved", "requested", "period", "scope", "target")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A target the router may choose, how good it is, and (optionally) what it costs.

    ``quality`` is a number in [0, 1] or a tier name (:data:`QUALITY_TIERS`).
    ``prices`` (a :class:`~evalkit.Prices` or ``{"input": .., "output": ..}`` per
    1M tokens) overrides the target's own ``prices()``; it is required for a
    target that has none (a nested router, an unpriced model).
    """

    target: Target | str
    quality: float | str
    prices: Prices | Mapping[str, Any] | None = None


def parse_quality(value: Any, field: str = "quality") -> float:
    """A quality in [0, 1] from a number, a numeric string or a tier name."""
    if isinstance(value, str) and value in QUALITY_TIERS:
        return QUALITY_TIERS[value]
    try:
        quality = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        quality = float("nan")
    if not 0.0 <= quality <= 1.0:
        tiers = ", ".join(QUALITY_TIERS)
        raise ConfigError(f"must be a number in [0, 1] or one of {tiers}; got {value!r}", field=field)
    return quality


class _Entry(PricedTarget):
    """A resolved candidate: its priced target, its quality and its place in the given order."""

    __slots__ = ("index", "quality")

    def __init__(self, target: Target, quality: float, index: int, prices: Prices, explicit: bool) -> None:
        super().__init__(target, prices, explicit)
        self.quality, self.index = quality, index


_Quoted = tuple[_Entry, Decimal, int, int, Decimal, int]
"""One candidate's plan for one request: (candidate, what the ledger reserves (one request's worst case
times the fan-out), prompt tokens padded, prompt tokens counted, one request's worst case, billable
output tokens of one request). A plain tuple: it is built per candidate per call."""


class CostAwareRouter(Router):
    """Send each request to the cheapest candidate of adequate quality that the budget covers.

    * Required quality: ``request.metadata["min_quality"]`` if set, else
      ``min_quality``. Candidates below it are not used, unless
      ``allow_downgrade=True``: then, once every adequate candidate was over
      budget or failed, they are tried best quality first.
    * Order: cheapest worst-case cost for this request first; ties go to the
      higher quality, then to the order given.
    * Budget: with a ``ledger``, each call first reserves its worst-case cost
      (see :mod:`evalkit.router._worst_case`) and settles to what its requests may be
      billed after (unpriced answers keep the reserved amount). An
      over-budget candidate is never sent. With
      ``on_over_budget="reroute"`` the router moves on to the next candidate
      that fits (another may fit a per-target cap); with ``"refuse"`` it raises
      :class:`~evalkit.errors.BudgetExceeded` at once. When nothing was sent
      because of the budget, ``BudgetExceeded`` (not ``AllTargetsFailed``) is
      raised, with ``.attempts`` listing each refusal. A ledger shared through
      Redis that cannot be reached raises
      :class:`~evalkit.errors.StateUnavailableError` at once (every candidate
      shares the ledger), nothing sent, recorded as a ``state_unavailable`` attempt.
    * Errors: a failed call that billed nothing releases its reservation; one
      that did (a stream cut after some text) settles what its error carries,
      marked as an estimate; with
      ``fallback_on_error`` the next candidate is tried (one attempt each:
      retries are a :class:`~evalkit.router.FallbackChain`'s job), unless
      ``policy`` (a :class:`~evalkit.router.RetryPolicy`, default: a
      ``FallbackChain``'s default actions) says the error's kind is ``stop``
      (by default a malformed request or a content-filter refusal). A call
      cancelled or broken by a non-provider exception keeps its reservation as
      spent, since the vendor may bill it.
    * Candidates whose context window cannot hold the prompt plus
      ``max_tokens`` are skipped without a call.

    Thread-safe: the router holds no per-call state; the ledger has its own lock.
    """

    kind = "cost"
    input_margin_percent = 10
    """Added to the local prompt-token estimate: non-OpenAI counts are approximations."""
    input_pad_tokens = 16
    """Added on top of the margin: framing tokens the local count does not know about."""

    def __init__(self, candidates: Iterable[Candidate | tuple[Any, ...]], *, ledger: BudgetLedger | None = None,
                 min_quality: float | str = 0.0, on_over_budget: Literal["reroute", "refuse"] = "reroute",
                 allow_downgrade: bool = False, default_max_tokens: int = 1024, fallback_on_error: bool = True,
                 policy: RetryPolicy | None = None, **router_options: Unpack[RouterOptions]) -> None:
        self._entries = tuple(_resolve(c, i) for i, c in enumerate(candidates))
        super().__init__([e.target for e in self._entries], **router_options)
        if on_over_budget not in ("reroute", "refuse"):
            raise ConfigError(f"must be 'reroute' or 'refuse', got {on_over_budget!r}", field="on_over_budget")
        if default_max_tokens < 1:
            raise ConfigError(f"must be at least 1, got {default_max_tokens!r}", field="default_max_tokens")
        self.ledger = ledger
        self.min_quality = parse_quality(min_quality, "min_quality")
        self.on_over_budget = on_over_budget
        self.allow_downgrade = allow_downgrade
        self.default_max_tokens = default_max_tokens
        self.fallback_on_error = fallback_on_error
        self.policy = policy or DEFAULT_POLICY

    async def complete(self, request: ChatRequest, on_delta: Callable[[Any], None] | None = None) -> ChatResponse:
        """Route ``request``; the response lists every attempt, refusals and the serving one included."""
        try:
            return await super().complete(request, on_delta)
        except (BudgetExceeded, StateUnavailableError) as exc:
            # The base class reports AllTargetsFailed to the monitor; a refusal must show up too.
            if self.monitor is not None:
                self.monitor.record(list(getattr(exc, "attempts", ())), request)
            raise

    def quote(self, request: ChatRequest) -> list[Quote]:
        """The candidates ``request`` would be tried on, in order, with the worst case each would reserve."""
        request, max_tokens = self._bounded(request)
        plan = self._plan(request, self._required_quality(request))
        return [Quote(entry.name, entry.quality, padded, max_tokens, worst, output_tokens,
                      entry.fan_out) for entry, worst, padded, _, _, output_tokens in plan]

    # -- routing -----------------------------------------------------------------------------

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        request, max_tokens = self._bounded(request)
        required = self._required_quality(request)
        plan = self._plan(request, required)
        if not plan:
            raise self._nothing_adequate(required, attempts)
        errors: list[ProviderError] = []
        refusals: list[BudgetExceeded] = []
        for entry, worst, _, counted, per_request, _ in plan:
            if not self._fits_window(entry, counted + max_tokens, attempts):
                continue
            try:
                reservation = None if self.ledger is None else await self.ledger.areserve(entry.name, worst)
            except StateUnavailableError as exc:
                self._skip(entry.target, "state_unavailable", attempts, exc.message)
                raise self._state_down(exc, attempts) from None
            except BudgetExceeded as exc:
                self._skip(entry.target, "budget_exceeded", attempts, exc.message)
                refusals.append(exc)
                errors.append(exc)
                if self.on_over_budget == "refuse":
                    raise self._over_budget(refusals, attempts) from None
                continue
            first = len(attempts)
            try:
                response = await self._attempt(entry.target, request, attempts, call)
            except ProviderError as exc:
                if reservation is not None:
                    settle(reservation, attempts[first:], per_request)  # billed only if it generated
                errors.append(exc)
                if not self.fallback_on_error or self._stream_lost(call) or self.policy.stops(exc):
                    raise self._exhausted(errors, attempts) from None
                continue
            except BaseException:
                if reservation is not None:
                    reservation.settle(None)  # cancelled mid-call: it may be billed, keep the worst case
                raise
            if reservation is not None:
                settle(reservation, attempts[first:], per_request)
            return response
        if refusals and len(refusals) == len(errors):
            raise self._over_budget(refusals, attempts)
        raise self._exhausted(errors, attempts)

    def _bounded(self, request: ChatRequest) -> tuple[ChatRequest, int]:
        """``request`` with a ``max_tokens`` (``default_max_tokens`` when it has none), and that bound."""
        # Without max_tokens the output, and so the worst case, would be unbounded.
        if request.max_tokens is None:
            return request.replace(max_tokens=self.default_max_tokens), self.default_max_tokens
        return request, request.max_tokens

    def _required_quality(self, request: ChatRequest) -> float:
        value = request.metadata.get("min_quality")
        return self.min_quality if value is None else parse_quality(value, "metadata.min_quality")

    def _plan(self, request: ChatRequest, required: float) -> list[_Quoted]:
        """Each candidate's worst case for ``request``, in the order to try them."""
        prompt = PromptTokens(request)
        adequate = [self._quoted(e, prompt, request) for e in self._entries if e.quality >= required]
        adequate.sort(key=lambda q: (q[1], -q[0].quality, q[0].index))
        if self.allow_downgrade:
            below = [self._quoted(e, prompt, request) for e in self._entries if e.quality < required]
            below.sort(key=lambda q: (-q[0].quality, q[1], q[0].index))
            adequate.extend(below)
        return adequate

    def _quoted(self, entry: _Entry, prompt: PromptTokens, request: ChatRequest) -> _Quoted:
        counted = prompt.count(entry)
        padded = counted + -(-counted * self.input_margin_percent // 100) + self.input_pad_tokens
        _, input_rate, output_rate = entry.rates()
        output_tokens = entry.bound.tokens(request)
        per_request = (padded * input_rate + output_tokens * output_rate) / _MILLION
        worst = per_request if entry.fan_out == 1 else per_request * entry.fan_out
        return entry, worst, padded, counted, per_request, output_tokens

    def _fits_window(self, entry: _Entry, needed: int, attempts: list[Attempt]) -> bool:
        # The unpadded count decides, as in FallbackChain: the margin is for money, not for windows.
        window = getattr(entry.target, "context_window", None)
        if window is None or needed <= window:
            return True
        self._skip(entry.target, "context_window", attempts, f"needs ~{needed} tokens, window is {window}")
        return False

    # -- errors ------------------------------------------------------------------------------

    def _over_budget(self, refusals: list[BudgetExceeded], attempts: list[Attempt]) -> BudgetExceeded:
        first = refusals[0]
        how = "refused" if self.on_over_budget == "refuse" else "no candidate fits the budget"
        others = [r.provider or "?" for r in refusals[1:]]
        also = f"; also over budget: {', '.join(others)}" if others else ""
        exc = BudgetExceeded(f"{self.name}: {how}: {first.message}{also}", provider=self.name)
        for detail in _BUDGET_DETAILS:
            setattr(exc, detail, getattr(first, detail, None))
        exc.attempts = tuple(attempts)
        exc.errors = tuple(refusals)
        return exc

    def _state_down(self, error: StateUnavailableError, attempts: list[Attempt]) -> StateUnavailableError:
        # Not AllTargetsFailed: the other candidates share the ledger, and an outer router may retry later.
        exc = StateUnavailableError(f"{self.name}: budget not checked, nothing sent: {error.message}",
                                    provider=self.name, retry_after=error.retry_after)
        exc.attempts = tuple(attempts)
        exc.errors = (error,)
        return exc

    def _nothing_adequate(self, required: float, attempts: list[Attempt]) -> AllTargetsFailed:
        best = max(e.quality for e in self._entries)
        for entry in self._entries:
            self._skip(entry.target, "below_quality", attempts, f"quality {entry.quality:g} < {required:g}")
        # not_found, not bad_request: an outer router may still have a target good enough.
        message = f"{self.name}: no candidate reaches quality {required:g} (best is {best:g})"
        error = NotFoundError(message, provider=self.name)
        return AllTargetsFailed(message, attempts=tuple(attempts), errors=(error,))


def _resolve(candidate: Candidate | tuple[Any, ...], index: int) -> _Entry:
    """A candidate's target, quality and prices, or a ConfigError naming what is missing."""
    where = f"candidates[{index}]"
    if isinstance(candidate, tuple):
        if not 2 <= len(candidate) <= 3:
            raise ConfigError(f"must be Candidate(target, quality[, prices]), got {candidate!r}", field=where)
        candidate = Candidate(*candidate)
    elif not isinstance(candidate, Candidate):
        raise ConfigError(f"must be a Candidate or a (target, quality[, prices]) tuple, got {candidate!r}",
                          field=where)
    target = as_target(candidate.target)
    quality = parse_quality(candidate.quality, f"{where}.quality")
    prices = candidate.prices
    if isinstance(prices, Mapping):
        try:
            prices = Prices.from_mapping(prices)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ConfigError(str(exc), field=f"{where}.prices") from None
    explicit = prices is not None
    if prices is None:
        lookup = getattr(target, "prices", None)
        prices = lookup() if callable(lookup) else None
    if prices is None:
        raise ConfigError(f"{target.name} has no known price; give it prices={{'input': .., 'output': ..}} "
                          "(USD per 1M tokens)", field=f"{where}.prices")
    return _Entry(target, quality, index, prices, explicit)
