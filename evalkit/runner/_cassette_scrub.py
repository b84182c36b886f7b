"""Secrets out of a cassette: what is dropped, and the credential values searched for everywhere else."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "SECRET_QUERY_PARAMETERS", "SECRET_REQUEST_HEADERS", "SECRET_RESPONSE_HEADERS",
           "as_bytes", "scrub_bytes", "scrub_request", "scrub_text"]

REDACTED = "REDACTED"
SECRET_REQUEST_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
                          "cookie", "openai-organization", "openai-project", "anthropic-organization-id")
SECRET_RESPONSE_HEADERS = ("set-cookie", "openai-organization", "openai-project", "anthropic-organization-id")
SECRET_QUERY_PARAMETERS = ("key",)
# Headers whose values are credentials: besides being dropped, their values are searched for
# (and replaced) in every URI, body and response header, in case a server echoes them.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie")
# Shorter values are still dropped from headers and queries, but replacing a 4-letter test key
# everywhere would mangle ordinary text and gain nothing.
_MIN_SECRET_LEN = 8


def scrub_request(request: Any, secrets: set[str] | None = None) -> Any:
    """A copy of the vcrpy ``request`` without credentials; the values found are added to ``secrets``.

    Drops the secret headers and the ``key`` query parameter, then replaces any
    occurrence of a credential value left in the URI or body by ``REDACTED``.
    Recording applies it before storing; replay applies it to live requests
    before matching, so both sides are compared in the same, scrubbed form.
    """
    request = copy.deepcopy(request)
    found = secrets if secrets is not None else set()
    for name in _CREDENTIAL_HEADERS:
        if (value := request.headers.get(name)) is not None:
            found.update(_credential_values(name, str(value)))
    parts = urlsplit(request.uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    found.update(v for k, v in query if k in SECRET_QUERY_PARAMETERS)
    kept = [(k, v) for k, v in query if k not in SECRET_QUERY_PARAMETERS]
    request.uri = scrub_text(urlunsplit(parts._replace(query=urlencode(kept))), found)
    request.headers = {k: v for k, v in request.headers.items() if k.lower() not in SECRET_REQUEST_HEADERS}
    if isinstance(request.body, (bytes, str)):
        request.body = scrub_bytes(as_bytes(request.body), found)
    return request


def scrub_text(text: str, secrets: set[str]) -> str:
    """``text`` with every secret (raw or URL-encoded) replaced, longest first."""
    for secret in _needles(secrets):
        text = text.replace(secret, REDACTED)
    return text


def scrub_bytes(data: bytes, secrets: set[str]) -> bytes:
    """Like :func:`scrub_text` for bytes."""
    for secret in _needles(secrets):
        data = data.replace(secret.encode(), REDACTED.encode())
    return data


def _credential_values(name: str, value: str) -> set[str]:
    values = {value}
    if name.endswith("authorization") and " " in value:
        values.add(value.split(" ", 1)[1].strip())  # "Bearer sk-...": the token alone
    if name == "cookie":
        values.update(v.strip() for _, _, v in (c.partition("=") for c in value.split(";")))
    return {v for v in values if len(v) >= _MIN_SECRET_LEN}


def _needles(secrets: set[str]) -> list[str]:
    needles = {s for s in secrets if len(s) >= _MIN_SECRET_LEN}
    needles |= {quote(s, safe="") for s in needles}
    return sorted(needles, key=len, reverse=True)  # "Bearer sk-x" before "sk-x"


def as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body
