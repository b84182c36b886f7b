"""Turn one decoded row (a dict, whatever the file format) into an :class:`Item`.

Every field is checked even after an earlier one failed, so a row reports all
of its problems at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..types import Message
from ._graders import parse_grader
from ._model import Item
from ._problems import json_type_name
from ._references import check_reference

__all__ = ["ITEM_FIELDS", "MESSAGE_ROLES", "build_item"]

ITEM_FIELDS = ("id", "task_type", "messages", "prompt", "reference", "grader", "metadata")
MESSAGE_ROLES = ("system", "user", "assistant")

Report = Callable[[str | None, str], None]


def build_item(row: Mapping[str, Any], report: Report) -> Item | None:
    """The row as an Item, or ``None`` after reporting each problem found."""
    counter = _Counter(report)
    report = counter.report
    for key in row:
        if key not in ITEM_FIELDS:
            report(
                str(key),
                f"unknown field; allowed fields are {', '.join(ITEM_FIELDS)} (put extras in metadata)",
            )
    item_id = _required_text(row, "id", report)
    task_type = _required_text(row, "task_type", report)
    messages = _messages_or_prompt(row, report)
    grader, grader_issues = parse_grader(row.get("grader"))
    for field_name, message in grader_issues:
        report(field_name, message)
    reference = row.get("reference")
    if grader is not None:
        reference, problem = check_reference(grader, reference)
        if problem:
            report("reference", problem)
    metadata = row.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, Mapping):
        report("metadata", f"must be an object, got {json_type_name(metadata)}")
    if counter.count:
        return None
    return Item(
        id=item_id,
        task_type=task_type,
        messages=messages,
        reference=reference,
        grader=grader,
        metadata=dict(metadata),
    )


class _Counter:
    """Wraps a report function to know whether this row reported anything."""

    def __init__(self, report: Report):
        self._report, self.count = report, 0

    def report(self, field_name: str | None, message: str) -> None:
        self.count += 1
        self._report(field_name, message)


def _required_text(row: Mapping[str, Any], name: str, report: Report) -> Any:
    value = row.get(name)
    if value is None:
        report(name, "is required")
    elif not isinstance(value, str):
        report(name, f"must be a string, got {json_type_name(value)}")
    elif not value.strip():
        report(name, "must not be empty")
    return value


def _messages_or_prompt(row: Mapping[str, Any], report: Report) -> tuple[Message, ...]:
    messages, prompt = row.get("messages"), row.get("prompt")
    if messages is not None and prompt is not None:
        report("prompt", "give either 'messages' or 'prompt', not both")
        return ()
    if messages is None and prompt is None:
        report("messages", "one of 'messages' (a list of {role, content}) or 'prompt' (a string) is required")
        return ()
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            report("prompt", f"must be a non-empty string, got {json_type_name(prompt)}")
            return ()
        return (Message("user", prompt),)
    return _messages(messages, report)


def _messages(raw: Any, report: Report) -> tuple[Message, ...]:
    if not isinstance(raw, list):
        report("messages", f"must be a list of {{role, content}} objects, got {json_type_name(raw)}")
        return ()
    if not raw:
        report("messages", "must not be empty")
        return ()
    out = [_message(entry, f"messages[{index}]", report) for index, entry in enumerate(raw)]
    if all(message is not None for message in out) and not any(m.role == "user" for m in out):
        report("messages", "must contain at least one user message")
    return tuple(m for m in out if m is not None)


def _message(entry: Any, where: str, report: Report) -> Message | None:
    if not isinstance(entry, Mapping):
        report(where, f"must be an object with role and content, got {json_type_name(entry)}")
        return None
    ok = True
    for key in entry:
        if key not in ("role", "content"):
            report(f"{where}.{key}", "unknown field; a message has only role and content")
            ok = False
    role, content = entry.get("role"), entry.get("content")
    if role is None:
        report(f"{where}.role", "is required")
        ok = False
    elif role not in MESSAGE_ROLES:
        report(f"{where}.role", f"must be one of {', '.join(MESSAGE_ROLES)}, got {role!r}")
        ok = False
    if content is None:
        report(f"{where}.content", "is required")
        ok = False
    elif not isinstance(content, str):
        report(f"{where}.content", f"must be a string, got {json_type_name(content)}")
        ok = False
    return Message(role, content) if ok else None
