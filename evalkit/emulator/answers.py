"""The answer book: dataset items indexed by their prompt, so known prompts get gradable answers.

Suites are read by :func:`evalkit.datasets.load_dataset` (the same reader, checks
and error messages as a benchmark run's), and their items indexed by a hash of
the normalised last user message. The emulator looks up the last user message of
every chat request here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..datasets import bundled_suite_path, bundled_suites, load_dataset
from ._seeding import stable_digest

__all__ = [
    "AnswerBook",
    "BookItem",
    "Registration",
    "book_item",
    "bundled_dataset_files",
    "normalise_prompt",
    "prompt_key",
]


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


class Registration(NamedTuple):
    """What :meth:`AnswerBook.register` did with a batch of items.

    ``registered``: items whose prompts are now answered for them (new prompts, and prompts the
    book answered for a different item: a different task type, reference or grader, now
    replaced). ``already_known``: items the book already answered exactly so (a bundled suite's
    own items, or a suite registered before). ``shared_prompt``: items whose prompt an earlier
    item of the same batch took; they get that item's answers (the first item wins, as in files).
    """

    registered: int
    already_known: int
    shared_prompt: int = 0


class AnswerBook:
    """Dataset items by prompt; the first item wins when two share a prompt.

    Safe to :meth:`register` into while the emulator answers from it: writers take a lock,
    and readers see either the old or the new item of a prompt, never a half-made index.
    """

    def __init__(self, items: Iterable[BookItem] = ()) -> None:
        self._by_key: dict[str, BookItem] = {}
        self._by_grader: dict[str, list[BookItem]] = {}
        self._lock = threading.Lock()
        self.skipped_rows = 0
        for item in items:
            self.add(item)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> AnswerBook:
        """A book of every item of ``paths``: dataset files (JSONL, CSV, Parquet) or bundled suite names,
        as :func:`evalkit.datasets.load_dataset` takes them; its ``ConfigError`` for a bad file."""
        book = cls()
        for path in paths:
            for item in _cached_items(path):
                book.add(item)
        return book

    def add(self, item: BookItem) -> None:
        """Index ``item`` under its prompt (unless another item has that prompt already)."""
        key = prompt_key(item.prompt)
        with self._lock:
            if key not in self._by_key:
                self._by_key[key] = item
                self._by_grader.setdefault(item.grader_type, []).append(item)

    def register(self, items: Iterable[Any]) -> Registration:
        """Answer the prompts of ``items`` for them from now on; see :class:`Registration` for the counts.

        ``items`` are :class:`evalkit.datasets.Item` s (``.id``, ``.task_type``, ``.messages``,
        ``.reference``, ``.grader``, ``.metadata``), dataset rows (mappings) or :class:`BookItem` s;
        one without a user message is skipped (not counted). A registered item replaces a
        different item of the same prompt, so a suite's own reference is the one answered.
        """
        registered = known = shared = 0
        batch: set[str] = set()
        with self._lock:
            replaced: list[BookItem] = []
            added: list[BookItem] = []
            for raw in items:
                item = book_item(raw)
                if item is None:
                    continue
                key = prompt_key(item.prompt)
                current = self._by_key.get(key)
                if key in batch:
                    shared += 1
                elif current is not None and _same_answers(current, item):
                    known += 1
                else:
                    if current is not None:
                        replaced.append(current)
                    self._by_key[key] = item
                    added.append(item)
                    registered += 1
                batch.add(key)
            self._reindex_peers(replaced, added)
        return Registration(registered, known, shared)

    def _reindex_peers(self, removed: list[BookItem], added: list[BookItem]) -> None:
        """Swap in new peer lists (never mutate one a reader may be iterating)."""
        gone = {id(item) for item in removed}
        for grader_type in {item.grader_type for item in (*removed, *added)}:
            kept = [p for p in self._by_grader.get(grader_type, ()) if id(p) not in gone]
            self._by_grader[grader_type] = kept + [a for a in added if a.grader_type == grader_type]

    def lookup(self, prompt: str) -> BookItem | None:
        """The item whose last user message is ``prompt`` (after normalising), or None."""
        return self._by_key.get(prompt_key(prompt))

    def peers(self, grader_type: str) -> Sequence[BookItem]:
        """Every item graded by ``grader_type``: the pool wrong answers borrow from."""
        return self._by_grader.get(grader_type, ())

    def __len__(self) -> int:
        return len(self._by_key)


def _same_answers(a: BookItem, b: BookItem) -> bool:
    """Whether two items of one prompt get the same answers (id and metadata do not change an answer)."""
    return (a.task_type, a.reference, dict(a.grader)) == (b.task_type, b.reference, dict(b.grader))


def bundled_dataset_files() -> list[Path]:
    """The bundled suites' files (:func:`evalkit.datasets.bundled_suites`), possibly none."""
    return [bundled_suite_path(name) for name in bundled_suites()]


_cache_lock = threading.Lock()
_file_cache: dict[tuple[str, float, int], tuple[BookItem, ...]] = {}


def _cached_items(path: str | os.PathLike[str]) -> tuple[BookItem, ...]:
    """The items of one dataset file, loaded once per version of the file.

    Tests start many emulators over the same suites; a name that is no file (a bundled suite's
    name, a missing file) goes to the loader every time, which resolves it or says what is wrong.
    """
    try:
        stat = os.stat(path)
    except OSError:
        return _load_items(path)
    key = (os.path.realpath(path), stat.st_mtime, stat.st_size)
    with _cache_lock:
        if key not in _file_cache:
            _file_cache[key] = _load_items(path)
        return _file_cache[key]


def _load_items(path: str | os.PathLike[str]) -> tuple[BookItem, ...]:
    items = (book_item(item) for item in load_dataset(path).items)
    return tuple(item for item in items if item is not None)


def item_from_row(row: Any) -> BookItem | None:
    """A :class:`BookItem` from one dataset row, or None when the row has no usable prompt."""
    if not isinstance(row, Mapping) or row.get("id") is None:
        return None
    prompt = _last_user_message(row.get("messages")) if row.get("messages") else row.get("prompt")
    return _book_item(row["id"], row.get("task_type"), prompt, row.get("reference"), row.get("grader"),
                      row.get("metadata"))


def book_item(item: Any) -> BookItem | None:
    """A :class:`BookItem` from an :class:`evalkit.datasets.Item`, a dataset row or a BookItem; None without
    a prompt."""
    if isinstance(item, BookItem):
        return item
    if isinstance(item, Mapping):
        return item_from_row(item)
    prompt = _last_user_message(getattr(item, "messages", None))
    return _book_item(item.id, item.task_type, prompt, item.reference, item.grader, item.metadata)


def _book_item(id_: Any, task_type: Any, prompt: Any, reference: Any, grader: Any, metadata: Any) -> BookItem | None:
    if id_ is None or not isinstance(prompt, str) or not prompt.strip():
        return None
    if isinstance(grader, str):
        grader = {"type": grader}
    return BookItem(
        id=str(id_),
        task_type=str(task_type or "default"),
        prompt=prompt,
        reference=reference,
        grader=dict(grader) if isinstance(grader, Mapping) else {},
        metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
    )


def _last_user_message(messages: Any) -> str | None:
    """The text of the last user turn of row messages (mappings) or :class:`evalkit.types.Message` s."""
    if not isinstance(messages, (list, tuple)):
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping):
            role, content = message.get("role"), message.get("content")
        else:
            role, content = getattr(message, "role", None), getattr(message, "content", None)
        if role == "user":
            return content_text(content)
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
