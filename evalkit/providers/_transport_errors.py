"""Transport failures (httpx exceptions) as evalkit errors: the one place they are classified.

HTTP error *responses* are classified by each wire (``Wire.classify``); this is
for what goes wrong below them: no connection, a timeout, a body or a stream
cut short, bytes that do not decode. Whether a response had begun decides
between ``connection`` (nothing arrived: resending is safe and free) and
``stream_interrupted`` (a response started and broke: the vendor may bill what
it generated). The HTTP layer tags the result with its provider and model.
"""

from __future__ import annotations


import httpx

from ..errors import (
    ProviderConnectionError,
    InvalidResponseError,
    ProviderError,
    StreamInterruptedError,
    ProviderTimeoutError,
)

__all__ = ["classify_transport_error"]


def classify_transport_error(exc: httpx.HTTPError, *, began: bool, received: int | None = None,
                             expected: str | None = None) -> ProviderError:
    """The evalkit error for ``exc``; ``began``: the response (its status line) had already arrived.

    ``received``/``expected`` (bytes of a non-streamed body, and its
    Content-Length) say how far a cut body got.
    """
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__
    if (isinstance(exc, httpx.ConnectTimeout) and cause is not None
            and type(cause).__module__.startswith("aiohttp")
            and not isinstance(cause, TimeoutError)):
        # httpx-aiohttp reports every aiohttp connection failure (refused, reset, disconnected) as
        # ConnectTimeout; the cause says what really happened, and it decides the retry.
        detail = _cut(f"{type(cause).__name__}: {cause}", received, expected)
        return StreamInterruptedError(detail) if began else ProviderConnectionError(detail)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(detail)
    if began and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return StreamInterruptedError(_cut(detail, received, expected))
    if isinstance(exc, httpx.DecodingError):
        return InvalidResponseError(detail)
    return ProviderConnectionError(detail)


def _cut(detail: str, received: int | None, expected: str | None) -> str:
    if received is None:
        return detail
    of = f" of {expected}" if expected and expected.isdigit() else ""
    return f"response body cut after {received}{of} bytes ({detail})"
