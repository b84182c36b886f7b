"""Answer extractors: the final number of a worked solution and the letter of a multiple-choice reply.

Both are pure functions of the text so they can be property-tested and reused
(the analysis can re-extract answers from recorded outputs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["NUMBER_MARKERS", "extract_choice", "extract_number", "parse_number"]

# A number as models write it: optional sign (hyphen or U+2212), optional $, thousands
# separators, decimals. Not inside a word or after a dot, so "x2" and "v1.2" give nothing.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-\u2212])?\$?\s?(?P<value>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
)
NUMBER_MARKERS = re.compile(r"(?i:answer\s*(?:is|:|=))|####")

_LETTER = r"\(?(?P<letter>[A-Za-z])\)?(?![\w])"
# "The answer is (C)", "Answer: C", "correct answer is option C", "**Answer:** C".
_MARKED_LETTER = re.compile(
    r"(?i:answer)[\s*:]*(?:(?i:is)[\s*:]*)?(?:(?i:option|choice)\s+)?[\s*]*" + _LETTER
)
_LONE_LETTER = re.compile(r"^[\s*_`'\"]*\(?(?P<letter>[A-Za-z])\)?[\s*_`'\".]*$")
_LEADING_LETTER = re.compile(r"^[\s*_`]*(?:\((?P<p>[A-Za-z])\)|(?P<letter>[A-Z])[.):])\s")
_PARENTHESISED = re.compile(r"\((?P<letter>[A-Za-z])\)")
DEFAULT_CHOICES = tuple("ABCDEFGHIJ")


def parse_number(text: str) -> float | None:
    """The value of one number as written (``"$1,234.50"``, ``"−3"``, ``"18."``), or None."""
    match = _NUMBER.search(str(text).strip())
    return _value(match) if match else None


def _value(match: re.Match[str]) -> float:
    value = float(match.group("value").replace(",", ""))
    return -value if match.group("sign") else value


def extract_number(text: str) -> tuple[float | None, str]:
    """The final answer of a worked solution, and how it was found.

    The first number after the last answer marker ("The answer is", "Answer:",
    "####") that has a number after it; failing that, the last number in the
    text. Commas, ``$`` and ``%`` are dropped; a trailing period is not part of
    the number. Returns ``(None, "no number")`` when the text has no number.
    """
    text = str(text)
    markers = list(NUMBER_MARKERS.finditer(text))
    for index in range(len(markers) - 1, -1, -1):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        match = _NUMBER.search(text, markers[index].end(), end)
        if match:
            return _value(match), f"after {markers[index].group(0).strip()!r}"
    numbers = list(_NUMBER.finditer(text))
    if numbers:
        return _value(numbers[-1]), "last number in the text"
    return None, "no number"


def extract_choice(text: str, choices: Iterable[str] = DEFAULT_CHOICES) -> tuple[str | None, str]:
    """The chosen letter of a multiple-choice reply, and which rule found it.

    Rules in order; the first that yields a valid choice wins:

    1. ``marker``: the letter after the last "answer is" / "Answer:" (also
       "answer is option C", "**Answer:** (C)");
    2. ``lone``: the whole reply is a letter (``"C"``, ``"(C)"``, ``"C."``, ``"**C**"``);
    3. ``leading``: the reply starts with an option label (``"C. Paris"``, ``"(C) Paris"``)
       and marks no other choice as ``(X)``;
    4. ``parenthesised``: exactly one distinct ``(X)`` choice appears anywhere.

    Letters are capitals; a lower-case letter counts only in parentheses or as
    the whole reply, so "the answer is a lot" is not choice A.
    """
    valid = {c.upper() for c in choices}
    text = str(text)
    for match in reversed(list(_MARKED_LETTER.finditer(text))):
        letter = _accepted(match, valid)
        if letter:
            return letter, "marker"
    lone = _LONE_LETTER.match(text)
    if lone and lone.group("letter").upper() in valid:
        return lone.group("letter").upper(), "lone"
    marked = {m.group("letter").upper() for m in _PARENTHESISED.finditer(text)} & valid
    leading = _LEADING_LETTER.match(text)
    if leading:
        letter = (leading.group("p") or leading.group("letter")).upper()
        # "(A) or (B)" hedges: a leading label counts only when no other choice is marked.
        if letter in valid and marked <= {letter}:
            return letter, "leading"
    if len(marked) == 1:
        return marked.pop(), "parenthesised"
    if len(marked) > 1:
        return None, f"several choices in parentheses: {', '.join(sorted(marked))}"
    return None, "no choice letter"


def _accepted(match: re.Match[str], valid: set[str]) -> str | None:
    letter = match.group("letter")
    in_parentheses = match.group(0).rstrip().endswith(")")
    if letter.islower() and not in_parentheses:
        return None
    return letter.upper() if letter.upper() in valid else None
