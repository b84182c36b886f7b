"""Google API errors (``google.rpc.Status``) as evalkit errors, for the Gemini wire.

Gemini reports failures the way every Google API does (AIP-193): a JSON body
``{"error": {"code", "message", "status", "details"}}`` where ``status`` is a
``google.rpc.Code`` name and ``details`` may hold a ``google.rpc.ErrorInfo``
(a machine-readable ``reason``) and a ``google.rpc.RetryInfo`` (how long to
wait). The same payload arrives inside a 200 body or a stream chunk, so
:func:`gemini_error_from_payload` serves both those and
:func:`classify_gemini_error` (an HTTP error response).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import ErrorKind, ProviderError, kind_for_status, provider_error
from ._headers import parse_duration, retry_after_seconds
from ._wire import error_body

__all__ = ["classify_gemini_error", "gemini_error_from_payload"]

# google.rpc.Code names (the ``error.status`` field) → kinds. INVALID_ARGUMENT is
# refined by _CONTEXT_LENGTH below; unknown or absent names fall back to the HTTP status.
_STATUS_KINDS = {
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMIT,
    "UNAVAILABLE": ErrorKind.OVERLOADED,
    "INTERNAL": ErrorKind.SERVER,
    "DEADLINE_EXCEEDED": ErrorKind.TIMEOUT,
    "UNAUTHENTICATED": ErrorKind.AUTH,
    "PERMISSION_DENIED": ErrorKind.AUTH,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "INVALID_ARGUMENT": ErrorKind.BAD_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.BAD_REQUEST,
}

# Gemini reports an over-long prompt only as INVALID_ARGUMENT with this message
# (no dedicated status, reason or detail), e.g. "The input token count (1200293)
# exceeds the maximum number of tokens allowed (1048576)." Anchored at the start
# so a prompt quoted later in some other message cannot match.
_CONTEXT_LENGTH = re.compile(
    r"^The input token count \(\d+\) exceeds the maximum number of tokens allowed \(\d+\)"
)

# google.rpc.ErrorInfo reasons that decide the kind before ``status`` does: a bad
# key comes back as 400 INVALID_ARGUMENT with reason API_KEY_INVALID, not as 401.
_REASON_KINDS = {"API_KEY_INVALID": ErrorKind.AUTH}

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def classify_gemini_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """One error for a Google API error response (``{"error": {code, message, status, details}}``)."""
    data = error_body(body)
    if isinstance(data, list):
        # Streaming endpoints without alt=sse wrap the error object in a JSON array.
        data = next((item for item in data if isinstance(item, dict)), {})
    payload = data.get("error") if isinstance(data, dict) else None
    if not isinstance(payload, dict):
        payload = {"message": body[:200].decode(errors="replace") or f"HTTP {status}"}
    return gemini_error_from_payload(payload, status=status, headers=headers)


def gemini_error_from_payload(payload: Any, *, status: int | None,
                              headers: Mapping[str, str]) -> ProviderError:
    """The error an ``error`` object stands for; ``status`` is ``None`` inside a 200 body or stream."""
    if not isinstance(payload, dict):
        payload = {"message": str(payload)}
    rpc_status = payload.get("status") if isinstance(payload.get("status"), str) else None
    if status is None and isinstance(payload.get("code"), int):
        status = payload["code"]  # an error inside a 200 body carries its HTTP code here
    message = str(payload.get("message") or rpc_status or "error")
    reason, retry_delay = _details(payload.get("details"))
    kind = _REASON_KINDS.get(reason or "") or _STATUS_KINDS.get(rpc_status or "")
    if kind is None:
        kind = kind_for_status(status) if status else ErrorKind.SERVER
    too_long = rpc_status in ("INVALID_ARGUMENT", None) and _CONTEXT_LENGTH.match(message)
    if kind is ErrorKind.BAD_REQUEST and too_long:
        kind = ErrorKind.CONTEXT_LENGTH
    retry_after = retry_delay if kind is ErrorKind.RATE_LIMIT else None
    if retry_after is None:
        retry_after = retry_after_seconds(headers)
    # ``code`` names what decided the kind: the ErrorInfo reason when it did, else the rpc status.
    code = reason if reason in _REASON_KINDS else rpc_status
    return provider_error(kind, message, status=status, code=code, retry_after=retry_after)


def _details(details: Any) -> tuple[str | None, float | None]:
    """The ``google.rpc.ErrorInfo`` reason and the ``google.rpc.RetryInfo`` delay in seconds, if present."""
    reason: str | None = None
    delay: float | None = None
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = detail.get("@type")
        if kind == _ERROR_INFO and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
        elif kind == _RETRY_INFO:
            value = detail.get("retryDelay")  # a protobuf Duration in JSON: "17s", "0.5s"
            if isinstance(value, str):
                delay = parse_duration(value.strip())
            elif isinstance(value, dict):  # the proto form {"seconds": 17, "nanos": 0}
                delay = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
    return reason, delay
