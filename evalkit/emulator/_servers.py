"""The servers the emulator imitates: what each checks, which wire its answers speak, how it says no.

One :class:`Server` per kind of endpoint, all handled by the same code in
``_app``: check the credentials and required headers, read the body (content
type, JSON, field types), parse the call, then answer or refuse. The vendors
(``openai``, ``anthropic``, ``gemini``) live at their own paths; the
OpenAI-compatible self-hosted servers (``llamacpp``, ``vllm``, ``ollama``,
``fastapi``; see ``_compat``) serve OpenAI's routes under a path prefix of their
name, on the same port: ``/llamacpp/v1/chat/completions``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._compat import FLAVOURS, Flavour
from ._request_checks import (
    anthropic_body,
    anthropic_credentials,
    gemini_body,
    gemini_credentials,
    openai_body,
    openai_credentials,
)
from ._wire_anthropic import WIRE as ANTHROPIC
from ._wire_base import WireRenderer
from ._wire_common import HttpReply, ReplyContext, WireError
from ._wire_gemini import WIRE as GEMINI
from ._wire_openai import WIRE as OPENAI

__all__ = ["COMPAT_SERVERS", "SERVERS", "Server"]

Reader = Callable[[Mapping[str, str], bytes], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Server:
    """One kind of server: its checks, the wire of its answers, and how it renders a refusal."""

    name: str
    wire: WireRenderer
    credentials: Callable[[Mapping[str, str], Mapping[str, str]], None]
    """Raises :class:`WireError` (``auth``, or a 400 for a missing header) for what it turns away."""
    read: Reader
    """The body as the server reads it: content type, JSON and field types checked."""
    refuse: Callable[[WireError, ReplyContext], HttpReply]
    read_count: Reader | None = None
    """The body of a token-count request (no ``max_tokens`` needed), where the server counts."""
    default_model: Literal["never", "missing", "any"] = "never"
    """When the server answers with its own model: never, when none is named, or whatever is named."""
    streams_usage: bool = True
    """Whether a stream that asks for usage (``stream_options.include_usage``) gets it."""


def _vendor_refusal(wire: WireRenderer) -> Callable[[WireError, ReplyContext], HttpReply]:
    return lambda exc, ctx: wire.error(exc.kind, ctx, exc.info())


def _compat_refusal(flavour: Flavour) -> Callable[[WireError, ReplyContext], HttpReply]:
    def refuse(exc: WireError, ctx: ReplyContext) -> HttpReply:
        if exc.kind in ("bad_request", "not_found", "unhandled"):
            return flavour.render(exc, ctx)
        return OPENAI.error(exc.kind, ctx, exc.info())  # injected faults: OpenAI's shape

    return refuse


def _no_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """A local server without a configured key takes any request (and ignores a key sent anyway)."""


COMPAT_SERVERS: Mapping[str, Server] = {
    name: Server(name, OPENAI, _no_credentials, flavour.read, _compat_refusal(flavour),
                 default_model=flavour.default_model, streams_usage=flavour.streams_usage)
    for name, flavour in FLAVOURS.items()
}
"""The OpenAI-compatible self-hosted servers, by name (= path prefix)."""

SERVERS: Mapping[str, Server] = {
    "openai": Server("openai", OPENAI, openai_credentials, openai_body, _vendor_refusal(OPENAI)),
    "anthropic": Server("anthropic", ANTHROPIC, anthropic_credentials, anthropic_body, _vendor_refusal(ANTHROPIC),
                        read_count=functools.partial(anthropic_body, required=("model",))),
    "gemini": Server("gemini", GEMINI, gemini_credentials, gemini_body, _vendor_refusal(GEMINI),
                     read_count=gemini_body),
    **COMPAT_SERVERS,
}
"""Every server the emulator imitates, by name."""
