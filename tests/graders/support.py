"""Shared helpers for the grader tests: items by hand, the bundled suite, the shared source data."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from evalkit.datasets import Dataset, Item, load_dataset
from evalkit.types import Message

REPO = Path(__file__).resolve().parents[2]


def make_item(
    reference: Any, grader: Mapping[str, Any] | str, prompt: str = "question?", **fields: Any
) -> Item:
    """An item built by hand; ``grader`` may be a bare type name."""
    spec = {"type": grader} if isinstance(grader, str) else dict(grader)
    messages = fields.pop("messages", None) or (Message("user", prompt),)
    return Item(
        id=fields.pop("id", "hand-1"),
        task_type=fields.pop("task_type", "test"),
        messages=messages,
        reference=reference,
        grader=spec,
        metadata=fields.pop("metadata", {}),
    )


@functools.cache
def default_suite() -> Dataset:
    """The bundled default suite (loaded once per test session)."""
    return load_dataset("default")


def suite_items(source: str) -> list[Item]:
    """The default suite's items from one source (``gsm8k``, ``humaneval``, ...)."""
    items = [item for item in default_suite().items if item.metadata.get("source") == source]
    assert items, f"the default suite has no {source} items"
    return items


def shared_data() -> Path | None:
    """``../shared/data`` next to the checkout (CI) or ``/work/shared/data`` (a developer machine)."""
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            return candidate
    return None


needs_shared = pytest.mark.skipif(
    shared_data() is None, reason="source data not found at <repo>/../shared/data or /work/shared/data"
)


def shared_file(*parts: str) -> Path:
    """A file of the shared source data (tests using it are marked ``needs_shared``)."""
    root = shared_data()
    assert root is not None
    return root.joinpath(*parts)


def read_jsonl(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file, gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for count, line in enumerate(handle):
            if limit is not None and count >= limit:
                return
            if line.strip():
                yield json.loads(line)
