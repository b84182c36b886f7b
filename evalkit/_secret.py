"""API keys that never leave memory by accident."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterable, Iterator

__all__ = ["Secret", "SecretHeaders", "known_secrets", "mentions_secret", "redact", "scrub", "scrub_bytes",
           "scrub_strings", "scrubbed_warnings"]

_MIN_SCRUBBED = 8
"""Values shorter than this are not scrubbed from text: a test key "k" would erase every letter k."""

_KNOWN: set[str] = set()
"""Every secret value this process has held (see :func:`scrub`)."""

_MASK = "********"
_MASK_BYTES = _MASK.encode()
# What the scrubbers loop over, rebuilt whole when a secret is registered (rare) and read without a
# lock: a scan never iterates the set itself, which another thread may be adding to. Longest first,
# so a key that contains another is replaced whole, not around the shorter one.
_values: tuple[str, ...] = ()
_values_bytes: tuple[bytes, ...] = ()
_needles: tuple[bytes, ...] = ()
"""Each value's UTF-8 forms in JSON: as is, ASCII-escaped, UTF-8-escaped (see :func:`mentions_secret`)."""
_register_lock = threading.Lock()


def _register(value: str) -> None:
    global _values, _values_bytes, _needles
    import json

    with _register_lock:
        _KNOWN.add(value)
        values = tuple(sorted(_KNOWN, key=len, reverse=True))
        forms = {form.encode() for v in values
                 for form in (v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1])}
        _values, _values_bytes, _needles = values, tuple(v.encode() for v in values), tuple(forms)


class Secret:
    """An API key. Its ``repr``/``str`` never show the value; only :meth:`reveal` does.

    Keep keys in a ``Secret`` from the moment they are read so that a provider's
    ``repr``, a log line or a traceback's locals cannot print them.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= _MIN_SCRUBBED and value not in _KNOWN:
            _register(value)

    @classmethod
    def from_env(cls, names: Iterable[str]) -> Secret | None:
        """The first non-empty environment variable of ``names``."""
        for name in names:
            if value := os.environ.get(name):
                return cls(value)
        return None

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> object:  # pickling would write the key to disk
        raise TypeError("a Secret cannot be pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


def redact(text: str, secret: Secret | None) -> str:
    """``text`` with every occurrence of the secret's value replaced by ``********``."""
    if secret is None or not secret._value or secret._value not in text:
        return text
    return text.replace(secret._value, _MASK)


class SecretHeaders(dict):
    """Request headers that carry credentials; their ``repr`` hides every value.

    The HTTP layer keeps its auth headers in one of these so that a debugger,
    a traceback with locals or ``vars(provider)`` shows names, never keys.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "SecretHeaders({%s})" % ", ".join(f"{k!r}: '********'" for k in self)

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("SecretHeaders cannot be pickled")


def known_secrets() -> frozenset[str]:
    """Every secret value (of at least 8 characters) a :class:`Secret` has held in this process."""
    return frozenset(_values)


def scrub(text: str) -> str:
    """``text`` with every known secret value replaced by ``********``.

    For everything evalkit writes (result rows, reports, logs): an upstream may
    echo a key back in a 200 body, and that text must not reach disk. One
    substring search per known secret (a process holds a handful).
    """
    if not text:
        return text
    for value in _values:
        if value in text:
            text = text.replace(value, _MASK)
    return text


def scrub_bytes(data: bytes) -> bytes:
    """:func:`scrub` for bytes (UTF-8): what an upstream sent, before it is decoded or parsed."""
    for value in _values_bytes:
        if data.find(value) != -1:  # bytes.find is ~2x faster than ``in`` on bytes
            data = data.replace(value, _MASK_BYTES)
    return data


def scrub_strings(value: Any) -> Any:
    """``value`` with :func:`scrub` applied to every string in it, through dicts, lists and tuples.

    For records about to be written (a result row with its attempts, a manifest):
    every field is covered, including ones added later.
    """
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_strings(k): scrub_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_strings(v) for v in value]
    return value


def mentions_secret(data: bytes) -> bool:
    """Whether ``data`` (text or JSON as UTF-8) holds a known secret value, as is or JSON-escaped.

    One substring test per form and secret: cheap enough to run on every line
    written, so that the slower :func:`scrub_strings` runs only when needed.
    """
    for needle in _needles:  # a loop, not any(<generator>): this runs once per row written
        if needle in data:
            return True
    return False


@contextlib.contextmanager
def scrubbed_warnings() -> Iterator[None]:
    """Meanwhile, every warning is shown with known secret values scrubbed from its message.

    A warning may quote what an upstream sent (an echoed key in a model name);
    a command that prints warnings to a terminal or a log wraps its work in this.
    """
    import warnings

    show = warnings.showwarning

    def scrubbed(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
        show(scrub(str(message)), category, filename, lineno, file, line)

    warnings.showwarning = scrubbed
    try:
        yield
    finally:
        warnings.showwarning = show
