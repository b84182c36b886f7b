"""Routing policies. Every router is a provider, so policies nest.

``FallbackChain`` (ordered targets, one retry owner), ``WeightedBalancer``
(health-aware load balancing), ``TaskRouter`` (task type → route, with the
keyword rules or a ``LearnedClassifier``), ``PromptRouter`` (per prompt, the
cheapest target likely to pass, from a ``PromptModel``),
``CostAwareRouter`` with a ``BudgetLedger`` (cheapest adequate target within a
budget), ``HedgedRouter`` (tail latency), per-target ``Limits``, a ``Monitor``,
``RedisState`` to share budgets, breakers, rate limits and monitor counters
between replicas, and ``Router.from_config`` to build a whole tree from YAML.
"""

from __future__ import annotations

from ._base import RoutedStream, Router
from ._retry import Action, RetryPolicy
from ._task_features import ROLE_MARK, TURN_SEPARATOR, FeatureSpec, featurize, request_text
from .balance import WeightedBalancer
from .budget import BudgetLedger, Reservation
from .cost import QUALITY_TIERS, Candidate, CostAwareRouter, Quote
from .fallback import FallbackChain
from .health import BreakerSettings, CircuitBreaker
from .hedge import HedgedRouter
from .limits import LOCAL_LIMIT, LimitedTarget, Limits, LocalLimitError
from .monitor import Monitor, parse_window
from .state import RedisState
from .classifier import LearnedClassifier
from .prompt import PromptModel, PromptRouter
from .tasks import KeywordClassifier, TaskRouter

__all__ = [
    "Action",
    "BreakerSettings",
    "BudgetLedger",
    "Candidate",
    "CircuitBreaker",
    "CostAwareRouter",
    "FallbackChain",
    "FeatureSpec",
    "HedgedRouter",
    "KeywordClassifier",
    "LOCAL_LIMIT",
    "LocalLimitError",
    "LearnedClassifier",
    "LimitedTarget",
    "Limits",
    "Monitor",
    "PromptModel",
    "PromptRouter",
    "QUALITY_TIERS",
    "Quote",
    "ROLE_MARK",
    "RedisState",
    "Reservation",
    "RetryPolicy",
    "RoutedStream",
    "Router",
    "TURN_SEPARATOR",
    "TaskRouter",
    "WeightedBalancer",
    "featurize",
    "parse_window",
    "request_text",
]
