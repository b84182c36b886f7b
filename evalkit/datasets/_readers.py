"""Read a dataset file's bytes into ``(line, row dict)`` pairs, one per item.

Readers only decode; :mod:`._rows` checks the fields. Decoding problems (bad
JSON, a missing CSV column) go to the :class:`ProblemLog` with their line.

CSV and Parquet cells are flat, so the structured columns may hold JSON text:
``messages`` and ``metadata`` cells are always decoded as JSON; a ``grader``
cell is decoded when it starts with ``{`` and is a bare grader name otherwise;
a ``reference`` cell is decoded when it starts with ``[``, ``{`` or ``"`` (so
``18`` and ``Paris`` stay text and ``["USA", "US"]`` becomes a list). Empty
CSV cells and Parquet nulls mean "absent".
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._json import JSONLimitError, check_depth, loads_checked
from ._problems import ProblemLog, json_type_name
from ._rows import ITEM_FIELDS

__all__ = ["READERS", "RawRow", "read_csv", "read_jsonl", "read_parquet"]

_REQUIRED_COLUMNS = ("id", "task_type", "grader")


@dataclass(frozen=True, slots=True)
class RawRow:
    """One decoded row and where it is; ``undecodable`` names cells that were not valid JSON.

    Those cells were already reported, so the row validator keeps quiet about
    them but still checks the row's other fields.
    """

    line: int
    fields: dict[str, Any]
    undecodable: frozenset[str] = frozenset()


Rows = list[RawRow]


def read_jsonl(data: bytes, log: ProblemLog) -> Rows:
    """One JSON object per line; blank lines are skipped but still counted."""
    rows: Rows = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").strip()
        except UnicodeDecodeError as exc:
            log.add(line_no, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the line)")
            continue
        if not text:
            continue
        try:
            # Bounded: NaN/Infinity (no gold answer is one), deep nesting and absurdly long integers are
            # refused with a message instead of a RecursionError or Python's own.
            row = loads_checked(text)
        except json.JSONDecodeError as exc:
            log.add(line_no, None, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        except ValueError as exc:
            log.add(line_no, None, f"invalid JSON: {exc}")
            continue
        if not isinstance(row, dict):
            log.add(line_no, None, f"expected a JSON object, got {json_type_name(row)}")
            continue
        rows.append(RawRow(line_no, row))
    return rows


def _check_columns(columns: list[str], log: ProblemLog, line: int) -> bool:
    """Report missing, unknown and repeated columns; True when all is well."""
    before = len(log.problems)
    for name in _REQUIRED_COLUMNS:
        if name not in columns:
            log.add(line, name, "missing required column")
    if "messages" not in columns and "prompt" not in columns:
        log.add(line, "messages", "missing required column: need a 'messages' or a 'prompt' column")
    for name in dict.fromkeys(columns):
        if name not in ITEM_FIELDS:
            log.add(line, name, f"unknown column; allowed columns are {', '.join(ITEM_FIELDS)}")
        elif columns.count(name) > 1:
            log.add(line, name, "column appears more than once")
    return len(log.problems) == before


def _decode_cell(column: str, value: str, line: int, log: ProblemLog) -> tuple[bool, Any]:
    """A flat text cell as the value it stands for; (False, None) if undecodable."""
    text = value.strip()
    wants_json = (
        column in ("messages", "metadata")
        or (column == "grader" and text.startswith("{"))
        or (column == "reference" and text[:1] in ("[", "{", '"'))
    )
    if not wants_json:
        return True, text if column == "grader" else value
    try:
        return True, loads_checked(text)
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        log.add(line, column, f"cell is not valid JSON: {detail}")
        return False, None


def read_csv(data: bytes, log: ProblemLog) -> Rows:
    """A header row naming the item fields, then one item per record."""
    import csv  # CSV datasets are the exception; keep `import evalkit` light

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        log.add(line, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
        return []
    # Long-document prompts can exceed csv's default 128 KiB cell limit.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not _check_columns([c.strip() for c in header], log, line=1):
            return []
        columns = [c.strip() for c in header]
        rows: Rows = []
        next_line = reader.line_num + 1
        for record in reader:
            # line_num is where the record ended; a quoted cell may span lines.
            line, next_line = next_line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(columns):
                log.add(line, None, f"expected {len(columns)} cells like the header, got {len(record)}")
                continue
            rows.append(
                _decode_row(dict(zip(columns, record, strict=True)), line, log, is_empty=lambda v: v == "")
            )
    except csv.Error as exc:
        log.add(reader.line_num, None, f"malformed CSV: {exc}")
        return []
    return rows


def _decode_row(cells: dict[str, Any], line: int, log: ProblemLog, is_empty: Callable[[Any], bool]) -> RawRow:
    row: dict[str, Any] = {}
    undecodable = set()
    for column, value in cells.items():
        if is_empty(value):
            continue
        if isinstance(value, str) and column in ("messages", "metadata", "grader", "reference"):
            decoded, value = _decode_cell(column, value, line, log)
            if not decoded:
                undecodable.add(column)
        row[column] = value
    return RawRow(line, row, frozenset(undecodable))


def read_parquet(data: bytes, log: ProblemLog) -> Rows:
    """Columns named like the item fields; line numbers are 1-based row numbers.

    Structured columns may be native (list of structs for ``messages``, a
    struct for ``grader``) or JSON text. Struct fields that are null are
    dropped, because Parquet gives every row the union of all rows' fields.
    """
    columns, records = _parquet_records(data, log)
    if records is None or not _check_columns(columns, log, line=1):
        return []
    rows: Rows = []
    for index, record in enumerate(records, start=1):
        try:
            check_depth(record)  # native nested columns: _drop_nulls and every later walk recurse
        except JSONLimitError as exc:
            log.add(index, None, f"row is {exc}")
            continue
        cells = {k: _drop_nulls(v) for k, v in record.items()}
        rows.append(_decode_row(cells, index, log, is_empty=lambda v: v is None))
    return rows


def _parquet_records(data: bytes, log: ProblemLog) -> tuple[list[str], list[dict[str, Any]] | None]:
    # pyarrow first (the usual Parquet reader), polars if that is what is installed.
    for read in (_records_with_pyarrow, _records_with_polars):
        try:
            return read(data)
        except ImportError:
            continue
        except Exception as exc:  # noqa: BLE001 - any reader failure means "cannot read this file"
            log.add(None, None, f"cannot read Parquet file: {exc}")
            return [], None
    log.add(None, None, "reading Parquet needs pyarrow: pip install pyarrow")
    return [], None


def _records_with_pyarrow(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow.parquet as pq  # optional dependency, imported only for Parquet files

    table = pq.read_table(io.BytesIO(data))
    return list(table.column_names), table.to_pylist()


def _records_with_polars(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    import polars as pl  # optional dependency, imported only for Parquet files

    frame = pl.read_parquet(io.BytesIO(data))
    return list(frame.columns), frame.to_dicts()


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


READERS: dict[str, Callable[[bytes, ProblemLog], Rows]] = {
    ".jsonl": read_jsonl,
    ".csv": read_csv,
    ".parquet": read_parquet,
}
