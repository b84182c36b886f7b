"""What the three wire modules share as data: reply contexts, errors, ids, header values and JSON.

The steps they share (parse, render a body or a stream, headers, errors, models)
are :class:`~._wire_base.WireRenderer`, which each wire module subclasses.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ._simulate import ChatCall

__all__ = [
    "BAD_GATEWAY_HTML",
    "ErrorInfo",
    "HttpReply",
    "RateSnapshot",
    "ReplyContext",
    "StreamEvent",
    "StreamPart",
    "WireError",
    "base62",
    "compact_json",
    "float_or_none",
    "go_duration",
    "int_or_none",
    "retry_after_text",
    "rfc3339",
    "seconds_text",
]

ErrorKind = Literal[
    "rate_limit",
    "server",
    "bad_gateway",
    "unavailable",
    "overloaded",
    "context_length",
    "auth",
    "unauthenticated",
    "not_found",
    "bad_request",
]

# What a CDN in front of an API sends on 502: HTML, not the vendor's JSON.
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>evalkit-emulator</center>\r\n</body>\r\n</html>\r\n"
)
StreamPart = Literal["head", "content", "tail"]
"""Where a stream event stands: the opening, the answer, or the ending a cut drops."""

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class WireError(Exception):
    """A request the server refuses: a 400 (``bad_request``) unless ``kind`` says otherwise.

    ``param`` names the bad field and ``code`` is the vendor's error code, where
    it has one (OpenAI's ``invalid_type``). ``details`` are structured details the
    vendor attaches (Gemini's field violations); ``problems`` the field-type
    failures behind it as FastAPI lists them (its ``detail`` items).
    """

    def __init__(
        self,
        message: str,
        param: str | None = None,
        *,
        kind: str = "bad_request",
        code: str | None = None,
        details: tuple[Any, ...] = (),
        problems: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.kind, self.code = message, param, kind, code
        self.details, self.problems = details, problems

    def info(self) -> ErrorInfo:
        """What the vendor's error renderer needs from this refusal."""
        return ErrorInfo(message=self.message, param=self.param, code=self.code, details=self.details)


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    """The rate-limit budget to report: limits, what remains, seconds to reset."""

    limit_requests: int
    limit_tokens: int
    remaining_requests: int
    remaining_tokens: int
    reset_requests_s: float
    reset_tokens_s: float

    def exhausted(self, retry_after: float) -> RateSnapshot:
        """The same budget with requests used up until ``retry_after`` seconds from now."""
        return RateSnapshot(
            self.limit_requests, self.limit_tokens, 0, self.remaining_tokens, retry_after, self.reset_tokens_s
        )


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """Everything a wire needs to render a reply besides the generation itself."""

    model: str
    request_id: str
    rate: RateSnapshot
    call: ChatCall | None = None
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Details of an error reply: what to say and the numbers to put in the message."""

    message: str = ""
    retry_after: float | None = None
    prompt_tokens: int = 0
    context_window: int = 0
    param: str | None = None
    code: str | None = None
    details: tuple[Any, ...] = ()
    rate_budget: str | None = None
    """Of a 429 from an enforced limit: the budget that ran out (``requests``, ``tokens``, or ``too_large``:
    more tokens than the whole budget); None for an injected ``429`` fault."""
    requested_tokens: int = 0
    """Of a 429 from an enforced limit: the tokens the call would have taken."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A complete HTTP response: status, headers and body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One framed stream event; ``part`` is ``head``, ``content`` or ``tail`` (the ending a cut drops).

    ``tokens`` pace the event (it leaves when its last token is generated);
    ``visible`` is False for tokens of hidden reasoning, which pace a stream but
    are not answer text (the stream faults count answer tokens only);
    ``terminator`` marks the wire's end-of-stream marker (``data: [DONE]``,
    ``message_stop``, the ``]`` closing Gemini's JSON array), which ``no_done``
    leaves out.
    """

    data: bytes
    part: StreamPart
    tokens: int = 0
    visible: bool = True
    terminator: bool = False


def compact_json(value: Any) -> bytes:
    """JSON as the OpenAI and Anthropic APIs send it: no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def base62(hex_digest: str, length: int) -> str:
    """A ``length``-character base-62 id from a hex digest (deterministic ids)."""
    n, out = int(hex_digest, 16), []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(out)


def seconds_text(seconds: float) -> str:
    """``2`` for 2.0 and ``0.5`` for 0.5: Retry-After style."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def retry_after_text(seconds: float) -> str:
    """A Retry-After value: seconds, rounded *up* to the millisecond (``2``, ``0.013``).

    Up, so a client that waits exactly this long is never early. Vendors send whole
    seconds; the emulator's scaled time needs fractions, which evalkit and the
    vendors' SDKs parse.
    """
    return seconds_text(math.ceil(round(seconds * 1000, 6)) / 1000)


def go_duration(seconds: float) -> str:
    """OpenAI's reset format: ``9ms``, ``8.64s``, ``1m3.57s``."""
    if seconds < 1:
        return f"{max(round(seconds * 1000), 0)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.2f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def rfc3339(seconds_from_now: float) -> str:
    """Anthropic's reset format: an RFC 3339 UTC instant, whole seconds."""
    # Rounded up, so a client that waits until the reset never comes back early.
    when = datetime.fromtimestamp(math.ceil(time.time() + seconds_from_now), tz=UTC)
    return when.isoformat().replace("+00:00", "Z")


def int_or_none(value: Any) -> int | None:
    """A request's integer field (``seed``), or None when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def float_or_none(value: Any) -> float | None:
    """A request's number field (``temperature``), or None when absent or not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
