"""The run's progress: done/total, rate, ETA, errors and spend so far.

In a terminal, a rich progress bar. In a Jupyter kernel rich draws through ipywidgets, which a
plain JupyterLab install lacks (the bar would silently never appear), so there the same
numbers go to one output line that is updated in place.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from .run import RunTotals

__all__ = ["NotebookProgress", "RunProgress", "in_notebook"]


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
            TextColumn("errors [red]{task.fields[errors]}[/]"), TextColumn("spend ${task.fields[spend]} + judge ${task.fields[judge]}"),
            refresh_per_second=4, transient=False,
        )
        self._task: Any = None
        self._label = label

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        self._task = self._progress.add_task(self._label, total=None, rate="", errors=0, spend="0.0000",
                                            judge="0.0000")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._progress.__exit__(*exc_info)

    def update(self, row: Mapping[str, Any], totals: RunTotals) -> None:
        """Advance by one finished cell."""
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = f"{totals.done / elapsed:.1f} cells/s" if elapsed > 0 else ""
        self._progress.update(self._task, total=totals.total, completed=totals.done, rate=rate,
                              errors=totals.errors, spend=f"{totals.spend.quantize(Decimal('0.0001'))}",
                              judge=f"{totals.judge_spend.quantize(Decimal('0.0001'))}")


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (where a terminal progress bar cannot draw)."""
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and type(shell).__name__ == "ZMQInteractiveShell"


class _DisplayHandle(Protocol):
    """What IPython's ``display(..., display_id=True)`` returns: an output that can be redrawn."""

    def update(self, obj: object) -> None: ...


class NotebookProgress:
    """The progress line of a run in a notebook: one output updated in place, at most 4 times a second."""

    def __init__(self, label: str, min_interval_s: float = 0.25) -> None:
        self._label, self._min_interval_s = label, min_interval_s
        self._handle: _DisplayHandle | None = None
        self._pretty: Callable[[str], object] = str
        self._shown_at = 0.0
        self._totals: RunTotals | None = None

    def __enter__(self) -> NotebookProgress:
        import importlib

        shown: Any = importlib.import_module("IPython.display")  # IPython ships no type information
        self._pretty = shown.Pretty  # plain text as is: no quotes around it, no Markdown reading "$" as maths
        self._handle = shown.display(self._pretty(f"{self._label}: starting"), display_id=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._totals is not None and self._handle is not None:
            self._handle.update(self._pretty(self.line(self._totals)))

    def update(self, row: Mapping[str, Any], totals: RunTotals) -> None:
        """Count one finished cell; redraw when the last redraw is old enough."""
        import time

        self._totals = totals
        now = time.monotonic()
        if now - self._shown_at >= self._min_interval_s and self._handle is not None:
            self._shown_at = now
            self._handle.update(self._pretty(self.line(totals)))

    def line(self, totals: RunTotals) -> str:
        """``smoke ████████░░ 164/164 cells · 52.1 cells/s · 9 errors · $0.1234 + judge $0.0456 (+3 unpriced)``."""
        width = 30
        filled = round(width * totals.done / totals.total) if totals.total else 0
        unpriced = f" (+{totals.unpriced} unpriced)" if totals.unpriced else ""
        return (f"{self._label} {'█' * filled}{'░' * (width - filled)} {totals.done}/{totals.total} cells · "
                f"{totals.cells_per_s:.1f} cells/s · {totals.errors} errors · "
                f"${totals.spend.quantize(Decimal('0.0001'))} + judge "
                f"${totals.judge_spend.quantize(Decimal('0.0001'))}{unpriced}")
