"""Providers: ``get_provider("provider:model")``, the vendor catalogue and the provider interface.

A provider is anything with a ``name``, ``await complete(request, on_delta=None)
-> ChatResponse`` (a streamed request passes each text delta to ``on_delta`` as
it arrives) and ``stream(request)`` (an async iterator of text deltas whose
``.response`` is the whole answer once exhausted). :class:`Provider` states that
contract; routers implement it too, so they nest. :class:`Closeable`,
:class:`Priced`, :class:`Windowed` and :class:`Prefillable` are the optional
capabilities routers use when a target has them.
"""

from __future__ import annotations

import os
from typing import Any

from .._secret import Secret
from ..errors import ConfigError
from ..pricing import PriceTable, Prices
from ._billing import OutputBound, max_billed_output_tokens, output_bound
from ._headers import RequestBudget, parse_duration, remaining_fraction, request_budget, retry_after_seconds
from ._http import TIMING_EXTENSION, ChatStream, HTTPProvider
from ._prefill import accepts_prefill
from ._protocols import Closeable, OnDelta, Prefillable, Priced, Provider, ResponseStream, Windowed
from ._wire import Wire
from .vendors import OPTIONAL_KEY_ENV, VENDORS, Vendor

__all__ = ["ChatStream", "Closeable", "HTTPProvider", "OnDelta", "OutputBound", "Prefillable", "Priced",
           "Provider", "RequestBudget", "ResponseStream", "TIMING_EXTENSION", "VENDORS", "Vendor", "Windowed",
           "get_provider", "max_billed_output_tokens", "output_bound", "parse_duration", "parse_target",
           "remaining_fraction", "request_budget", "retry_after_seconds"]


def parse_target(target: str) -> tuple[Vendor, str]:
    """Split ``provider:model`` and look the provider up; a bad target is a :class:`ConfigError`."""
    vendor_name, sep, model = target.partition(":")
    if not sep or not model:
        raise ConfigError(f"target {target!r} is not of the form provider:model", field="target")
    vendor = VENDORS.get(vendor_name.lower())
    if vendor is None:
        known = ", ".join(sorted(VENDORS))
        raise ConfigError(f"unknown provider {vendor_name!r} in {target!r}; known: {known}", field="target")
    return vendor, model


def get_provider(
    target: str,
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    **options: Any,
) -> HTTPProvider:
    """A provider for ``provider:model`` (e.g. ``openai:gpt-4o-mini``, ``azure:my-deployment``).

    The key comes from the vendor's usual environment variable when not passed.
    Options: ``timeout`` (seconds or ``httpx.Timeout``), ``client`` (a shared
    ``httpx.AsyncClient``), ``transport`` (an ``httpx.AsyncBaseTransport``),
    ``headers``, ``prices`` (a :class:`~evalkit.pricing.Prices` or a mapping of
    USD per 1M tokens per category, overriding genai-prices), ``price_table``,
    ``context_window``, ``api_version`` (Azure), ``api="responses"`` (OpenAI
    Responses API instead of Chat Completions), ``stream_format="json-array"``
    (Gemini's streamed JSON array instead of ``alt=sse``), ``deadlines`` (an
    :class:`~evalkit.types.Deadlines` for every call), ``prefill`` (whether the
    model continues a trailing assistant turn; default: the vendor's
    capability data in ``providers/_prefill.py``).
    """
    vendor, model = parse_target(target)
    api = options.pop("api", "chat")
    stream_format = options.pop("stream_format", "sse")
    if api_version := options.pop("api_version", None) or (
        os.environ.get("OPENAI_API_VERSION") if vendor.name == "azure" else None
    ):
        vendor = vendor.with_options(api_version=api_version)
    key = _resolve_key(vendor, api_key)
    url = base_url or next((os.environ[e] for e in vendor.base_url_env if os.environ.get(e)), vendor.base_url)
    if not url:
        env = " or ".join(vendor.base_url_env)
        raise ConfigError(f"{vendor.name} needs a base_url (or {env}) naming your endpoint", field="base_url")
    prefill = options.pop("prefill", None)
    if prefill is not None and not isinstance(prefill, bool):
        raise ConfigError(f"expected true or false, got {prefill!r}", field="prefill")
    price_table = options.pop("price_table", None)
    if (prices := options.pop("prices", None)) is not None:
        price_table = price_table or PriceTable()
        if not isinstance(prices, Prices):
            prices = Prices.from_mapping(prices)
        price_table.set(f"{vendor.price_provider}:{model}", prices)
    return HTTPProvider(
        vendor=vendor.name,
        model=model,
        wire=_wire_for(vendor, api, stream_format),
        base_url=url,
        api_key=key,
        price_provider=vendor.price_provider,
        prices=price_table,
        accepts_prefill=accepts_prefill(vendor.name, model) if prefill is None else prefill,
        **options,
    )


def _resolve_key(vendor: Vendor, api_key: str | Secret | None) -> Secret | None:
    if isinstance(api_key, Secret):
        return api_key
    if api_key:
        return Secret(api_key)
    key = Secret.from_env(vendor.key_env or OPTIONAL_KEY_ENV.get(vendor.name, ()))
    if key is None and vendor.key_required:
        env = " or ".join(vendor.key_env)
        raise ConfigError(f"no API key for {vendor.name}: pass api_key= or set {env}", field="api_key")
    return key


def _wire_for(vendor: Vendor, api: str, stream_format: str = "sse") -> Wire:
    if api == "responses":
        from .openai_responses import OpenAIResponsesWire

        path = "/openai/v1/responses" if vendor.name == "azure" else "/responses"
        return OpenAIResponsesWire(auth=vendor.chat.auth, path=path)
    if api != "chat":
        raise ConfigError(f"unknown api {api!r}; use 'chat' or 'responses'", field="api")
    if vendor.wire == "openai-chat":
        from .openai_chat import OpenAIChatWire

        return OpenAIChatWire(vendor.chat)
    if vendor.wire == "anthropic":
        from .anthropic import AnthropicWire

        return AnthropicWire()
    if vendor.wire == "gemini":
        from .gemini import GeminiWire

        return GeminiWire(stream_format)
    raise ConfigError(f"vendor {vendor.name} names unknown wire {vendor.wire!r}")  # pragma: no cover

