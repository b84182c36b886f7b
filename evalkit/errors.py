"""evalkit's one exception tree.

Every failure a caller can see is an :class:`EvalkitError`::

    EvalkitError
    ├── ConfigError                  bad dataset / config / CLI input (exit code 2)
    └── ProviderError                a call to a model failed; has .kind and .retryable
        ├── RateLimitError           rate_limit          retryable, honours retry_after
        ├── OverloadedError          overloaded          retryable (Anthropic 529, 503 "overloaded")
        ├── ServerError              server              retryable (5xx)
        ├── ProviderTimeoutError     timeout             retryable
        ├── ProviderConnectionError  connection          retryable (refused, reset before a response began)
        ├── StreamInterruptedError   stream_interrupted  retryable (a stream, or a response body, cut after it
        │                                                began; an error event inside a 200 stream)
        ├── ContextLengthError       context_length      not retryable here; a router may try a bigger window
        ├── ContentFilterError       content_filter      not retryable (a policy error, or a 200 refusal:
        │                                                finish_reason content_filter / refusal / SAFETY...)
        ├── AuthError                auth                not retryable (401/403); routers move on to targets
        │                                                with another endpoint or key
        ├── NotFoundError            not_found           not retryable (unknown model / deployment)
        ├── BadRequestError          bad_request         not retryable (other 4xx); routers stop
        ├── InvalidResponseError     invalid_response    retryable (malformed JSON or stream event, missing
        │                                                fields, an empty answer: no text, no tool calls);
        │                                                not retryable when finish_reason=length came before
        │                                                any text (every output token went to reasoning)
        ├── BudgetExceeded           budget_exceeded     not retryable; the router refused to send
        ├── StateUnavailableError    state_unavailable   retryable after retry_after; the router's shared state
        │                                                (Redis) did not answer, so a budget could not be
        │                                                checked and nothing was sent (fail closed)
        ├── InternalError            internal            not retryable; a target raised a non-evalkit error (a bug)
        └── AllTargetsFailed         (its last attempt's kind) a router ran out of targets; holds
                                     every attempt; never retried by an outer router

Each vendor's wire module maps its status codes and structured error codes to a
kind in exactly one function; :func:`provider_error` turns a kind into the right
class. A 200 that is not an answer (a refusal, an empty reply) is turned into an
error once for every wire, by the HTTP layer (``providers/_answers.py``).
Adapters never retry: the router is the one retry owner, and it reads
``error.retryable`` and ``error.retry_after``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, TypedDict

if TYPE_CHECKING:
    from typing import Unpack

    from .types import Attempt, Cost, Usage

__all__ = [
    "AllTargetsFailed",
    "AuthError",
    "BudgetExceeded",
    "BadRequestError",
    "ConfigError",
    "ContentFilterError",
    "ContextLengthError",
    "ErrorKind",
    "EvalkitError",
    "InternalError",
    "InvalidResponseError",
    "NotFoundError",
    "OverloadedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RetryDecision",
    "ServerError",
    "StateUnavailableError",
    "StreamInterruptedError",
    "provider_error",
]


class ErrorKind(str, enum.Enum):
    """The kind of a provider failure; the router's policies key on it."""

    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    INVALID_RESPONSE = "invalid_response"
    STREAM_INTERRUPTED = "stream_interrupted"
    BUDGET_EXCEEDED = "budget_exceeded"
    STATE_UNAVAILABLE = "state_unavailable"
    INTERNAL = "internal"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether trying the same call again may succeed, and after how long at least."""

    retryable: bool
    retry_after: float | None = None


class EvalkitError(Exception):
    """Base of every error evalkit raises on purpose."""


class ConfigError(EvalkitError):
    """Bad user input: a dataset row, a config field or a CLI flag.

    The message names the file, the line (or YAML path) and the field, so the
    CLI can print it as is and exit with code 2.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field = file, line, field
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = f"{where}: " if where else ""
        prefix += f"{field}: " if field else ""
        super().__init__(prefix + message)


