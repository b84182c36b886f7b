"""Anthropic's errors as evalkit errors, for the Anthropic wire.

Anthropic answers a failure with ``{"type": "error", "error": {"type", "message"},
"request_id"}``; the same ``error`` object can arrive inside a 200 body or as a
stream's ``error`` event, so :func:`anthropic_error_from_payload` serves both
and :func:`classify_anthropic_error` (an HTTP error response).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import ErrorKind, ProviderError, kind_for_status, provider_error
from ._headers import retry_after_seconds
from ._wire import error_body

__all__ = ["anthropic_error_from_payload", "classify_anthropic_error"]

# The structured ``error.type`` decides; the status code only when the type is absent or unknown.
_ERROR_KINDS = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.CONTEXT_LENGTH,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    # Out of credit: a 402 that waiting does not cure (like OpenAI's insufficient_quota).
    "billing_error": ErrorKind.RATE_LIMIT,
    "api_error": ErrorKind.SERVER,
    "overloaded_error": ErrorKind.OVERLOADED,
    "timeout_error": ErrorKind.TIMEOUT,
}
_NOT_RETRYABLE_TYPES = {"billing_error"}

# Anthropic reports an over-long prompt as a plain invalid_request_error; only the
# message tells it apart, in one of the two forms it sends (the regex is anchored to the start):
#   "prompt is too long: 215000 tokens > 200000 maximum"
#   "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, ..."
_CONTEXT_LENGTH_MESSAGE = re.compile(
    r"^(?:prompt is too long: \d+ tokens > \d+ maximum"
    r"|input length and `max_tokens` exceed context limit: \d+ \+ \d+ > \d+)"
)


def classify_anthropic_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """One error for an Anthropic error response (``{"type": "error", "error": {...}}``)."""
    data = error_body(body)
    if not isinstance(data, dict):
        data = {}
    payload = data.get("error")
    if not isinstance(payload, dict):
        # A gateway page (HTML 502, say) instead of Anthropic's JSON: the status decides.
        payload = {"message": body[:200].decode(errors="replace") or f"HTTP {status}"}
    request_id = data.get("request_id") or headers.get("request-id")
    return anthropic_error_from_payload(payload, status=status, retry_after=retry_after_seconds(headers),
                               request_id=request_id)


def anthropic_error_from_payload(payload: Any, *, status: int | None, retry_after: float | None = None,
                        request_id: str | None = None) -> ProviderError:
    """One error from Anthropic's ``error`` object; ``status`` is ``None`` when it came inside a 200 or a stream."""
    if not isinstance(payload, dict):
        payload = {"message": str(payload)}
    etype = payload.get("type")
    etype = str(etype) if etype is not None else None
    message = str(payload.get("message") or etype or "error")
    kind = _ERROR_KINDS.get(etype or "")
    if kind is None:
        kind = kind_for_status(status) if status else ErrorKind.SERVER
    if kind is ErrorKind.BAD_REQUEST and _CONTEXT_LENGTH_MESSAGE.match(message):
        kind = ErrorKind.CONTEXT_LENGTH
    fields: dict[str, Any] = {"status": status, "code": etype, "retry_after": retry_after,
                              "request_id": request_id or None}
    if etype in _NOT_RETRYABLE_TYPES:
        fields["retryable"] = False
    return provider_error(kind, message, **fields)
