"""The Prometheus text exposition format (version 0.0.4) of a monitor's counters, one replica's or the fleet's."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._target_counters import TargetCounters

__all__ = ["escape", "float_text", "render_counters"]

TOKEN_CATEGORIES: tuple[str, ...] = ("input", "cached_input", "cache_write", "output", "reasoning")
"""Token counters by category, in the order of ``TargetCounters.tokens``."""


def render_counters(counters: Sequence[TargetCounters], breaker_opens: dict[str, int],
                    latency_bounds: tuple[float, ...], ttft_bounds: tuple[float, ...]) -> str:
    """Every counter family of ``counters`` (sorted by target) and the breaker openings, as exposition text."""
    lines: list[str] = []
    family(lines, "evalkit_requests_total", "counter", "Requests sent to a target, by outcome.")
    for c in counters:
        if c.served or c.failed:
            lines.append(f'evalkit_requests_total{{{c.labels},outcome="success"}} {c.served}')
            lines.append(f'evalkit_requests_total{{{c.labels},outcome="error"}} {c.failed}')
    family(lines, "evalkit_attempts_total", "counter",
           "Attempts routed to a target, sent or skipped, by error kind (none = served).")
    for c in counters:
        for kind, n in sorted(c.attempts.items(), key=lambda kv: kv[0] or ""):
            lines.append(f'evalkit_attempts_total{{{c.labels},error_kind="{escape(kind or "none")}"}} {n}')
    family(lines, "evalkit_tokens_total", "counter", "Tokens reported by a target, by category.")
    for c in counters:
        if c.served or c.failed:
            for category, n in zip(TOKEN_CATEGORIES, list(c.tokens)):
                lines.append(f'evalkit_tokens_total{{{c.labels},category="{category}"}} {n}')
    family(lines, "evalkit_cost_usd_total", "counter", "Money spent on a target, in USD (priced attempts).")
    lines.extend(f"evalkit_cost_usd_total{{{c.labels}}} {decimal_text(c.cost)}" for c in counters if c.priced)
    family(lines, "evalkit_fallbacks_total", "counter", "Attempts served by a fallback target (depth > 0).")
    lines.extend(f"evalkit_fallbacks_total{{{c.labels}}} {c.fallbacks}"
                 for c in counters if c.served or c.failed)
    family(lines, "evalkit_circuit_breaker_opens_total", "counter", "Times a target's circuit opened.")
    lines.extend(f'evalkit_circuit_breaker_opens_total{{target="{escape(target)}"}} {n}'
                 for target, n in sorted(breaker_opens.items()))
    family(lines, "evalkit_attempt_latency_seconds", "histogram", "Latency of sent attempts.")
    for c in counters:
        histogram(lines, "evalkit_attempt_latency_seconds", c.labels, latency_bounds, list(c.latency_buckets),
                  c.latency_sum)
    family(lines, "evalkit_attempt_ttft_seconds", "histogram", "Time to first token of streamed attempts.")
    for c in counters:
        histogram(lines, "evalkit_attempt_ttft_seconds", c.labels, ttft_bounds, list(c.ttft_buckets),
                  c.ttft_sum)
    return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    """A label value escaped per the exposition format (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def decimal_text(value: Decimal) -> str:
    # Fixed-point text: exact, and never a bare exponent form a strict parser might reject.
    return format(value, "f")


def float_text(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


def family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def histogram(lines: list[str], name: str, labels: str, bounds: tuple[float, ...],
              per_bucket: list[int], total: float) -> None:
    count = sum(per_bucket)
    if not count:
        return
    cumulative = 0
    for bound, n in zip((*bounds, float("inf")), per_bucket):
        cumulative += n
        lines.append(f'{name}_bucket{{{labels},le="{float_text(bound)}"}} {cumulative}')
    lines.append(f"{name}_sum{{{labels}}} {float_text(total)}")
    lines.append(f"{name}_count{{{labels}}} {count}")
