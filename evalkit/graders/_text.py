"""Text helpers shared by the graders: normalisation, code fences, embedded JSON.

Kept free of grading decisions: each grader module says which of these it
applies and in which order.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

__all__ = [
    "code_blocks",
    "contains_phrase",
    "first_json_object",
    "json_document",
    "last_line",
    "loose_normalize",
    "squad_normalize",
    "text_after",
    "token_key",
]

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)
# Markdown emphasis and quotes a model may wrap a short answer in.
_WRAPPERS = "*_`'\"“”‘’ \t"


def squad_normalize(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lowercase, no punctuation, no a/an/the, single spaces.

    The same steps as ``normalize_answer`` in the official SQuAD evaluation
    script, which NQ-Open and lost-in-the-middle reuse.
    """
    lowered = str(text).lower()
    no_punct = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", no_punct).split())


def loose_normalize(text: str) -> str:
    """Case-folded, whitespace collapsed, markdown/quote wrappers and a trailing period removed.

    Gentler than :func:`squad_normalize`: punctuation inside the answer counts
    (``"(B)"``, ``"] ) }"``, ``"-12"``).
    """
    flat = " ".join(str(text).split()).strip(_WRAPPERS)
    while flat.endswith((".", "!")):
        flat = flat[:-1].rstrip(_WRAPPERS)
    return flat.strip(_WRAPPERS).casefold()


def token_key(text: str) -> str:
    """Case-folded words only: ``"Card_Arrival."`` and ``"card arrival"`` give ``"card arrival"``."""
    return " ".join(re.sub(r"[\W_]+", " ", str(text).casefold()).split())


def contains_phrase(haystack: str, needle: str) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as whole space-separated tokens.

    Both are expected normalised to single spaces; an empty needle never matches.
    """
    return bool(needle) and f" {needle} " in f" {haystack} "


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` (``""`` when there is none)."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def text_after(text: str, marker: str) -> str | None:
    """What follows the last case-insensitive ``marker`` on its line (or the next line), else None."""
    index = str(text).casefold().rfind(marker.casefold())
    if index < 0:
        return None
    rest = text[index + len(marker) :]
    first, _, remainder = rest.lstrip(" \t:").partition("\n")
    if first.strip():
        return first.strip()
    # "So the answer is:\n(B)" puts the answer on the following line.
    return next((line.strip() for line in remainder.splitlines() if line.strip()), "")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block in ``text`` as ``(language tag, body)``; an unclosed last fence counts."""
    return [(match.group(1).lower(), match.group(2)) for match in _FENCE.finditer(str(text))]


def json_document(text: str) -> str:
    """``text`` without a surrounding code fence (the first fenced block's body when there is one)."""
    blocks = code_blocks(text)
    return blocks[0][1].strip() if blocks else str(text).strip()


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object embedded in ``text`` (fences and chatter around it are skipped)."""
    decoder = json.JSONDecoder()
    body = json_document(text)
    for source in (body, str(text)) if body != text else (body,):
        start = source.find("{")
        while start >= 0:
            try:
                value, _ = decoder.raw_decode(source, start)
            except ValueError:
                value = None
            if isinstance(value, dict):
                return value
            start = source.find("{", start + 1)
    return None
