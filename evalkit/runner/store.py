"""A run on disk: ``runs/<run_id>/``.

Layout::

    manifest.json              what was run, by what, when (see manifest.py)
    .lock                      locked by the one process writing the run (see lock.py)
    log/part-NNNN.jsonl        append-only, one line per finished cell, while running
    results/part-NNNN.parquet  one row per asked cell (schema.RESULT_COLUMNS)
    attempts/part-NNNN.parquet one row per attempt of each row (schema.ATTEMPT_COLUMNS)

Each finished cell is one line written and flushed at once, so a crash
(SIGKILL included) loses at most the cell being written, whose torn line is
ignored. Compaction turns each log part into its two Parquet parts, one part at
a time, so memory stays flat however large the run. Resume reads the keys of
every finished cell from both places, one part at a time (:meth:`RunStore.key_frames`).

Every Parquet part is named after the log part it was made from and written
atomically before that log part is removed. A crash between the two leaves
both; readers then take the Parquet part and skip its log part (see
:meth:`RunStore.table_parts`), so no row is ever counted twice, and the next
compaction rewrites the same part from the same log: compaction is idempotent.
A failed write (a full disk) removes its temporary file and raises the
``OSError``; the run is resumable once there is space again.

A cell asked again (``evalkit run --resume --retry-failed``) gets a second
row, written later, that carries the attempts of every ask: the last row
written for a cell is the cell (:func:`latest_rows`, :func:`latest_attempts`).
Parts are read in the order they were written (:func:`part_order`).

Only one process writes a run at a time (:mod:`.lock`). Every line and the
manifest are scrubbed of known secret values before they are written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .._json import dumps_line
from .._secret import mentions_secret, scrub_strings
from ._log_parts import frames, read_log_part, rows_of
from .schema import ATTEMPT_COLUMNS, CELL, KEY

if TYPE_CHECKING:
    import polars as pl

__all__ = ["RunStore", "frames", "latest_attempts", "latest_rows", "part_order", "write_parquet"]

Key = tuple[str, str, int]

_PART_ROWS = 20_000  # rotate log parts so each compacts in bounded memory


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._log: int | None = None  # the open log part's file descriptor
        self._log_path: Path | None = None
        self._rows_in_part = 0
        self._log_size = 0

    # -- manifest -------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def read_manifest(self) -> dict[str, Any]:
        """manifest.json as written (:mod:`.manifest`)."""
        manifest: dict[str, Any] = json.loads(self.manifest_path.read_text())
        return manifest

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
        log = self._log if self._log is not None and self._rows_in_part < _PART_ROWS else self._open_part()
        written = 0
        try:
            while written < len(line):  # a write may be short when the disk fills up
                written += os.write(log, line[written:])
        except OSError as exc:
            if written:  # the next line must not be glued to a torn one
                os.ftruncate(log, self._log_size)
            self.close()
            exc.filename = exc.filename or str(self._log_path)
            raise
        self._log_size += len(line)
        self._rows_in_part += 1
        return row

    def _open_part(self) -> int:
        """Open the next log part for appending; its file descriptor."""
        self.close()
        log_dir = self.path / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        part = log_dir / f"part-{self._next_part_number():04d}.jsonl"
        # O_APPEND + one os.write per line: a line is never interleaved or half-buffered.
        self._log_path = part
        self._log = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._rows_in_part = 0
        self._log_size = os.fstat(self._log).st_size
        return self._log

    def _next_part_number(self) -> int:
        numbers = [part_order(p)[0] for d in ("log", "results", "attempts")
                   if (self.path / d).is_dir() for p in (self.path / d).glob("part-*")]
        return max(numbers, default=-1) + 1

    def close(self) -> None:
        """Close the open log part, if any (the next :meth:`append` opens a new one)."""
        if self._log is not None:
            os.close(self._log)
            self._log = None

    # -- reading --------------------------------------------------------------------------

    def log_parts(self) -> list[Path]:
        """The log parts not yet compacted, in the order they were written."""
        folder = self.path / "log"
        return sorted(folder.glob("part-*.jsonl"), key=part_order) if folder.is_dir() else []

    def parquet_parts(self, table: str) -> list[Path]:
        """The Parquet parts of ``table`` ("results"/"attempts"), in the order they were written."""
        folder = self.path / table
        return sorted(folder.glob("part-*.parquet"), key=part_order) if folder.is_dir() else []

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
        return list(rows_of(part))

    def read_table(self, table: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every row of ``table`` ("results"/"attempts") as stored, in the order written; a polars DataFrame.

        Reads the Parquet parts and the log lines not yet compacted (a running or
        crashed run), each row once (see :meth:`table_parts`). A cell asked again
        has several rows here; :func:`latest_rows` keeps the one that counts.
        ``columns``: only these (all by default).
        """
        import polars as pl

        from .schema import attempt_schema, result_schema

        stored = result_schema() if table == "results" else attempt_schema()
        schema = pl.Schema(stored if columns is None else {name: stored[name] for name in columns})
        parquet, logs = self.table_parts(table)
        read = []
        for part in sorted([*parquet, *logs], key=part_order):
            try:
                rows = self.read_log_part(part) if part.suffix == ".jsonl" else None
            except FileNotFoundError:  # compacted by the writer since it was listed: its Parquet part is complete
                part, rows = self.path / table / f"{part.stem}.parquet", None
            if rows is None:
                read.append(pl.read_parquet(part, columns=list(schema)))
            elif rows:
                read.append(frames(rows)[0 if table == "results" else 1])
        if not read:
            return pl.DataFrame(schema=schema)
        return pl.concat([f.select(list(schema)).cast(schema) for f in read], how="vertical")

    def failed_cells(self, kinds: Iterable[str]) -> dict[Key, list[dict[str, Any]]]:
        """The cells whose latest row failed with an ``error_kind`` in ``kinds``, each with that row's attempts.

        Attempts come as the records the runner writes (``cost_usd`` as text,
        ``started_at`` in epoch seconds), in order, so a cell asked again can
        carry them. Reads three columns of every result and the attempts of the
        failed cells only.
        """
        import polars as pl

        results = latest_rows(self.read_table("results", [*KEY, "status", "error_kind"]))
        failed = results.filter((pl.col("status") == "error") & pl.col("error_kind").is_in(list(kinds)))
        if failed.is_empty():
            return {}
        cells: dict[Key, list[dict[str, Any]]] = {key: [] for key in failed.select(KEY).iter_rows()}
        fields = [name for name in ATTEMPT_COLUMNS if name not in CELL and name != "attempt"]
        attempts = latest_attempts(self.read_table("attempts")).join(failed.select(KEY), on=list(KEY), how="semi")
        attempts = attempts.sort([*KEY, "attempt"])
        for row in attempts.select(*KEY, *fields).iter_rows():
            record = dict(zip(fields, row[3:]))
            if record["cost_usd"] is not None:
                record["cost_usd"] = f"{record['cost_usd'].normalize():f}"
            cells[row[:3]].append(record)
        return cells

    def done_keys(self) -> set[Key]:
        """(item_id, target, repeat) of every finished cell, failed ones included.

        A set of every key: for a look at a small run. A resume reads :meth:`key_frames` instead.
        """
        return {key for frame in self.key_frames() for key in frame.iter_rows()}

    def key_frames(self) -> Iterator[pl.DataFrame]:
        """(item_id, target, repeat) of every row written, one polars frame per part, read as they are used.

        One part at a time (at most ``_PART_ROWS`` rows), so reading the keys of a
        run of any size holds one part's keys. A cell asked again has a key in each
        part it was written to. A new run yields nothing and imports nothing.
        """
        parquet, logs = self.table_parts("results")
        if not parquet and not logs:
            return
        import polars as pl

        schema = pl.Schema({"item_id": pl.String, "target": pl.String, "repeat": pl.Int64})
        for part in sorted([*parquet, *logs], key=part_order):
            try:
                rows = list(rows_of(part)) if part.suffix == ".jsonl" else None
            except FileNotFoundError:  # compacted since it was listed: its Parquet part has the same rows
                part, rows = self.path / "results" / f"{part.stem}.parquet", None
            if rows is None:
                yield pl.read_parquet(part, columns=list(schema)).cast(schema)
            elif rows:
                yield pl.DataFrame([(r["item_id"], r["target"], int(r["repeat"])) for r in rows],
                                   schema=schema, orient="row")

    # -- compaction -----------------------------------------------------------------------

    def compact(self) -> None:
        """Turn every log part into Parquet parts (atomically), then remove it.

        Idempotent: a part compacted before a crash is written again from the
        same log, to the same name, with the same rows.
        """
        self.close()
        self.remove_stale_tmp()
        for part in self.log_parts():
            parsed = read_log_part(part)
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


