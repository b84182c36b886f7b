"""Gold references: which shape each grader type accepts, normalised to one shape.

Normalising here means graders see a single shape per type: a numeric
reference is always an int or float, a ``slot_f1`` reference always a dict and
a ``json`` reference always the decoded JSON value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from ._problems import json_type_name

__all__ = ["check_reference"]

# (normalised reference, problem message or None)
Checked = tuple[Any, str | None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_number_or_aliases(ref: Any, spec: Mapping[str, Any]) -> Checked:
    if isinstance(ref, str) or (_is_number(ref) and math.isfinite(ref)):
        return ref, None
    if isinstance(ref, list) and ref and all(isinstance(r, str) for r in ref):
        return ref, None
    return ref, f"must be a string, a number or a non-empty list of strings, got {json_type_name(ref)}"


def _aliases(ref: Any, spec: Mapping[str, Any]) -> Checked:
    if isinstance(ref, str) and ref.strip():
        return ref, None
    if isinstance(ref, list) and ref and all(isinstance(r, str) and r.strip() for r in ref):
        return ref, None
    return (
        ref,
        f"must be a non-empty string or a non-empty list of non-empty strings, got {json_type_name(ref)}",
    )


def _number(ref: Any, spec: Mapping[str, Any]) -> Checked:
    value = ref
    if isinstance(ref, str):
        try:
            value = float(ref.replace(",", "").strip())
        except ValueError:
            return ref, f"must be a number, got {ref!r}"
        # Keep integers integral so "18" and 18 compare the same downstream.
        value = int(value) if value.is_integer() else value
    if not _is_number(value) or not math.isfinite(value):
        return ref, f"must be a finite number, got {json_type_name(ref)}"
    return value, None


def _choice_letter(ref: Any, spec: Mapping[str, Any]) -> Checked:
    choices = spec.get("choices")
    if not isinstance(ref, str):
        return ref, f"must be the letter of the correct choice, got {json_type_name(ref)}"
    if choices is not None and ref not in choices:
        return ref, f"{ref!r} is not one of the choices {', '.join(choices)}"
    if choices is None and not (len(ref) == 1 and ref.isalpha() and ref.isupper()):
        return ref, f"must be a single capital letter, got {ref!r}"
    return ref, None


def _label(ref: Any, spec: Mapping[str, Any]) -> Checked:
    if not isinstance(ref, str):
        return ref, f"must be one of the grader's labels, got {json_type_name(ref)}"
    if ref not in spec["labels"]:
        return ref, f"{ref!r} is not one of the grader's labels"
    return ref, None


def _slots(ref: Any, spec: Mapping[str, Any]) -> Checked:
    value = ref
    if isinstance(ref, str):
        try:
            value = json.loads(ref)
        except ValueError:
            return ref, "must be an object of slot -> value (or its JSON text); the text is not valid JSON"
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        return ref, f"must be an object mapping slot names to string values, got {json_type_name(value)}"
    return dict(value), None


def _json_value(ref: Any, spec: Mapping[str, Any]) -> Checked:
    if not isinstance(ref, str):
        return ref, None
    try:
        return json.loads(ref), None
    except ValueError:
        return ref, "must be a JSON value or JSON text; the text is not valid JSON"


def _any_value(ref: Any, spec: Mapping[str, Any]) -> Checked:
    return ref, None


def _code(ref: Any, spec: Mapping[str, Any]) -> Checked:
    if isinstance(ref, str) and ref.strip():
        return ref, None
    return ref, f"must be the reference solution's code as a string, got {json_type_name(ref)}"


_REFERENCE_CHECKS: dict[str, Callable[[Any, Mapping[str, Any]], Checked]] = {
    "exact": _text_number_or_aliases,
    "normalized": _text_number_or_aliases,
    "alias": _aliases,
    "numeric": _number,
    "mcq": _choice_letter,
    "label": _label,
    "slot_f1": _slots,
    "regex": _text_number_or_aliases,
    "json": _json_value,
    "json_schema": _any_value,
    "code_exec": _code,
    "judge": _aliases,
}


def check_reference(spec: Mapping[str, Any], reference: Any) -> Checked:
    """Check ``reference`` against a valid grader ``spec``; return it normalised.

    Only judge-graded items may leave the reference out, and only in mode
    ``single`` (mode ``reference`` compares against it).
    """
    gtype = spec["type"]
    if reference is None:
        if gtype == "judge" and spec["mode"] == "single":
            return None, None
        if gtype == "judge":
            return None, "is required for judge mode 'reference'"
        return None, f"is required for grader {gtype!r} (only judge-graded items may omit it)"
    return _REFERENCE_CHECKS[gtype](reference, spec)
