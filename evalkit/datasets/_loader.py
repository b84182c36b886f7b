"""``load_dataset``: find the file, read it, validate every row, all or nothing."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ._bundled import SUITE_NAME, bundled_suite_path, bundled_suites
from ._model import Dataset, Item
from ._problems import ProblemLog
from ._readers import READERS, RawRow
from ._rows import build_item

__all__ = ["load_dataset"]


def load_dataset(path_or_name: str | os.PathLike[str]) -> Dataset:
    """Load and validate a dataset file or a bundled suite.

    ``path_or_name`` is a bundled suite name (``"default"``, ``"smoke"``; see
    :func:`bundled_suites`) or the path of a ``.jsonl``, ``.csv`` or
    ``.parquet`` file. Every row is checked; if anything is wrong a single
    :class:`~evalkit.datasets.DatasetError` (a ``ConfigError``) lists every
    problem as ``file:line: field: problem`` and nothing is returned.
    """
    path, name = _resolve(path_or_name)
    file = str(path)
    if not path.is_file():
        raise ConfigError("dataset file not found", file=file)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        expected = ", ".join(READERS)
        raise ConfigError(
            f"unknown dataset file extension {path.suffix!r}; expected one of {expected}", file=file
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read dataset file: {exc.strerror or exc}", file=file) from exc
    log = ProblemLog(file)
    rows = reader(data, log)
    items = _validate_rows(rows, log)
    if not rows and not log.problems:
        log.add(None, None, "dataset is empty: it has no items")
    log.raise_if_any()
    return Dataset(name=name, path=path, items=tuple(items), sha256=hashlib.sha256(data).hexdigest())


def _resolve(path_or_name: str | os.PathLike[str]) -> tuple[Path, str]:
    """A bare name that is a bundled suite loads the suite; anything else is a path."""
    if isinstance(path_or_name, str) and SUITE_NAME.fullmatch(path_or_name):
        if path_or_name in bundled_suites():
            return bundled_suite_path(path_or_name), path_or_name
        if not Path(path_or_name).exists():
            available = ", ".join(bundled_suites()) or "none found"
            raise ConfigError(
                f"no dataset file or bundled suite named {path_or_name!r} (bundled suites: {available})",
                field="dataset",
            )
    path = Path(path_or_name)
    return path, path.stem


def _validate_rows(rows: list[RawRow], log: ProblemLog) -> list[Item]:
    items: list[Item] = []
    first_line_of_id: dict[str, int] = {}
    for raw in rows:
        item = build_item(raw.fields, _row_reporter(raw, log))
        item_id = raw.fields.get("id")
        if isinstance(item_id, str):
            # Checked even for rows with other problems, so every duplicate is reported.
            if item_id in first_line_of_id:
                log.add(
                    raw.line,
                    "id",
                    f"duplicate id {item_id!r} (first used on line {first_line_of_id[item_id]})",
                )
                continue
            first_line_of_id[item_id] = raw.line
        if item is not None:
            items.append(item)
    return items


def _row_reporter(raw: RawRow, log: ProblemLog) -> Callable[[str | None, str], None]:
    """Reports a row's problems at its line, except for cells already reported as bad JSON."""

    def report(field: str | None, message: str) -> None:
        top_field = re.split(r"[.\[]", field, maxsplit=1)[0] if field else None
        if top_field not in raw.undecodable:
            log.add(raw.line, field, message)

    return report
