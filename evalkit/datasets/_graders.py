"""Grader specs: which grader types exist, what each needs, what reference it takes.

A spec is a mapping with ``type`` plus type-specific fields; a bare string such
as ``"numeric"`` means ``{"type": "numeric"}``. Extra fields are kept and passed
on to the grader (e.g. a ``rubric`` for the judge), so only what a grader cannot
work without is checked here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ._problems import json_type_name

__all__ = ["GRADER_TYPES", "JUDGE_MODES", "parse_grader"]

JUDGE_MODES = ("single", "reference")

# (field, message) pairs; the row validator adds file and line.
Issues = list[tuple[str, str]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _check_mcq(spec: Mapping[str, Any]) -> Issues:
    choices = spec.get("choices")
    if choices is None:
        return []
    letters_ok = _is_str_list(choices) and all(len(c) == 1 and c.isalpha() and c.isupper() for c in choices)
    if not letters_ok:
        return [
            ("grader.choices", 'must be a non-empty list of capital letters such as ["A", "B", "C", "D"]')
        ]
    if len(set(choices)) != len(choices):
        return [("grader.choices", "must not repeat a letter")]
    return []


def _check_label(spec: Mapping[str, Any]) -> Issues:
    labels = spec.get("labels")
    if labels is None:
        return [("grader.labels", "is required for grader 'label' (the list of allowed labels)")]
    if not _is_str_list(labels):
        return [
            ("grader.labels", f"must be a non-empty list of non-empty strings, got {json_type_name(labels)}")
        ]
    if len(set(labels)) != len(labels):
        return [("grader.labels", "must not repeat a label")]
    return []


def _check_regex(spec: Mapping[str, Any]) -> Issues:
    pattern = spec.get("pattern")
    if pattern is None:
        return [("grader.pattern", "is required for grader 'regex'")]
    if not isinstance(pattern, str) or not pattern:
        return [("grader.pattern", f"must be a non-empty string, got {json_type_name(pattern)}")]
    try:
        re.compile(pattern)
    except re.error as exc:
        return [("grader.pattern", f"does not compile: {exc}")]
    return []


def _check_json_schema(spec: Mapping[str, Any]) -> Issues:
    schema = spec.get("schema")
    if schema is None:
        return [("grader.schema", "is required for grader 'json_schema'")]
    if not isinstance(schema, Mapping):
        return [("grader.schema", f"must be a JSON schema object, got {json_type_name(schema)}")]
    return []


def _check_code_exec(spec: Mapping[str, Any]) -> Issues:
    issues: Issues = []
    tests, entry_point = spec.get("tests"), spec.get("entry_point")
    if tests is None:
        issues.append(
            ("grader.tests", "is required for grader 'code_exec' (test code defining check(candidate))")
        )
    elif not isinstance(tests, str) or not tests.strip():
        issues.append(
            ("grader.tests", f"must be a non-empty string of Python code, got {json_type_name(tests)}")
        )
    elif not _defines_check(tests):
        issues.append(("grader.tests", "must be Python code that defines check(candidate)"))
    if entry_point is None:
        issues.append(
            ("grader.entry_point", "is required for grader 'code_exec' (the function name to test)")
        )
    elif not isinstance(entry_point, str) or not entry_point.isidentifier():
        issues.append(("grader.entry_point", f"must be a Python identifier, got {entry_point!r}"))
    timeout = spec.get("timeout_s")
    if timeout is not None and not (_is_number(timeout) and timeout > 0):
        issues.append(("grader.timeout_s", f"must be a positive number of seconds, got {timeout!r}"))
    return issues


def _defines_check(code: str) -> bool:
    import ast  # only code_exec items need it; keep `import evalkit` light

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == "check" for node in tree.body)


def _check_judge(spec: Mapping[str, Any]) -> Issues:
    mode = spec.get("mode")
    if mode is None:
        return [("grader.mode", "is required for grader 'judge': 'single' or 'reference'")]
    if mode not in JUDGE_MODES:
        return [("grader.mode", f"must be 'single' or 'reference', got {mode!r}")]
    return []


def _no_fields(spec: Mapping[str, Any]) -> Issues:
    return []


_SPEC_CHECKS: dict[str, Callable[[Mapping[str, Any]], Issues]] = {
    "exact": _no_fields,
    "normalized": _no_fields,
    "alias": _no_fields,
    "numeric": _no_fields,
    "mcq": _check_mcq,
    "label": _check_label,
    "slot_f1": _no_fields,
    "regex": _check_regex,
    "json": _no_fields,
    "json_schema": _check_json_schema,
    "code_exec": _check_code_exec,
    "judge": _check_judge,
}

GRADER_TYPES: tuple[str, ...] = tuple(_SPEC_CHECKS)


def parse_grader(raw: Any) -> tuple[dict[str, Any] | None, Issues]:
    """Normalise a grader spec (a type name or a mapping) to a dict and check it the way the loader does.

    Returns the spec (``None`` if unusable) and the problems found, each ``(field, message)``
    with the field as a dataset row names it (``grader.type``, ``grader.labels``, ...).
    """
    if raw is None:
        return None, [("grader", "is required (a grader type name or an object with 'type')")]
    if isinstance(raw, str):
        raw = {"type": raw.strip()}
    if not isinstance(raw, Mapping):
        return None, [
            ("grader", f"must be a grader type name or an object with 'type', got {json_type_name(raw)}")
        ]
    spec = dict(raw)
    gtype = spec.get("type")
    if gtype is None:
        return None, [("grader.type", "is required")]
    if not isinstance(gtype, str):
        return None, [("grader.type", f"must be a string, got {json_type_name(gtype)}")]
    if gtype not in _SPEC_CHECKS:
        known = ", ".join(GRADER_TYPES)
        return None, [("grader.type", f"unknown grader type {gtype!r}; known types: {known}")]
    issues = _SPEC_CHECKS[gtype](spec)
    return (None if issues else spec), issues
