"""A run on disk: ``runs/<run_id>/``.

Layout::

    manifest.json              what was run, by what, when (see manifest.py)
    log/part-NNNN.jsonl        append-only, one line per finished cell, while running
    results/part-NNNN.parquet  one row per cell (schema.RESULT_COLUMNS)
    attempts/part-NNNN.parquet one row per attempt (schema.ATTEMPT_COLUMNS)

Each finished cell is one line written and flushed at once, so a crash
(SIGKILL included) loses at most the cell being written, whose torn line is
ignored. Compaction turns each log part into its two Parquet parts, one part at
a time, so memory stays flat however large the run. Resume reads the keys of
every finished cell from both places.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from .._json import dumps_line
from .schema import ATTEMPT_COLUMNS, RESULT_COLUMNS

__all__ = ["RunStore"]

_PART_ROWS = 20_000  # rotate log parts so each compacts in bounded memory


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._log: Any = None
        self._rows_in_part = 0

    # -- manifest -------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def read_manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Atomically replace manifest.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.manifest_path)

    # -- writing cells --------------------------------------------------------------------

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one finished cell (its result row with a nested ``attempts`` list)."""
        if self._log is None or self._rows_in_part >= _PART_ROWS:
            self._open_part()
        os.write(self._log, dumps_line(row))
        self._rows_in_part += 1

    def _open_part(self) -> None:
        self.close()
        log_dir = self.path / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        part = log_dir / f"part-{self._next_part_number():04d}.jsonl"
        # O_APPEND + one os.write per line: a line is never interleaved or half-buffered.
        self._log = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._rows_in_part = 0

    def _next_part_number(self) -> int:
        numbers = [int(p.stem.split("-")[1]) for d in ("log", "results") if (self.path / d).is_dir()
                   for p in (self.path / d).glob("part-*")]
        return max(numbers, default=-1) + 1

    def close(self) -> None:
        if self._log is not None:
            os.close(self._log)
            self._log = None

    # -- reading --------------------------------------------------------------------------

    def log_parts(self) -> list[Path]:
        return sorted((self.path / "log").glob("part-*.jsonl")) if (self.path / "log").is_dir() else []

    def parquet_parts(self, table: str) -> list[Path]:
        folder = self.path / table
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def log_rows(self) -> Iterator[dict[str, Any]]:
        """Every complete line of the log parts; a torn last line (a crash mid-write) is skipped."""
        for part in self.log_parts():
            with part.open("rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n"):
                        break
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue

    def done_keys(self) -> set[tuple[str, str, int]]:
        """(item_id, target, repeat) of every finished cell."""
        keys = {(r["item_id"], r["target"], int(r["repeat"])) for r in self.log_rows()}
        parts = self.parquet_parts("results")
        if parts:
            import polars as pl

            frame = pl.scan_parquet(parts).select("item_id", "target", "repeat").collect()
            keys.update(zip(frame["item_id"], frame["target"], frame["repeat"]))
        return keys

    # -- compaction -----------------------------------------------------------------------

    def compact(self) -> None:
        """Turn every log part into Parquet parts (atomically), then remove it."""
        self.close()
        for part in self.log_parts():
            parsed = _read_log_part(part)
            if parsed is not None:
                results, attempts = parsed
                _write_parquet(results, self.path / "results" / f"{part.stem}.parquet")
                _write_parquet(attempts, self.path / "attempts" / f"{part.stem}.parquet")
            part.unlink()
        log_dir = self.path / "log"
        if log_dir.is_dir() and not any(log_dir.iterdir()):
            log_dir.rmdir()


def _read_log_part(part: Path):
    """(results, attempts) of one log part; ``None`` when it holds no complete line.

    polars reads clean parts natively (the common case: a run that ended); a
    part with a torn last line, left by a crash, goes through the line reader.
    """
    import polars as pl

    from .schema import attempt_schema, result_schema

    try:
        raw = pl.read_ndjson(part, schema=_log_schema(pl))
    except Exception:  # noqa: BLE001 - any parse problem: fall back to the forgiving reader
        rows = list(_rows_of(part))
        return frames(rows) if rows else None
    if raw.is_empty():
        return None
    keys = ["run_id", "item_id", "task_type", "target", "repeat"]
    results = raw.drop("attempts").cast(result_schema())
    attempts = (
        raw.select(*keys, pl.col("attempts"))
        .with_columns(pl.int_ranges(pl.col("attempts").list.len()).alias("attempt"))
        .explode("attempts", "attempt")
        .unnest("attempts")
        .select(list(ATTEMPT_COLUMNS))
        .cast(attempt_schema())
    )
    return results, attempts


def _log_schema(pl: Any) -> dict[str, Any]:
    """How log lines are typed on disk: money as text (exact), attempts as a list of structs."""
    from .schema import attempt_schema, result_schema

    def on_disk(schema: dict[str, Any]) -> dict[str, Any]:
        return {k: (pl.String if isinstance(v, pl.Decimal) else v) for k, v in schema.items()}

    attempt_fields = {k: v for k, v in on_disk(attempt_schema()).items()
                      if k not in ("run_id", "item_id", "task_type", "target", "repeat", "attempt")}
    return {**on_disk(result_schema()), "attempts": pl.List(pl.Struct(attempt_fields))}


def _rows_of(part: Path) -> Iterator[dict[str, Any]]:
    with part.open("rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def frames(rows: list[Mapping[str, Any]]):
    """(results, attempts) polars DataFrames for log rows, with the documented schemas."""
    import polars as pl

    from .schema import attempt_schema, result_schema

    attempt_rows = [
        {**{k: row.get(k) for k in ("run_id", "item_id", "task_type", "target", "repeat")}, "attempt": i, **a}
        for row in rows for i, a in enumerate(row.get("attempts") or ())
    ]
    results = _frame(pl, rows, result_schema(), RESULT_COLUMNS)
    attempts = _frame(pl, attempt_rows, attempt_schema(), ATTEMPT_COLUMNS)
    return results, attempts


def _frame(pl: Any, rows: list[Mapping[str, Any]], schema: dict[str, Any], columns: Mapping[str, Any]):
    from decimal import Decimal

    data = {name: [r.get(name) for r in rows] for name in columns}
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Decimal):
            data[name] = [Decimal(v) if v is not None else None for v in data[name]]
    return pl.DataFrame(data, schema=schema, strict=False)


def _write_parquet(frame: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)
