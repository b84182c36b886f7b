"""The cookie jar of the HTTP clients evalkit owns."""

from __future__ import annotations

import http.cookiejar
from typing import Any

__all__ = ["AnswerCookieJar"]


class AnswerCookieJar(http.cookiejar.CookieJar):
    """httpx's cookie jar, without the parsing of answers that set no cookie (nearly every API answer).

    httpx hands every response to the jar, which first copies all its headers
    into an ``email.message.Message`` (~40 µs a call, measured with
    ``benchmarks/runner_throughput.py``) to look for ``Set-Cookie``. Cookies a
    vendor does set (Cloudflare's ``__cf_bm``) are kept and sent back as the
    official SDKs, on httpx's default jar, do.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        raw = response.response.headers.raw  # httpx's compat wrapper around its Response
        if any(name.lower() in _SET_COOKIE for name, _ in raw):
            super().extract_cookies(response, request)


_SET_COOKIE = (b"set-cookie", b"set-cookie2")
