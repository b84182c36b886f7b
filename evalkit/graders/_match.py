"""Graders that compare an extracted answer with the reference: no process, no model.

Each class documents its extraction rule; the shared pieces live in
:mod:`._text` (normalisation) and :mod:`._extract` (numbers, letters).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import Grade, short
from ._extract import DEFAULT_CHOICES, extract_choice, extract_number, parse_number
from ._text import contains_phrase, last_line, loose_normalize, squad_normalize, text_after

if TYPE_CHECKING:
    from ..datasets import Item

__all__ = ["AliasGrader", "ExactGrader", "MCQGrader", "NormalizedGrader", "NumericGrader", "RegexGrader"]

_OPTION_REFERENCE = re.compile(r"\(([A-Z])\)")
_LEADING_OPTION = re.compile(r"\(?([A-Z])\)(?:\s|$)|([A-Z])$")


def references(item: Item) -> list[str]:
    """The item's reference as a list of strings (one for a scalar, every alias for a list)."""
    ref = item.reference
    values = ref if isinstance(ref, (list, tuple)) else [ref]
    return [_as_text(value) for value in values if value is not None]


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _AnswerSpanGrader:
    """Shared extraction of :class:`ExactGrader` and :class:`NormalizedGrader`."""

    name = ""

    def __init__(self, answer_after: str | None = None) -> None:
        if answer_after is not None and (not isinstance(answer_after, str) or not answer_after.strip()):
            raise ConfigError(
                f"must be a non-empty string, got {answer_after!r}", field="grader.answer_after"
            )
        self.answer_after = answer_after

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> _AnswerSpanGrader:
        """The grader a dataset spec describes (``answer_after`` optional)."""
        return cls(answer_after=spec.get("answer_after"))

    def extract(self, output: str) -> tuple[str, bool]:
        """The answer span and whether ``answer_after`` was found (False when not asked for)."""
        if self.answer_after:
            after = text_after(output, self.answer_after)
            if after is not None:
                return after, True
        return last_line(output), False

    def matches(self, answer: str, reference: str) -> bool:  # pragma: no cover - abstract
        """Whether the extracted ``answer`` matches one ``reference``."""
        raise NotImplementedError

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when the extracted answer equals one of the references."""
        answer, marker_found = self.extract(output)
        details = {"extracted": answer, "marker_found": marker_found}
        if self.answer_after and not marker_found:
            details["marker_missing"] = self.answer_after
        for ref in references(item):
            if self.matches(answer, ref):
                return Grade.correct(f"answer {answer!r} matches {ref!r}", **details)
        expected = " / ".join(repr(r) for r in references(item))
        return Grade.wrong(f"answer {short(answer, 60)!r} does not match {short(expected, 80)}", **details)


class ExactGrader(_AnswerSpanGrader):
    """Exact match of the final answer, as BBH grades it.

    The answer is the text after the last ``answer_after`` marker (e.g. "So the
    answer is") on its line, or the last non-blank line when there is no
    marker. Both sides are compared case-folded with whitespace collapsed,
    markdown/quote wrappers and a trailing period removed. An option-style
    reference ``"(B)"`` also accepts ``"B"``, ``"B)"`` and ``"(B) 12/14/2026"``.
    """

    name = "exact"

    def matches(self, answer: str, reference: str) -> bool:
        """Equal after :func:`loose_normalize`, or the same option letter."""
        if loose_normalize(answer) == loose_normalize(reference):
            return True
        option = _OPTION_REFERENCE.fullmatch(reference.strip())
        if option:
            given = _LEADING_OPTION.match(loose_normalize(answer).upper())
            return bool(given) and (given.group(1) or given.group(2)) == option.group(1)
        return False


class NormalizedGrader(_AnswerSpanGrader):
    """Like :class:`ExactGrader`, but both sides SQuAD-normalised (no punctuation or articles)."""

    name = "normalized"

    def matches(self, answer: str, reference: str) -> bool:
        """Equal after :func:`squad_normalize`."""
        return squad_normalize(answer) == squad_normalize(reference)


class AliasGrader:
    """Short-answer QA against a list of aliases (NQ-Open, lost-in-the-middle).

    Both sides are SQuAD-normalised. The output passes when it equals an alias
    or, with ``containment`` (the default), when an alias occurs in it as
    whole words: lost-in-the-middle's "best subspan" accuracy, which lets
    "The answer is Rome." match ``Rome``. Whole words keep the alias ``US``
    from matching "because". Containment credits a rambling answer that names
    the alias among others; set ``containment: false`` for strict match
    (of the whole output or its last line).
    """

    name = "alias"

    def __init__(self, containment: bool = True) -> None:
        if not isinstance(containment, bool):
            raise ConfigError(f"must be true or false, got {containment!r}", field="grader.containment")
        self.containment = containment

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> AliasGrader:
        """The grader a dataset spec describes (``containment`` optional, default true)."""
        return cls(containment=spec.get("containment", True))

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when an alias equals (or, with containment, occurs in) the normalised output."""
        whole, tail = squad_normalize(output), squad_normalize(last_line(output))
        for alias in references(item):
            target = squad_normalize(alias)
            if not target:
                # All punctuation (NQ has "---"): normalisation would erase it, so compare as written.
                if alias.strip() and alias.strip() in output:
                    return Grade.correct(f"output contains alias {alias!r}", matched=alias, rule="verbatim")
                continue
            if target in (whole, tail):
                return Grade.correct(f"output equals alias {alias!r}", matched=alias, rule="equal")
            if self.containment and contains_phrase(whole, target):
                return Grade.correct(f"output contains alias {alias!r}", matched=alias, rule="contains")
        aliases = ", ".join(repr(a) for a in references(item))
        verb = "contains" if self.containment else "equals"
        return Grade.wrong(f"output {verb} none of the aliases {short(aliases, 120)}", normalized=whole[:200])


class NumericGrader:
    """The final number of a worked solution (GSM8K, LongChat lines) against a numeric reference.

    Extraction (see :func:`extract_number`): the first number after the last
    "The answer is" / "Answer:" / "####", else the last number; commas, ``$``
    and ``%`` dropped. Equal when ``|got - ref| <= tolerance`` (absolute,
    default 1e-6), with a relative slack of 1e-9 so float rounding of large
    values (``1e15``) does not count as a miss; an off-by-one never passes.
    """

    name = "numeric"

    def __init__(self, tolerance: float = 1e-6) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise ConfigError(f"must be a number >= 0, got {tolerance!r}", field="grader.tolerance")
        self.tolerance = float(tolerance)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> NumericGrader:
        """The grader a dataset spec describes (``tolerance`` optional, default 1e-6)."""
        return cls(tolerance=spec.get("tolerance", 1e-6))

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when the extracted number equals the reference within the tolerance."""
        reference = _reference_number(item.reference)
        got, rule = extract_number(output)
        if got is None:
            return Grade.wrong("no number in the output", rule=rule)
        shown = _as_text(got)
        close = math.isclose(got, reference, rel_tol=1e-9, abs_tol=self.tolerance)
        verdict = "equals" if close else "differs from"
        return Grade.of(close, f"{shown} ({rule}) {verdict} {_as_text(reference)}", extracted=got, rule=rule)


def _reference_number(reference: Any) -> float:
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        return float(reference)
    value = parse_number(str(reference))
    if value is None:
        raise ConfigError(f"numeric grader needs a number as reference, got {reference!r}", field="reference")
    return value


class MCQGrader:
    """The letter of a multiple-choice reply (MMLU) against the reference letter.

    Extraction rules, first match wins (see :func:`extract_choice`): the letter
    after the last "answer is" / "Answer:", a reply that is only a letter, a
    reply that starts with an option label, the one choice written as ``(X)``.
    Only letters in ``choices`` (default A–J) count.
    """

    name = "mcq"

    def __init__(self, choices: Sequence[str] | None = None) -> None:
        self.choices = tuple(choices) if choices else DEFAULT_CHOICES

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> MCQGrader:
        """The grader a dataset spec describes (``choices`` optional)."""
        return cls(choices=spec.get("choices"))

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when the extracted letter is the reference letter."""
        expected = str(item.reference).strip().strip("()").upper()
        letter, rule = extract_choice(output, self.choices)
        if letter is None:
            return Grade.wrong(f"no answer letter found ({rule})", rule=rule)
        verdict = "is" if letter == expected else "is not"
        return Grade.of(
            letter == expected, f"chose {letter} ({rule}), {verdict} {expected}", extracted=letter, rule=rule
        )


_FLAG_LETTERS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}
_FLAG_NAMES = {
    "IGNORECASE": re.IGNORECASE,
    "MULTILINE": re.MULTILINE,
    "DOTALL": re.DOTALL,
    "VERBOSE": re.VERBOSE,
    "ASCII": re.ASCII,
}


