"""What OpenAI, Anthropic and Gemini check before a request means anything, and how each says no.

Every check raises :class:`~._wire_common.WireError` with the vendor's words;
the app renders it in the vendor's error shape (``wire.error``).

Credentials (any non-empty key is accepted: the emulator has no accounts):

* OpenAI: ``Authorization: Bearer KEY``; otherwise 401, "You didn't provide an API key..."
  (``invalid_request_error``, code ``null``, as api.openai.com answers).
* Anthropic: ``x-api-key`` (or ``Authorization: Bearer``, the SDK's ``auth_token``); otherwise 401
  ``authentication_error`` "x-api-key header is required". Then ``anthropic-version`` must be
  present (400 "anthropic-version: header is required") and a version the API knows (400
  ``anthropic-version: "X" is not a valid version``).
* Gemini: ``x-goog-api-key`` or ``?key=``; otherwise 403 ``PERMISSION_DENIED`` "Method doesn't allow
  unregistered callers...". A bearer token alone is an OAuth credential the emulator cannot
  verify: 401 ``UNAUTHENTICATED``, as Google answers an API key sent that way.

Bodies: only a JSON content type (``application/json`` or ``application/*+json``) is read as
JSON. OpenAI reads no parameters from any other body, so the request has no model (400 "you must
provide a model parameter", the answer to a body sent as a form or octet-stream). Anthropic and
Gemini answer 400 ``invalid_request_error`` / ``INVALID_ARGUMENT`` (for that case the status and
type are the vendors'; the sentence is the emulator's, as no recorded answer says it). Field types
are checked as each vendor does (see ``_field_types``), in its wording:

* OpenAI: "Invalid type for 'max_tokens': expected an integer, but got a string instead."
  (``param`` the field, code ``invalid_type``); ``"100"`` is a string, not an integer.
* Anthropic: "max_tokens: Input should be a valid integer, unable to parse string as an integer"
  (pydantic's lax reading: ``"100"`` is 100).
* Gemini: "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), "abc"" with a
  ``google.rpc.BadRequest`` field violation per field (``"100"`` is 100, as in protobuf JSON).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Mapping
from typing import Any

from .._json import JSONLimitError, loads, loads_checked
from ._field_types import (
    ANTHROPIC_MESSAGES,
    GEMINI_GENERATE,
    OPENAI_CHAT,
    Field,
    Problem,
    check_fields,
    json_type,
)
from ._wire_common import WireError

__all__ = [
    "ANTHROPIC_VERSIONS",
    "anthropic_body",
    "anthropic_credentials",
    "bearer_token",
    "gemini_body",
    "gemini_credentials",
    "is_json_media",
    "media_type",
    "openai_body",
    "openai_credentials",
    "parse_json",
]

ANTHROPIC_VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
"""The ``anthropic-version`` values Anthropic has published (2026-10-21: what anthropic 2.x sends)."""

OPENAI_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you "
    "have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)
_OPENAI_NOUNS = {"string": "a string", "integer": "an integer", "number": "a decimal", "boolean": "a boolean",
                 "array": "an array", "object": "an object", "null": "null"}
_PROTO_SCALARS = {"integer": "TYPE_INT32", "number": "TYPE_FLOAT", "string": "TYPE_STRING",
                  "boolean": "TYPE_BOOL"}


# -- headers -------------------------------------------------------------------------------------


def media_type(headers: Mapping[str, str]) -> str:
    """The request's media type, lower-cased and without parameters (``""`` when absent)."""
    value = headers.get("content-type", "")
    if not value.strip():
        return ""
    message = email.message.Message()
    message["content-type"] = value
    return message.get_content_type()


def is_json_media(media: str) -> bool:
    """``application/json`` or a ``+json`` type, as FastAPI decides whether to parse a body."""
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of ``Authorization: Bearer TOKEN`` (``""`` when absent or another scheme)."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def openai_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """A bearer key, or OpenAI's 401."""
    if not bearer_token(headers):
        raise WireError("", kind="auth")


def anthropic_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """A key (``x-api-key`` or bearer), then a known ``anthropic-version``; Anthropic's 401 or 400."""
    if not (headers.get("x-api-key", "").strip() or bearer_token(headers)):
        raise WireError("", kind="auth")
    version = headers.get("anthropic-version")
    if version is None or not version.strip():
        raise WireError("anthropic-version: header is required")
    if version.strip() not in ANTHROPIC_VERSIONS:
        raise WireError(f'anthropic-version: "{version.strip()}" is not a valid version')


def gemini_credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    """An API key (header or ``?key=``), or Google's 403 (401 for a bearer token it cannot verify)."""
    if headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip():
        return
    raise WireError("", kind="unauthenticated" if bearer_token(headers) else "auth")