class ProviderErrorFields(TypedDict, total=False):
    """The keyword fields of every :class:`ProviderError` (for code that builds one from a kind)."""

    provider: str | None
    model: str | None
    status: int | None
    code: str | None
    retry_after: float | None
    request_id: str | None
    retryable: bool | None
    usage: Usage | None
    cost: Cost | None


class ProviderError(EvalkitError):
    """A call to a provider failed.

    ``kind`` says what happened; ``retryable`` and ``retry_after`` are the typed
    retry decision. ``status`` is the HTTP status (``None`` for transport
    failures), ``code`` the vendor's own error type/code when it sent one.
    Messages never contain credentials: the HTTP layer redacts them.

    ``usage`` and ``cost`` are what the vendor may bill for the failed attempt
    (``None`` when nothing was generated, or nothing is known): a refusal that
    came with a usage object, or a stream cut after some text, is still paid
    for. Counted locally, they are marked ``usage.exact = False``. Routers
    record them on the attempt and budgets settle them instead of releasing.
    """

    kind: ErrorKind
    """Set by each subclass; an :class:`AllTargetsFailed` takes its last error's, per instance."""
    default_retryable: ClassVar[bool] = False
    attempts: tuple[Attempt, ...] | None = None
    """Set when a router raised it: every attempt of the routed call, in order (``None``: one target's own)."""
    errors: tuple[ProviderError, ...] = ()
    """Set when a router raised it: the errors that made it give up."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        usage: Usage | None = None,
        cost: Cost | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.usage = usage
        self.cost = cost

    @property
    def retry(self) -> RetryDecision:
        """The typed retry decision for this failure."""
        return RetryDecision(self.retryable, self.retry_after)

    def __str__(self) -> str:
        where = ":".join(p for p in (self.provider, self.model) if p)
        head = f"[{self.kind.value}{' ' + str(self.status) if self.status else ''}]"
        return f"{head} {where + ': ' if where else ''}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind.value!r}, status={self.status!r}, message={self.message!r})"


class RateLimitError(ProviderError):
    """The vendor throttled this key or model; wait ``retry_after`` seconds."""

    kind = ErrorKind.RATE_LIMIT
    default_retryable = True


class OverloadedError(ProviderError):
    """The vendor is overloaded (Anthropic 529, HTTP 503, Gemini UNAVAILABLE)."""

    kind = ErrorKind.OVERLOADED
    default_retryable = True


class ServerError(ProviderError):
    """The vendor failed (5xx)."""

    kind = ErrorKind.SERVER
    default_retryable = True


class ProviderTimeoutError(ProviderError):
    """No answer, or no next byte, within the timeout."""

    kind = ErrorKind.TIMEOUT
    default_retryable = True


class ProviderConnectionError(ProviderError):
    """The connection was refused or reset before a response arrived (a body cut later is stream_interrupted)."""

    kind = ErrorKind.CONNECTION
    default_retryable = True


class StreamInterruptedError(ProviderError):
    """A response broke after it began: a stream or a body cut short, or an error event inside a 200 stream.

    When output had arrived, ``usage``/``cost`` estimate what the vendor bills for it.
    """

    kind = ErrorKind.STREAM_INTERRUPTED
    default_retryable = True


class ContextLengthError(ProviderError):
    """The prompt does not fit the model's context window."""

    kind = ErrorKind.CONTEXT_LENGTH


class ContentFilterError(ProviderError):
    """The vendor refused the request or the answer on policy grounds (an error status, or a 200 refusal)."""

    kind = ErrorKind.CONTENT_FILTER


class AuthError(ProviderError):
    """The key is missing, wrong or lacks permission (401/403)."""

    kind = ErrorKind.AUTH


class NotFoundError(ProviderError):
    """The model or deployment does not exist."""

    kind = ErrorKind.NOT_FOUND


class BadRequestError(ProviderError):
    """The vendor rejected the request as malformed (other 4xx)."""

    kind = ErrorKind.BAD_REQUEST


