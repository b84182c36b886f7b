"""Cost of an attempt, in ``Decimal``, per usage category.

Prices come from the maintained ``genai-prices`` package (imported on first
use), unless the user overrides them. A model with no known price is
*unpriced*: its cost is ``None`` and one :class:`UnpricedModelWarning`, naming the
target and saying how to price it, is issued per target and model, never a silent 0.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from .types import Cost, Usage

__all__ = ["PriceTable", "Prices", "UnpricedModelWarning", "price_data_version"]

_MILLION = Decimal(1_000_000)


class UnpricedModelWarning(UserWarning):
    """A model has no known price; its attempts are recorded with cost ``None``."""


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per 1M tokens per usage category.

    ``cached_input`` and ``cache_write`` default to ``input``; ``reasoning``
    defaults to ``output`` (every vendor so far bills reasoning as output).
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    source: str = "override"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "override") -> Prices:
        """From ``{"input": 0.15, "output": 0.6, ...}`` (numbers or strings, per 1M tokens)."""
        fields = {k: Decimal(str(v)) for k, v in values.items() if v is not None}
        unknown = set(fields) - {"input", "output", "cached_input", "cache_write", "reasoning"}
        if unknown:
            raise ValueError(f"unknown price categories: {', '.join(sorted(unknown))}")
        return cls(source=source, **fields)

    def cost(self, usage: Usage) -> Cost:
        """The cost of ``usage`` at these prices."""
        cached = usage.cached_input_tokens
        written = usage.cache_write_tokens
        plain_in = max(usage.input_tokens - cached - written, 0)
        plain_out = max(usage.output_tokens - usage.reasoning_tokens, 0)
        per = lambda n, p: Decimal(n) * p / _MILLION  # noqa: E731
        return Cost(
            input=per(plain_in, self.input),
            cached_input=per(cached, self.input if self.cached_input is None else self.cached_input),
            cache_write=per(written, self.input if self.cache_write is None else self.cache_write),
            output=per(plain_out, self.output),
            reasoning=per(usage.reasoning_tokens, self.output if self.reasoning is None else self.reasoning),
            source=self.source,
        )


def price_data_version() -> str:
    """The version of the price data in use, recorded with every run."""
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


class PriceTable:
    """Looks up :class:`Prices` per (provider, model): user overrides first, then genai-prices."""

    def __init__(self, overrides: Mapping[str, Prices] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._cache: dict[tuple[str | None, str], Prices | None] = {}
        self._warned: set[tuple[str | None, str, str | None]] = set()
        self._lock = threading.Lock()

    def set(self, model: str, prices: Prices) -> None:
        """Override the prices of ``model`` (a bare model name or ``provider:model``)."""
        self._overrides[model] = prices
        self._cache.clear()

    def lookup(self, provider_id: str | None, model: str, tokens_in: int = 0) -> Prices | None:
        """Prices for ``model`` at ``provider_id`` (a genai-prices provider id), or ``None``."""
        key = (provider_id, model)
        for name in (f"{provider_id}:{model}", model):
            if name in self._overrides:
                return self._overrides[name]
        if key not in self._cache:
            self._cache[key] = _from_genai_prices(provider_id, model, tokens_in)
        return self._cache[key]

    def cost(self, provider_id: str | None, model: str, usage: Usage, *also: str,
             target: str | None = None) -> Cost | None:
        """Cost of ``usage``; ``None`` (and one warning per target and model) when unpriced.

        ``also`` lists other names to try, e.g. the requested alias when the
        vendor answered with a dated model id. ``target`` is what the user
        called it (``llamacpp:gemma-3-270m``), for the warning: a self-hosted
        server has no ``provider_id`` at all, and may answer with a file path.
        """
        for name in (model, *also):
            if name and (prices := self.lookup(provider_id, name, usage.input_tokens)) is not None:
                return prices.cost(usage)
        with self._lock:
            if (provider_id, model, target) not in self._warned:
                self._warned.add((provider_id, model, target))
                message = _unpriced_message(provider_id, model, target)
                warnings.warn(message, UnpricedModelWarning, stacklevel=3)
        return None


def _unpriced_message(provider_id: str | None, model: str, target: str | None = None) -> str:
    """What :class:`UnpricedModelWarning` says: which target is unpriced, and how to price it."""
    label = target or (f"{provider_id}:{model}" if provider_id else model)
    if target and target.partition(":")[2] != model:
        label += f" (served model {model!r})"
    return (f"no price known for {label}; its cost is recorded as unpriced (None). To price it, pass "
            "prices={'input': ..., 'output': ...} (USD per 1M tokens) to get_provider, or give its target "
            "prices: {input: ..., output: ...} in a routing config")


def _from_genai_prices(provider_id: str | None, model: str, tokens_in: int) -> Prices | None:
    try:
        from genai_prices import data_snapshot
    except ImportError:  # pragma: no cover - genai-prices is a dependency
        return None
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    price = info.prices
    if isinstance(price, list):  # conditional prices: the first unconditional one applies today
        price = next((p.prices for p in price if getattr(p, "constraint", None) is None), None)
        if price is None:
            return None
    get = lambda name: _tiered(getattr(price, name, None), tokens_in)  # noqa: E731
    if get("input_mtok") is None or get("output_mtok") is None:
        return None
    return Prices(
        input=get("input_mtok"),
        output=get("output_mtok"),
        cached_input=get("cache_read_mtok"),
        cache_write=get("cache_write_mtok"),
        source=price_data_version(),
    )


def _tiered(value: Any, tokens_in: int) -> Decimal | None:
    # genai-prices' tiers are cliffs: past a threshold the tier price applies to all tokens.
    if value is None or isinstance(value, Decimal):
        return value
    price = value.base
    for tier in value.tiers:
        if tokens_in >= tier.start:
            price = tier.price
    return price