def regex_flags(raw: Any) -> re.RegexFlag:
    """Flags from a spec: letters (``"im"``), names (``"IGNORECASE|DOTALL"``) or a list of either."""
    if raw is None:
        return re.RegexFlag(0)
    parts = raw if isinstance(raw, (list, tuple)) else re.split(r"[|,\s]+", str(raw))
    flags = re.RegexFlag(0)
    for part in (str(p).strip() for p in parts):
        if not part:
            continue
        name = part.upper().removeprefix("RE.")
        if name in _FLAG_NAMES:
            flags |= _FLAG_NAMES[name]
        elif all(ch in _FLAG_LETTERS for ch in part.lower()):
            for ch in part.lower():
                flags |= _FLAG_LETTERS[ch]
        else:
            known = ", ".join(_FLAG_NAMES)
            raise ConfigError(
                f"unknown regex flag {part!r}; use letters imsxa or {known}", field="grader.flags"
            )
    return flags


class RegexGrader:
    """Pass when ``re.search(pattern, output, flags)`` finds a match (``flags`` from the spec)."""

    name = "regex"

    def __init__(self, pattern: str, flags: Any = None) -> None:
        try:
            self.pattern = re.compile(pattern, regex_flags(flags))
        except (re.error, TypeError) as exc:
            raise ConfigError(f"does not compile: {exc}", field="grader.pattern") from None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RegexGrader:
        """The grader a dataset spec describes (``pattern`` required, ``flags`` optional)."""
        return cls(pattern=spec.get("pattern"), flags=spec.get("flags"))

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass on the first match anywhere in the output."""
        match = self.pattern.search(output)
        if match is None:
            return Grade.wrong(f"no match for /{short(self.pattern.pattern, 80)}/")
        return Grade.correct(f"matched {short(match.group(0), 80)!r}", matched=match.group(0)[:200])