class InvalidResponseError(ProviderError):
    """The vendor answered 2xx with a body evalkit cannot read, or with no answer in it (no text, no tool calls)."""

    kind = ErrorKind.INVALID_RESPONSE
    default_retryable = True


class BudgetExceeded(ProviderError):
    """A budget cannot cover the worst-case cost of the request; nothing was sent.

    A :class:`~evalkit.router.BudgetLedger`'s refusal says why: the ``cap`` of
    ``period`` (``scope`` ``"shared"``, ``"target"`` or ``"share"``), what was
    ``spent`` and ``reserved`` then, and the ``requested`` worst case for ``target``
    (USD). ``None`` where the refusal did not come from a ledger.
    """

    kind = ErrorKind.BUDGET_EXCEEDED
    cap: Decimal | None = None
    spent: Decimal | None = None
    reserved: Decimal | None = None
    requested: Decimal | None = None
    period: str | None = None
    scope: str | None = None
    target: str | None = None


class StateUnavailableError(ProviderError):
    """The router's shared state store (Redis) did not answer in time; nothing was sent.

    Raised where a decision needs the shared state and may not be taken
    without it: a budget reservation (budgets fail closed unless the state was
    built with ``fail_open=True``). ``retry_after`` is when the state will be
    tried again. Breakers and rate limits never raise it: they fall back to
    this process's own view.
    """

    kind = ErrorKind.STATE_UNAVAILABLE
    default_retryable = True


class InternalError(ProviderError):
    """A target raised something other than a ProviderError: a bug, recorded instead of crashing a run."""

    kind = ErrorKind.INTERNAL


class AllTargetsFailed(ProviderError):
    """A router tried every target it could; ``attempts`` holds each attempt, ``errors`` each error.

    Its ``kind`` is the kind of the last error (``overloaded`` when nothing could
    be sent at all). It is not retryable: the router that raised it already
    spent its retries, and an outer router moves on instead of retrying it.
    """

    kind = ErrorKind.OVERLOADED

    def __init__(self, message: str, *, attempts: tuple[Attempt, ...] = (),
                 errors: tuple[ProviderError, ...] = (), **fields: Unpack[ProviderErrorFields]) -> None:
        fields.setdefault("retryable", False)
        super().__init__(message, **fields)
        self.attempts = attempts
        self.errors = errors
        if errors:
            last = errors[-1]
            self.kind = last.kind
            self.status = self.status or last.status
            self.code = self.code or last.code


# Every kind has exactly one class: the direct subclasses of ProviderError defined above (a router's
# AllTargetsFailed borrows its last error's kind and is never built from a kind).
_CLASS_BY_KIND: dict[ErrorKind, type[ProviderError]] = {
    cls.kind: cls for cls in ProviderError.__subclasses__() if cls is not AllTargetsFailed}
assert set(_CLASS_BY_KIND) == set(ErrorKind), "each ErrorKind needs its ProviderError subclass"


def __getattr__(name: str) -> type[ProviderError]:
    from ._deprecated import deprecated_alias  # the old names that shadowed built-ins; one release only

    cls = deprecated_alias(name)
    if cls is None:
        raise AttributeError(f"module 'evalkit.errors' has no attribute {name!r}")
    return cls


def provider_error(kind: ErrorKind | str, message: str, **fields: Unpack[ProviderErrorFields]) -> ProviderError:
    """The :class:`ProviderError` subclass for ``kind``, built with ``fields``."""
    return _CLASS_BY_KIND[ErrorKind(kind)](message, **fields)


def kind_for_status(status: int) -> ErrorKind:
    """The kind an HTTP status means when the vendor's body says nothing more specific."""
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 413:
        return ErrorKind.CONTEXT_LENGTH
    if status in (408, 504):
        return ErrorKind.TIMEOUT
    if status in (503, 529):
        return ErrorKind.OVERLOADED
    if status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.BAD_REQUEST

