"""``results_df`` and ``attempts_df``: a run directory as polars DataFrames.

One row per cell (item × target × repeat) and one row per attempt; the columns
are documented in :mod:`evalkit.runner.schema`. Both read the compacted
Parquet parts and any log lines a crashed run left behind, so a run can be
inspected while it is going or after it died.

A cell asked again (``evalkit run --resume --retry-failed``) is its last row,
whose attempts include the earlier asks': ``attempts_df`` lists each attempt
once.

Money columns are Float64, so ``.to_pandas()`` gives float64 columns a pandas
user can sum and plot (unpriced: NaN); ``exact_money=True`` keeps the exact
``Decimal`` the run stored (for accounting; in pandas, ``Decimal`` objects).
Times are UTC datetimes (``datetime64[us, UTC]`` in pandas). polars cannot do
both at once: ``DataFrame.to_pandas()`` turns every ``Decimal`` column into
Python objects, and a frame cannot carry its own conversion through
``filter``/``select``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .schema import KEY, frame_schema
from .store import RunStore, latest_attempts, latest_rows

__all__ = ["attempts_df", "results_df"]


def results_df(run_dir: str | Path, *, exact_money: bool = False) -> Any:
    """One row per (item, target, repeat) cell of the run in ``run_dir``.

    ``cost_usd`` and ``judge_cost_usd`` are Float64 (null: unpriced);
    ``exact_money=True`` gives them as the exact ``Decimal(38, 12)`` stored.
    """
    frame = latest_rows(_store(run_dir).read_table("results"))
    return _as_shown(frame, "results", exact_money).sort(list(KEY))


def attempts_df(run_dir: str | Path, *, exact_money: bool = False) -> Any:
    """One row per attempt of the run in ``run_dir``, failed and fallback attempts included.

    A cell asked again lists the attempts of its last row, which carries the
    earlier asks' attempts first. ``exact_money`` as in :func:`results_df`.
    """
    frame = latest_attempts(_store(run_dir).read_table("attempts"))
    return _as_shown(frame, "attempts", exact_money).sort([*KEY, "attempt"])


def _store(run_dir: str | Path) -> RunStore:
    store = RunStore(run_dir)
    if not store.path.is_dir():
        from ..errors import ConfigError

        raise ConfigError("no such run directory", file=str(store.path))
    return store


def _as_shown(frame: Any, table: str, exact_money: bool) -> Any:
    """The stored frame with the types ``results_df``/``attempts_df`` show (:func:`.schema.frame_schema`).

    Times are stored as epoch seconds: they become microsecond UTC datetimes,
    null where none was recorded (an attempt's 0.0 means "not set").
    """
    import polars as pl

    shown = frame_schema(table, exact_money=exact_money)
    times = [name for name, dtype in shown.items() if isinstance(dtype, pl.Datetime)]
    return frame.with_columns(
        pl.when(pl.col(name) > 0).then((pl.col(name) * 1_000_000).round()).cast(pl.Int64).cast(shown[name])
        for name in times
    ).cast(shown)
