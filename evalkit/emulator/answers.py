"""The answer book: dataset items indexed by their prompt, so known prompts get gradable answers.

Rows are read straight from dataset JSONL files (the schema of
:mod:`evalkit.datasets`: ``id``, ``task_type``, ``messages`` or ``prompt``,
``reference``, ``grader``, ``metadata``) without depending on its loader, and
indexed by a hash of the normalised last user message. The emulator looks up
the last user message of every chat request here.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._json import loads_checked
from ..errors import ConfigError
from ._seeding import stable_digest

try:  # the bundled-suite locator belongs to evalkit.datasets; fall back to the checkout layout
    from ..datasets import bundled_suite_path, bundled_suites
except ImportError:  # pragma: no cover - only while evalkit.datasets is absent
    bundled_suite_path = bundled_suites = None  # type: ignore[assignment]

__all__ = ["AnswerBook", "BookItem", "bundled_dataset_files", "normalise_prompt", "prompt_key"]


def normalise_prompt(text: str) -> str:
    """Whitespace collapsed, case folded: how prompts are compared."""
    return " ".join(text.split()).casefold()


def prompt_key(text: str) -> str:
    """The index key of a prompt."""
    return stable_digest(normalise_prompt(text))


@dataclass(frozen=True, slots=True)
class BookItem:
    """One dataset item as the emulator needs it."""

    id: str
    task_type: str
    prompt: str
    reference: Any
    grader: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def grader_type(self) -> str:
        """The grader's ``type`` (``numeric``, ``mcq``, ``judge``, ...)."""
        return str(self.grader.get("type", ""))


class AnswerBook:
    """Dataset items by prompt; the first item wins when two share a prompt."""

    def __init__(self, items: Iterable[BookItem] = ()) -> None:
        self._by_key: dict[str, BookItem] = {}
        self._by_grader: dict[str, list[BookItem]] = {}
        self.skipped_rows = 0
        for item in items:
            self.add(item)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> AnswerBook:
        """A book of every row of ``paths`` (JSONL, optionally ``.gz``)."""
        book = cls()
        for path in paths:
            for item in _cached_items(Path(path)):
                book.add(item)
        return book

    def add(self, item: BookItem) -> None:
        """Index ``item`` under its prompt."""
        key = prompt_key(item.prompt)
        if key not in self._by_key:
            self._by_key[key] = item
            self._by_grader.setdefault(item.grader_type, []).append(item)

    def lookup(self, prompt: str) -> BookItem | None:
        """The item whose last user message is ``prompt`` (after normalising), or None."""
        return self._by_key.get(prompt_key(prompt))

    def peers(self, grader_type: str) -> Sequence[BookItem]:
        """Every item graded by ``grader_type``: the pool wrong answers borrow from."""
        return self._by_grader.get(grader_type, ())

    def __len__(self) -> int:
        return len(self._by_key)


def bundled_dataset_files() -> list[Path]:
    """The bundled suites' JSONL files (``datasets/*.jsonl`` in a checkout), possibly none."""
    if bundled_suites is not None:
        try:
            return [bundled_suite_path(name) for name in bundled_suites()]
        except ConfigError:
            return []
    checkout = Path(__file__).resolve().parents[2] / "datasets"
    return sorted(checkout.glob("*.jsonl"))


_cache_lock = threading.Lock()
_file_cache: dict[tuple[str, float, int], tuple[BookItem, ...]] = {}


def _cached_items(path: Path) -> tuple[BookItem, ...]:
    # Tests start many emulators over the same suites: parse each file version once.
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read dataset: {exc.strerror or exc}", file=str(path)) from None
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    with _cache_lock:
        if key not in _file_cache:
            _file_cache[key] = tuple(_read_items(path))
        return _file_cache[key]


def _read_items(path: Path) -> Iterable[BookItem]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"not valid UTF-8 (byte {exc.start} of the line)", file=str(path),
                                  line=line_no) from None
            if not line.strip():
                continue
            try:
                row = loads_checked(line)  # bounded: a 100k-deep row must not take the emulator down
            except ValueError as exc:
                raise ConfigError(f"not valid JSON: {exc}", file=str(path), line=line_no) from None
            item = item_from_row(row)
            if item is not None:
                yield item


def item_from_row(row: Any) -> BookItem | None:
    """A :class:`BookItem` from one dataset row, or None when the row has no usable prompt."""
    if not isinstance(row, Mapping) or row.get("id") is None:
        return None
    prompt = _last_user_message(row.get("messages")) if row.get("messages") else row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    grader = row.get("grader") or {}
    if isinstance(grader, str):
        grader = {"type": grader}
    if not isinstance(grader, Mapping):
        grader = {}
    metadata = row.get("metadata") if isinstance(row.get("metadata"), Mapping) else {}
    return BookItem(
        id=str(row["id"]),
        task_type=str(row.get("task_type") or "default"),
        prompt=prompt,
        reference=row.get("reference"),
        grader=dict(grader),
        metadata=dict(metadata),
    )


def _last_user_message(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return content_text(message.get("content"))
    return None


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping) and "text" in part
        )
    return ""
