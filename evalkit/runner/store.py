"""A run on disk: ``runs/<run_id>/``.

Layout::

    manifest.json              what was run, by what, when (see manifest.py)
    .lock                      locked by the one process writing the run (see lock.py)
    log/part-NNNN.jsonl        append-only, one line per finished cell, while running
    results/part-NNNN.parquet  one row per cell (schema.RESULT_COLUMNS)
    attempts/part-NNNN.parquet one row per attempt (schema.ATTEMPT_COLUMNS)

Each finished cell is one line written and flushed at once, so a crash
(SIGKILL included) loses at most the cell being written, whose torn line is
ignored. Compaction turns each log part into its two Parquet parts, one part at
a time, so memory stays flat however large the run. Resume reads the keys of
every finished cell from both places.

Every Parquet part is named after the log part it was made from and written
atomically before that log part is removed. A crash between the two leaves
both; readers then take the Parquet part and skip its log part (see
:meth:`RunStore.table_parts`), so no row is ever counted twice, and the next
compaction rewrites the same part from the same log: compaction is idempotent.
A failed write (a full disk) removes its temporary file and raises the
``OSError``; the run is resumable once there is space again.

Only one process writes a run at a time (:mod:`.lock`). Every line and the
manifest are scrubbed of known secret values before they are written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .._json import dumps_line
from .._secret import mentions_secret, scrub_strings
from .schema import ATTEMPT_COLUMNS, RESULT_COLUMNS

__all__ = ["RunStore", "frames", "write_parquet"]

_PART_ROWS = 20_000  # rotate log parts so each compacts in bounded memory


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._log: Any = None
        self._log_path: Path | None = None
        self._rows_in_part = 0
        self._log_size = 0

    # -- manifest -------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def read_manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Atomically replace manifest.json (secret values scrubbed)."""
        self.path.mkdir(parents=True, exist_ok=True)
        text = json.dumps(scrub_strings(dict(manifest)), indent=2, sort_keys=True, default=str) + "\n"
        _write_atomically(self.manifest_path, lambda tmp: tmp.write_text(text))

    # -- writing cells --------------------------------------------------------------------

    def append(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """Write one finished cell (its result row with a nested ``attempts`` list); returns it as written.

        A known secret value anywhere in the row (an upstream that echoed the key
        into its answer) is scrubbed first. A failed write (a full disk) leaves
        no torn line behind it and raises the ``OSError``.
        """
        line = dumps_line(row)
        if mentions_secret(line):
            row = scrub_strings(dict(row))
            line = dumps_line(row)
        if self._log is None or self._rows_in_part >= _PART_ROWS:
            self._open_part()
        written = 0
        try:
            while written < len(line):  # a write may be short when the disk fills up
                written += os.write(self._log, line[written:])
        except OSError as exc:
            if written:  # the next line must not be glued to a torn one
                os.ftruncate(self._log, self._log_size)
            self.close()
            exc.filename = exc.filename or str(self._log_path)
            raise
        self._log_size += len(line)
        self._rows_in_part += 1
        return row

    def _open_part(self) -> None:
        self.close()
        log_dir = self.path / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        part = log_dir / f"part-{self._next_part_number():04d}.jsonl"
        # O_APPEND + one os.write per line: a line is never interleaved or half-buffered.
        self._log_path = part
        self._log = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._rows_in_part = 0
        self._log_size = os.fstat(self._log).st_size

    def _next_part_number(self) -> int:
        numbers = [int(p.name.split(".")[0].split("-")[1]) for d in ("log", "results", "attempts")
                   if (self.path / d).is_dir() for p in (self.path / d).glob("part-*")]
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

    def table_parts(self, table: str) -> tuple[list[Path], list[Path]]:
        """Where ``table`` ("results"/"attempts") is read from: (Parquet parts, log parts not yet in Parquet).

        A log part whose Parquet part exists is skipped: a crash between writing
        the Parquet and removing the log leaves both, with the same rows. The log
        is listed first, so a part compacted between the two listings is found
        in the second; one removed before it could be opened is read from its
        Parquet part (:meth:`read_log_part` then raises ``FileNotFoundError``).
        """
        logs = self.log_parts()
        parquet = self.parquet_parts(table)
        compacted = {p.stem for p in parquet}
        return parquet, [part for part in logs if part.stem not in compacted]

    def read_log_part(self, part: Path) -> list[dict[str, Any]]:
        """Every complete line of one log part; a torn line (a crash mid-write) is skipped."""
        return list(_rows_of(part))

    def done_keys(self) -> set[tuple[str, str, int]]:
        """(item_id, target, repeat) of every finished cell."""
        parquet, logs = self.table_parts("results")
        rows = (row for part in logs for row in self.read_log_part(part))
        keys = {(r["item_id"], r["target"], int(r["repeat"])) for r in rows}
        if parquet:
            import polars as pl

            frame = pl.scan_parquet(parquet).select("item_id", "target", "repeat").collect()
            keys.update(zip(frame["item_id"], frame["target"], frame["repeat"]))
        return keys

    # -- compaction -----------------------------------------------------------------------

    def compact(self) -> None:
        """Turn every log part into Parquet parts (atomically), then remove it.

        Idempotent: a part compacted before a crash is written again from the
        same log, to the same name, with the same rows.
        """
        self.close()
        self.remove_stale_tmp()
        for part in self.log_parts():
            parsed = _read_log_part(part)
            if parsed is not None:
                results, attempts = parsed
                write_parquet(results, self.path / "results" / f"{part.stem}.parquet")
                write_parquet(attempts, self.path / "attempts" / f"{part.stem}.parquet")
            part.unlink()
        log_dir = self.path / "log"
        if log_dir.is_dir() and not any(log_dir.iterdir()):
            log_dir.rmdir()

    def remove_stale_tmp(self) -> None:
        """Remove temporary files a killed writer left (only ever called by the lock's holder)."""
        for folder in (self.path, self.path / "results", self.path / "attempts"):
            if folder.is_dir():
                for tmp in folder.glob("*.tmp"):
                    tmp.unlink(missing_ok=True)


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
                except ValueError:  # a line torn by a crash, glued to the next one
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


def write_parquet(frame: Any, path: Path) -> None:
    """Write a polars frame to ``path`` atomically (never a half-written part, never a ``.tmp`` left).

    The Parquet bytes are made in memory and written by Python: polars reports a
    full disk as a ``ComputeError``, Python as the ``OSError`` it is.
    """
    import io

    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """``write`` to ``<path>.tmp``, then rename it over ``path``; a failed write leaves no ``.tmp`` behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file; the message must
        raise