# -- bodies --------------------------------------------------------------------------------------


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON within the emulator's limits; ``JSONLimitError`` past them, ``ValueError``
    (``json.JSONDecodeError``, or ``UnicodeDecodeError`` for bytes that are not UTF-8) when invalid."""
    return loads_checked(raw)


def _limit(exc: JSONLimitError) -> str:
    return f"We could not parse the JSON body of your request: {exc}."


def openai_body(headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """The body OpenAI reads, with its field types checked; only a JSON body has any parameters."""
    if not is_json_media(media_type(headers)):
        body: Any = {}
    else:
        try:
            body = parse_json(raw)
        except JSONLimitError as exc:
            raise WireError(_limit(exc)) from None
        except ValueError:
            raise WireError(OPENAI_BAD_JSON) from None
        if not isinstance(body, dict):
            raise WireError(OPENAI_BAD_JSON)
    body, problems = check_fields(body, OPENAI_CHAT, "strict", required=("model", "messages"))
    if problems:
        raise _openai_refusal(problems[0])
    return body


def _openai_refusal(problem: Problem) -> WireError:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem.path).lstrip(".")
    if problem.error == "missing":
        if where == "model":
            return WireError("you must provide a model parameter")
        return WireError(f"Missing required parameter: '{where}'.", where, code="missing_required_parameter")
    got = _OPENAI_NOUNS[json_type(problem.value)]
    return WireError(f"Invalid type for '{where}': expected {_openai_expected(problem.expected)}, but got "
                     f"{got} instead.", where, code="invalid_type")


def _openai_expected(spec: Field) -> str:
    if spec.one_of:
        return "one of " + " or ".join(_openai_expected(b).removeprefix("a ").removeprefix("an ")
                                       for b in spec.one_of)
    if spec.kind == "array" and spec.items is not None and spec.items.kind != "any":
        return f"an array of {spec.items.kind}s".replace("numbers", "decimals")
    return _OPENAI_NOUNS[spec.kind]


def anthropic_body(
    headers: Mapping[str, str], raw: bytes, *, required: tuple[str, ...] = ("model", "max_tokens")
) -> dict[str, Any]:
    """The body Anthropic reads, with its field types checked (pydantic's lax reading);
    ``count_tokens`` requires no ``max_tokens``."""
    media = media_type(headers)
    if not is_json_media(media):
        raise WireError(f"content-type: {json.dumps(media or '(none)')} is not supported: the request body "
                        "must be JSON, sent as application/json")
    try:
        body = parse_json(raw)
    except JSONLimitError as exc:
        raise WireError(f"The request body is not valid JSON: {exc}") from None
    except ValueError:
        raise WireError(f"The request body is not valid JSON: {_json_error_text(raw)}") from None
    if not isinstance(body, dict):
        raise WireError("Input should be a valid dictionary or object to extract fields from")
    body, problems = check_fields(body, ANTHROPIC_MESSAGES, "pydantic", required=required)
    if problems:
        first = problems[0]
        where = ".".join(str(p) for p in first.path)
        raise WireError(f"{where}: {first.message}", where)
    return body


def _json_error_text(raw: bytes) -> str:
    """The parser's own sentence for invalid JSON (orjson's, as the Anthropic API words it)."""
    try:
        loads(raw)
    except ValueError as exc:
        return str(exc)
    return "invalid JSON"


def gemini_body(headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """The body Gemini reads, with its field types checked (the protobuf JSON mapping)."""
    media = media_type(headers)
    if not is_json_media(media):
        shown = json.dumps(media or "(none)")
        raise WireError(f"Invalid JSON payload received. Unexpected Content-Type {shown}: the request body must "
                        "be sent as application/json.")
    try:
        body = parse_json(raw)
    except JSONLimitError as exc:
        raise WireError(f"Invalid JSON payload received. {exc}.") from None
    except ValueError as exc:
        raise WireError(_gemini_bad_json(raw, getattr(exc, "pos", 0))) from None
    if not isinstance(body, dict):
        raise WireError('Invalid JSON payload received. Unknown name "": Root element must be a message.')
    body, problems = check_fields(body, GEMINI_GENERATE, "proto3")
    if problems:
        violations = [(_proto_path(p.path), _gemini_invalid_value(p)) for p in problems]
        raise WireError(
            "\n".join(text for _, text in violations),
            violations[0][0],
            details=({"@type": "type.googleapis.com/google.rpc.BadRequest",
                      "fieldViolations": [{"field": f, "description": d} for f, d in violations]},),
        )
    return body


def _gemini_bad_json(raw: bytes, pos: int) -> str:
    """Google's parser error: the line with the bad token and a caret under it."""
    text = raw.decode("utf-8", "replace")
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:end if end != -1 else len(text)][:200]
    return f"Invalid JSON payload received. Unexpected token.\n{line}\n{' ' * min(pos - start, 200)}^"


def _proto_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _gemini_invalid_value(problem: Problem) -> str:
    spec = problem.expected
    kind = spec.items.kind if spec.kind == "array" and spec.items is not None else spec.kind
    type_name = _PROTO_SCALARS.get(kind) or spec.label or (spec.items.label if spec.items else "")
    value = json.dumps(problem.value, ensure_ascii=False, separators=(",", ":"))
    return f"Invalid value at '{_proto_path(problem.path)}' ({type_name}), {value}"
