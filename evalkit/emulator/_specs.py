"""The shapes of a fleet: :class:`Fleet`, :class:`ModelSpec` and their parts.

Everything here is a frozen value; :mod:`evalkit.emulator.fleet` builds them
from files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from ..pricing import Prices
from .faults import FaultStep

__all__ = [
    "TASK_TYPES",
    "WIRES",
    "FaultPlan",
    "Fleet",
    "Latency",
    "ModelSpec",
    "Price",
    "RateLimits",
    "Spread",
    "Thinking",
]

WIRES: tuple[str, ...] = ("openai", "anthropic", "gemini")
TASK_TYPES: tuple[str, ...] = ("code", "math", "factual_qa", "classification", "long_document", "creative")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Spread:
    """A positive quantity with seeded log-normal noise: ``median * exp(N(0, spread))``."""

    median: float
    spread: float = 0.0

    def draw(self, rng: random.Random) -> float:
        """One value; exactly ``median`` when ``spread`` is 0."""
        if self.spread <= 0:
            return self.median
        return self.median * math.exp(rng.gauss(0.0, self.spread))


@dataclass(frozen=True, slots=True)
class Price:
    """List prices in USD per 1M tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
        """USD for one call; ``cached_input_tokens`` is the cached part of ``input_tokens``."""
        plain = max(input_tokens - cached_input_tokens, 0)
        total = plain * self.input + cached_input_tokens * self.cached_input + output_tokens * self.output
        return total / _MILLION

    def as_prices(self, source: str = "evalkit-emulator fleet") -> Prices:
        """The same prices as an :class:`evalkit.pricing.Prices`, for the runner's cost code."""
        return Prices(input=self.input, output=self.output, cached_input=self.cached_input, source=source)


@dataclass(frozen=True, slots=True)
class Latency:
    """Time to first token, decode speed and (optionally) prompt-processing speed."""

    ttft_ms: Spread
    tokens_per_s: Spread
    prefill_tokens_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A model's per-minute budgets, in the emulator's minutes (``60 * time_scale`` real seconds).

    They always feed the rate-limit headers; with ``enforce`` a call the budget has no room for
    gets the vendor's 429 (``_rate_limits.RateBuckets``). Tokens are metered as the prompt plus
    the request's output cap (``max_tokens``, else the model's ``max_output_tokens``).
    """

    requests_per_minute: int = 10_000
    tokens_per_minute: int = 2_000_000
    enforce: bool = False


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Per-model fault injection: rates per kind, the parameters a step leaves unset, and a script.

    ``ttft_s`` is how long ``slow_first_token`` holds the first token;
    ``after_tokens`` where ``stall``/``cut``/``malformed`` strike in a stream
    (None: their default places, see ``_plans.stream_plan``).
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    retry_after_s: float = 1.0
    stall_s: float = 30.0
    script: tuple[FaultStep, ...] = ()
    ttft_s: float = 30.0
    after_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Thinking:
    """How far a request's thinking budget lets a model reason (Gemini's ``thinkingConfig.thinkingBudget``).

    ``default_budget`` applies when the request sets none: ``-1`` is dynamic
    thinking (the model decides, up to ``max_budget``), ``0`` is off. Gemini
    accepts a budget of 0 only where ``can_disable`` and positive budgets in
    ``[min_budget, max_budget]`` (:meth:`refusal`). The defaults are Gemini 2.5
    Flash's documented ones (dynamic by default, 0 or 1-24,576). The other
    wires bound their reasoning by the same ``max_budget``: Anthropic's
    ``budget_tokens`` (0 when thinking is not enabled) and OpenAI's dynamic
    reasoning. How much a model *wants* to think is its ``reasoning_tokens``
    spread; the budget only bounds it.
    """

    default_budget: int = -1
    max_budget: int = 24_576
    min_budget: int = 1
    can_disable: bool = True

    # Not shared with evalkit.providers._billing.ThinkingCaps.budget, which looks alike: this is what the
    # vendor does, that is what evalkit reserves before the vendor answers, and the end-to-end budget tests
    # (tests/router/test_budget_billing.py) prove nothing if both sides are one piece of code; nor should
    # the emulator import the providers package (~120 ms of httpx). They differ at 0 on purpose: the
    # vendor refuses it where thinking cannot be turned off (refusal), so here 0 is always off.
    def bound(self, requested: int | None) -> int:
        """The most thinking tokens for a request asking ``requested`` (None: unset, -1: dynamic, 0: off)."""
        value = self.default_budget if requested is None else requested
        if value < 0:
            return self.max_budget
        if value == 0:
            return 0
        return min(max(value, self.min_budget), self.max_budget)

    def refusal(self, requested: int) -> str | None:
        """Why the vendor refuses a request's budget of ``requested`` tokens, or None when it accepts it."""
        if requested == 0 and not self.can_disable:
            return "Budget 0 is invalid. This model only works in thinking mode."
        if requested > 0 and not self.min_budget <= requested <= self.max_budget:
            return (f"The thinking budget {requested} is invalid. Please choose a value between "
                    f"{self.min_budget} and {self.max_budget}.")
        return None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One simulated model."""

    name: str
    wires: tuple[str, ...]
    price: Price
    context_window: int
    max_output_tokens: int
    latency: Latency
    output_tokens: Spread
    skills: Mapping[str, float]
    reasoning_tokens: Spread = Spread(0.0)
    thinking: Thinking = Thinking()
    rate_limits: RateLimits = RateLimits()
    faults: FaultPlan = FaultPlan()
    prefill: str = "accept"
    """``accept``: a trailing assistant turn is continued; ``reject``: the vendor's 400 (``_prefill``)."""

    def skill(self, task_type: str | None) -> float:
        """Probability of a correct answer for ``task_type`` (the ``default`` skill if unlisted)."""
        if task_type is not None and task_type in self.skills:
            return self.skills[task_type]
        return self.skills["default"]

    @property
    def thinks(self) -> bool:
        """Whether the model reasons before it answers (its ``reasoning_tokens`` median is above 0)."""
        return self.reasoning_tokens.median > 0

    def serves(self, wire: str) -> bool:
        """Whether the model is served on ``wire`` (``openai``, ``anthropic`` or ``gemini``)."""
        return wire in self.wires


@dataclass(frozen=True)
class Fleet:
    """The models of one fleet file, in file order; ``source`` is the file (None: built in)."""

    models: tuple[ModelSpec, ...]
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {m.name: m for m in self.models})

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; ``KeyError`` naming the fleet's models otherwise."""
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"no model {name!r} in the fleet (models: {', '.join(self.names())})") from None

    def get(self, name: str) -> ModelSpec | None:
        """The model called ``name``, or None."""
        return self._by_name.get(name)  # type: ignore[attr-defined]

    def names(self) -> list[str]:
        """Model names in file order."""
        return [m.name for m in self.models]

    def serving(self, wire: str) -> list[ModelSpec]:
        """The models served on ``wire``."""
        return [m for m in self.models if m.serves(wire)]

    def prices(self) -> dict[str, Price]:
        """Price of every model, by name."""
        return {m.name: m.price for m in self.models}

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]
