"""The running counters of one target: what Prometheus renders and what replicas add up in Redis.

Shared by :class:`~evalkit.router.monitor.Monitor` (which counts),
:mod:`evalkit.router._prometheus` (which renders) and
:mod:`evalkit.router._shared_monitor` (which sums replicas).
"""

from __future__ import annotations

from decimal import Decimal

from ._prometheus import escape

__all__ = ["TargetCounters", "split_target"]


def split_target(target: str) -> tuple[str, str]:
    """``("openai", "gpt-4o")`` for ``"openai:gpt-4o"``; ``(target, "")`` for a router's name.

    Router names such as ``fallback(openai:gpt-4o, …)`` or ``primary`` are not
    leaves: the text before the first ``":"`` must look like a provider name.
    """
    provider, sep, model = target.partition(":")
    if not sep or not provider or any(ch in provider for ch in "(), []"):
        return target, ""
    return provider, model


class TargetCounters:
    """Monotonic counters of one target, with its Prometheus labels rendered once."""

    __slots__ = ("attempts", "cost", "failed", "fallbacks", "labels", "latency_buckets", "latency_sum",
                 "model", "priced", "provider", "served", "target", "tokens", "ttft_buckets", "ttft_sum")

    def __init__(self, target: str, n_latency: int, n_ttft: int) -> None:
        self.target = target
        self.provider, self.model = split_target(target)
        self.labels = (f'target="{escape(target)}",provider="{escape(self.provider)}",'
                       f'model="{escape(self.model)}"')
        self.served = 0
        self.failed = 0
        self.attempts: dict[str | None, int] = {}
        self.tokens = [0, 0, 0, 0, 0]
        self.cost = Decimal(0)
        self.priced = 0
        self.fallbacks = 0
        # Per-bucket (not cumulative) counts; the last slot is +Inf. Cumulated when rendered.
        self.latency_buckets = [0] * (n_latency + 1)
        self.latency_sum = 0.0
        self.ttft_buckets = [0] * (n_ttft + 1)
        self.ttft_sum = 0.0
