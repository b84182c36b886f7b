"""The runner: datasets × targets × repeats, graded, every attempt recorded to Parquet.

``run_suite`` runs or resumes a suite; ``results_df``/``attempts_df`` read a
run directory back as polars DataFrames (columns in :mod:`.schema`).
"""

from __future__ import annotations

from ._cells import Cell, Shard, iter_cells, parse_shard
from .results import attempts_df, results_df
from .run import RunOptions, RunTotals, run_cells
from .session import RunResult, new_run_id, run_suite
from .store import RunStore

__all__ = [
    "Cell",
    "RunOptions",
    "RunResult",
    "RunStore",
    "RunTotals",
    "Shard",
    "attempts_df",
    "iter_cells",
    "new_run_id",
    "parse_shard",
    "results_df",
    "run_cells",
    "run_suite",
]
