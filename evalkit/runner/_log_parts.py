"""Log parts (``log/part-NNNN.jsonl``, one line per finished cell) as polars frames with the stored schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .schema import ATTEMPT_COLUMNS, CELL, RESULT_COLUMNS, PolarsType

if TYPE_CHECKING:
    import polars as pl

__all__ = ["frames", "read_log_part", "rows_of"]


def read_log_part(part: Path) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(results, attempts) of one log part; ``None`` when it holds no complete line.

    polars reads clean parts natively (the common case: a run that ended); a
    part with a torn last line, left by a crash, goes through the line reader.
    """
    import polars as pl

    from .schema import attempt_schema, result_schema

    try:
        raw = pl.read_ndjson(part, schema=_log_schema())
    except Exception:  # noqa: BLE001 - any parse problem: fall back to the forgiving reader
        rows = list(rows_of(part))
        return frames(rows) if rows else None
    if raw.is_empty():
        return None
    results = raw.drop("attempts").cast(pl.Schema(result_schema()))
    attempts = (
        raw.select(*CELL, pl.col("attempts"))
        .with_columns(pl.int_ranges(pl.col("attempts").list.len()).alias("attempt"))
        .explode("attempts", "attempt")
        .unnest("attempts")
        .select(list(ATTEMPT_COLUMNS))
        .cast(pl.Schema(attempt_schema()))
    )
    return results, attempts


def _log_schema() -> dict[str, PolarsType]:
    """How log lines are typed on disk: money as text (exact), attempts as a list of structs."""
    import polars as pl

    from .schema import attempt_schema, result_schema

    def on_disk(schema: dict[str, PolarsType]) -> dict[str, PolarsType]:
        return {k: (pl.String if isinstance(v, pl.Decimal) else v) for k, v in schema.items()}

    attempt_fields = {k: v for k, v in on_disk(attempt_schema()).items()
                      if k not in CELL and k != "attempt"}
    return {**on_disk(result_schema()), "attempts": pl.List(pl.Struct(attempt_fields))}


def rows_of(part: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of one log part, parsed; a torn line (a crash mid-write) is skipped."""
    with part.open("rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                try:
                    yield json.loads(line)
                except ValueError:  # a line torn by a crash, glued to the next one
                    continue


def frames(rows: Sequence[Mapping[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(results, attempts) polars DataFrames for log rows, with the stored schemas (:mod:`.schema`)."""
    from .schema import attempt_schema, result_schema

    attempt_rows = [
        {**{k: row.get(k) for k in CELL}, "attempt": i, **a}
        for row in rows for i, a in enumerate(row.get("attempts") or ())
    ]
    results = _frame(rows, result_schema(), RESULT_COLUMNS)
    attempts = _frame(attempt_rows, attempt_schema(), ATTEMPT_COLUMNS)
    return results, attempts


def _frame(rows: Sequence[Mapping[str, Any]], schema: dict[str, PolarsType],
           columns: Mapping[str, object]) -> pl.DataFrame:
    from decimal import Decimal

    import polars as pl

    data = {name: [r.get(name) for r in rows] for name in columns}
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Decimal):
            data[name] = [Decimal(v) if v is not None else None for v in data[name]]
    return pl.DataFrame(data, schema=schema, strict=False)
