"""``results_df`` and ``attempts_df``: a run directory as polars DataFrames.

One row per cell (item × target × repeat) and one row per attempt; the columns
are documented in :mod:`evalkit.runner.schema`. Both read the compacted
Parquet parts and any log lines a crashed run left behind, so a run can be
inspected while it is going or after it died. ``.to_pandas()`` works on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .schema import KEY, attempt_schema, result_schema
from .store import RunStore, frames

__all__ = ["attempts_df", "results_df"]


def results_df(run_dir: str | Path) -> Any:
    """One row per (item, target, repeat) cell of the run in ``run_dir``."""
    frame = _read(RunStore(run_dir), "results", result_schema())
    return frame.unique(subset=list(KEY), keep="first", maintain_order=True).sort(list(KEY))


def attempts_df(run_dir: str | Path) -> Any:
    """One row per attempt of the run in ``run_dir``, failed and fallback attempts included."""
    return _read(RunStore(run_dir), "attempts", attempt_schema()).sort([*KEY, "attempt"])


def _read(store: RunStore, table: str, schema: dict[str, Any]) -> Any:
    import polars as pl

    if not store.path.is_dir():
        from ..errors import ConfigError

        raise ConfigError("no such run directory", file=str(store.path))
    parquet, logs = store.table_parts(table)
    parts = [pl.read_parquet(p) for p in parquet]
    pending = []
    for log in logs:
        try:
            pending.extend(store.read_log_part(log))
        except FileNotFoundError:  # compacted by the writer since it was listed: its Parquet part is complete
            parts.append(pl.read_parquet(store.path / table / f"{log.stem}.parquet"))
    if pending:
        results, attempts = frames(pending)
        parts.append(results if table == "results" else attempts)
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat([p.select(list(schema)).cast(schema) for p in parts], how="vertical")
