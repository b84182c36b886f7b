"""API keys that never leave memory by accident."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Iterator

__all__ = ["Secret", "SecretHeaders", "known_secrets", "mentions_secret", "redact", "scrub", "scrub_strings",
           "scrubbed_warnings"]

_MIN_SCRUBBED = 8
"""Values shorter than this are not scrubbed from text: a test key "k" would erase every letter k."""

_KNOWN: set[str] = set()
"""Every secret value this process has held (see :func:`scrub`)."""


class Secret:
    """An API key. Its ``repr``/``str`` never show the value; only :meth:`reveal` does.

    Keep keys in a ``Secret`` from the moment they are read so that a provider's
    ``repr``, a log line or a traceback's locals cannot print them.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= _MIN_SCRUBBED:
            _KNOWN.add(value)

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
    return text.replace(secret._value, "********")


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
    return frozenset(_KNOWN)


def scrub(text: str) -> str:
    """``text`` with every known secret value replaced by ``********``.

    For everything evalkit writes (result rows, reports, logs): an upstream may
    echo a key back in a 200 body, and that text must not reach disk.
    """
    if not _KNOWN or not text:
        return text
    for value in _KNOWN:
        if value in text:
            text = text.replace(value, "********")
    return text


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


_needles: tuple[int, tuple[bytes, ...]] = (0, ())
"""(size of the registry, byte forms of its values): secrets are only ever added, so the size is a version."""


def mentions_secret(data: bytes) -> bool:
    """Whether ``data`` (text or JSON as UTF-8) holds a known secret value, as is or JSON-escaped.

    One substring test per form and secret: cheap enough to run on every line
    written, so that the slower :func:`scrub_strings` runs only when needed.
    """
    global _needles
    if not _KNOWN:
        return False
    if _needles[0] != len(_KNOWN):
        import json

        values = list(_KNOWN)  # a snapshot: another thread may register a key meanwhile
        forms = {form.encode() for value in values
                 for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1])}
        _needles = (len(values), tuple(forms))
    for needle in _needles[1]:  # a loop, not any(<generator>): this runs once per row written
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