def part_order(part: Path) -> tuple[int, str]:
    """Where a part comes in the order parts were written: its number, then its name.

    ``part-0012.parquet`` is 12; a run merged before parts were renumbered has
    ``part-SSS-NNNN`` names (shard, then the shard's part), ordered by both.
    """
    stem = part.name.split(".")[0]
    return int(stem.split("-")[1]), stem


def latest_rows(results: pl.DataFrame) -> pl.DataFrame:
    """The last row written for each cell of ``results`` (as :meth:`RunStore.read_table` reads them), unordered.

    A cell asked again (``--retry-failed``) has a later row that replaces the
    earlier one; a cell asked once is its one row.
    """
    return results.unique(subset=list(KEY), keep="last", maintain_order=False)


def latest_attempts(attempts: pl.DataFrame) -> pl.DataFrame:
    """The attempts of the last row written for each cell (the row :func:`latest_rows` keeps), in order.

    A row's attempts are stored together, numbered from 0, so each 0 starts the
    attempts of the next row; a later row of a cell carries the earlier rows'
    attempts itself, so only the last row's count.
    """
    import polars as pl

    row = (pl.col("attempt") == 0).cum_sum().alias("_row")
    starts = attempts.select(*KEY, row, pl.col("attempt")).filter(pl.col("attempt") == 0)
    latest = starts.unique(subset=list(KEY), keep="last", maintain_order=False)
    if latest.height == starts.height:  # no cell asked twice: the common case costs one pass
        return attempts
    return attempts.with_columns(row).filter(pl.col("_row").is_in(latest["_row"].implode())).drop("_row")


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
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
