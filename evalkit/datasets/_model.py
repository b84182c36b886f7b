"""The loaded shapes: :class:`Item` and :class:`Dataset`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..types import Message

__all__ = ["Dataset", "Item"]


@dataclass(frozen=True, slots=True)
class Item:
    """One benchmark prompt, its gold answer and how to grade it.

    ``grader`` is always a dict with ``type`` (a bare grader name in the file is
    expanded). ``reference`` is ``None`` only for judge-graded items; its shape
    depends on the grader (a number for ``numeric``, a dict for ``slot_f1``, a
    string or a list of alias strings otherwise). ``grader``, ``reference`` and
    ``metadata`` are plain JSON values so items pickle and serialise as they
    are; treat them as read-only.
    """

    id: str
    task_type: str
    messages: tuple[Message, ...]
    reference: Any
    grader: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        # The JSON fields are dicts/lists; ids are unique within a dataset, so hash on them.
        return hash((self.id, self.task_type))

    @property
    def prompt_text(self) -> str:
        """The content of the last user message (what the item asks)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @property
    def grader_type(self) -> str:
        """The grader's ``type``, e.g. ``"numeric"``."""
        return str(self.grader["type"])


@dataclass(frozen=True, slots=True)
class Dataset:
    """A validated dataset file: its items in file order plus provenance.

    ``name`` is the bundled suite name or the file's stem; ``sha256`` is the
    hash of the file's bytes, so results can record exactly what was run.
    """

    name: str
    path: Path
    items: tuple[Item, ...]
    sha256: str

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    @property
    def task_types(self) -> tuple[str, ...]:
        """The distinct task types, in order of first appearance."""
        return tuple(dict.fromkeys(item.task_type for item in self.items))
