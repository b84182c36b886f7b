"""The run's progress bar: done/total, rate, ETA, errors and spend so far (rich)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

__all__ = ["RunProgress"]


class RunProgress:
    """A rich progress bar fed one row at a time by the runner."""

    def __init__(self, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("errors [red]{task.fields[errors]}[/]"), TextColumn("spend ${task.fields[spend]}"),
            refresh_per_second=4, transient=False,
        )
        self._task: Any = None
        self._label = label

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(self._label, total=None, rate="", errors=0, spend="0.0000")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._progress.__exit__(*exc_info)

    def update(self, row: Mapping[str, Any], totals: Any) -> None:
        """Advance by one finished cell."""
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = f"{totals.done / elapsed:.1f} cells/s" if elapsed > 0 else ""
        self._progress.update(self._task, total=totals.total, completed=totals.done, rate=rate,
                              errors=totals.errors, spend=f"{totals.spend.quantize(Decimal('0.0001'))}")
