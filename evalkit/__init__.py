"""evalkit: benchmark LLM providers, turn the evidence into routing tables, and run them.

The public surface is what ``__all__`` lists; everything else is private.
Heavy parts (httpx adapters, pricing data, tokenizers, DataFrames) load on first
use, so ``import evalkit`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AllTargetsFailed,
    AuthError,
    BudgetExceeded,
    BadRequestError,
    ConfigError,
    ContentFilterError,
    ContextLengthError,
    ErrorKind,
    EvalkitError,
    InvalidResponseError,
    NotFoundError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    RetryDecision,
    ServerError,
    StateUnavailableError,
    StreamInterruptedError,
)
from ._deprecated import deprecated_alias as _deprecated_alias
from .types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    Cost,
    Deadlines,
    FinishReason,
    Message,
    StreamRestart,
    ToolCall,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from ._secret import Secret
    from .pricing import Prices, PriceTable, UnpricedModelWarning
    from .providers import HTTPProvider, Provider, get_provider
    from .router import (
        BudgetLedger,
        CostAwareRouter,
        FallbackChain,
        HedgedRouter,
        Monitor,
        RedisState,
        Router,
        TaskRouter,
        WeightedBalancer,
    )
    from .runner import attempts_df, results_df
    from .tokens import TokenCount, count_tokens

__all__ = [
    "AllTargetsFailed",
    "Attempt",
    "AuthError",
    "BadRequestError",
    "BudgetExceeded",
    "BudgetLedger",
    "ChatRequest",
    "ChatResponse",
    "ConfigError",
    "ContentFilterError",
    "ContextLengthError",
    "Cost",
    "CostAwareRouter",
    "Deadlines",
    "ErrorKind",
    "EvalkitError",
    "FallbackChain",
    "FinishReason",
    "HTTPProvider",
    "HedgedRouter",
    "InvalidResponseError",
    "Message",
    "Monitor",
    "NotFoundError",
    "OverloadedError",
    "PriceTable",
    "Prices",
    "Provider",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RedisState",
    "RetryDecision",
    "Router",
    "Secret",
    "ServerError",
    "StateUnavailableError",
    "StreamInterruptedError",
    "StreamRestart",
    "TaskRouter",
    "TokenCount",
    "ToolCall",
    "ToolSpec",
    "UnpricedModelWarning",
    "Usage",
    "WeightedBalancer",
    "__version__",
    "attempts_df",
    "count_tokens",
    "get_provider",
    "results_df",
]

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "get_provider": ".providers",
    "HTTPProvider": ".providers",
    "Provider": ".providers",
    "Prices": ".pricing",
    "PriceTable": ".pricing",
    "UnpricedModelWarning": ".pricing",
    "count_tokens": ".tokens",
    "TokenCount": ".tokens",
    "Secret": "._secret",
    "results_df": ".runner.results",
    "attempts_df": ".runner.results",
    **{name: ".router" for name in ("BudgetLedger", "CostAwareRouter", "FallbackChain", "HedgedRouter",
                                    "Monitor", "RedisState", "Router", "TaskRouter", "WeightedBalancer")},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None and (old := _deprecated_alias(name)) is not None:
        return old  # not cached, so every use of an old name warns
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
