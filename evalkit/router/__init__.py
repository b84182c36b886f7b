"""Routing policies. Every router is a provider, so policies nest.

``FallbackChain`` (ordered targets, one retry owner), ``WeightedBalancer``
(health-aware load balancing), ``TaskRouter`` (task type → route),
``CostAwareRouter`` with a ``BudgetLedger`` (cheapest adequate target within a
budget), ``HedgedRouter`` (tail latency), per-target ``Limits``, a ``Monitor``,
and ``Router.from_config`` to build a whole tree from YAML.
"""

from __future__ import annotations

from ._base import RoutedStream, Router
from ._retry import Action, RetryPolicy
from .fallback import FallbackChain

__all__ = ["Action", "FallbackChain", "RetryPolicy", "RoutedStream", "Router"]
