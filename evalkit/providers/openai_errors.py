"""OpenAI-style errors as evalkit errors, for the Chat Completions and Responses wires.

OpenAI, Azure and the compatible servers answer a failure with
``{"error": {"message", "type", "code", "param"}}`` (Mistral and some servers
put the fields at the top level); the same object can arrive inside a 200 body
or a stream chunk, so :func:`openai_error_from_payload` serves both and
:func:`classify_openai_error` (an HTTP error response).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ErrorKind, ProviderError, kind_for_status, provider_error
from ._headers import retry_after_seconds
from ._wire import error_body

__all__ = ["classify_openai_error", "openai_error_from_payload"]

# Structured error codes/types → kinds. Status codes decide when the code is absent or unknown,
# and for OpenAI's catch-all "server_error" type (a 503 from it is still an overload).
_CODE_KINDS = {
    "context_length_exceeded": ErrorKind.CONTEXT_LENGTH,
    "string_above_max_length": ErrorKind.CONTEXT_LENGTH,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "insufficient_quota": ErrorKind.RATE_LIMIT,
    "tokens": ErrorKind.RATE_LIMIT,
    "requests": ErrorKind.RATE_LIMIT,
    "invalid_api_key": ErrorKind.AUTH,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "model_not_found": ErrorKind.NOT_FOUND,
    "DeploymentNotFound": ErrorKind.NOT_FOUND,
    "not_found_error": ErrorKind.NOT_FOUND,
    "content_filter": ErrorKind.CONTENT_FILTER,
    "content_policy_violation": ErrorKind.CONTENT_FILTER,
    "ResponsibleAIPolicyViolation": ErrorKind.CONTENT_FILTER,
    "overloaded_error": ErrorKind.OVERLOADED,
}
# Out of credit is a 429 that waiting does not cure.
_NOT_RETRYABLE_CODES = {"insufficient_quota"}
# Neither is a request larger than a whole minute's token budget. OpenAI gives it the same code and type
# as a retryable TPM 429 (rate_limit_exceeded, tokens) and no Retry-After: only its message tells them apart.
_TOO_LARGE = "Request too large"


def classify_openai_error(status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """One error for an OpenAI-family error response (OpenAI, Azure and compatibles)."""
    data = error_body(body)
    payload = data.get("error") if isinstance(data, dict) else None
    if not isinstance(payload, dict):
        # Mistral and some servers put the error fields at the top level.
        payload = data if isinstance(data, dict) and "message" in data else {"message": body[:200].decode(errors="replace")}
    return openai_error_from_payload(payload, status=status, retry_after=retry_after_seconds(headers))


def openai_error_from_payload(payload: Any, *, status: int | None, retry_after: float | None = None) -> ProviderError:
    """One error from an OpenAI-style ``error`` object; ``status`` is ``None`` when it came inside a 200."""
    if not isinstance(payload, dict):
        payload = {"message": str(payload)}
    code = payload.get("code")
    etype = payload.get("type")
    code = str(code) if code is not None else None
    # An Azure gateway 401 carries code "401"; numeric codes are statuses in disguise.
    if status is None and code and code.isdigit():
        status = int(code)
    kind = _CODE_KINDS.get(code or "") or _CODE_KINDS.get(etype or "")
    if kind is None:
        kind = kind_for_status(status) if status else ErrorKind.SERVER
    message = str(payload.get("message") or etype or code or "error")
    fields: dict[str, Any] = {"status": status, "code": code or etype, "retry_after": retry_after}
    if code in _NOT_RETRYABLE_CODES or (kind is ErrorKind.RATE_LIMIT and message.startswith(_TOO_LARGE)):
        fields["retryable"] = False
    return provider_error(kind, message, **fields)
