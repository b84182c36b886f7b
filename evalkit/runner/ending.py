"""The end of ``evalkit run``: the summary, the spend, what failed and why, and the exit code.

The exit code says whether the run can be trusted as it is (the codes are
:data:`evalkit.runner.cli.EXIT_CODES`): 3 when every cell failed or more than
``--max-error-rate`` of them, 4 when the spend cap stopped it before every cell
was asked; a run that answered nothing never exits 0. A cell whose answer the
judge could not grade (``judge failed: KIND``) counts as failed here: its
result is unknown.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["ERROR_RATE_EXCEEDED", "JUDGE_FAILED", "SPEND_CAP_REACHED", "exit_code", "print_ending",
           "report_ungraded", "spend_line"]

ERROR_RATE_EXCEEDED = 3
SPEND_CAP_REACHED = 4


def print_ending(result: Any, *, max_error_rate: float | None = None) -> int:
    """Print what a finished invocation did and return its exit code."""
    from rich.console import Console

    from .results import attempts_df, results_df
    from .summary import error_summary, render_errors, render_summary, task_summary

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a pipe or a log file: don't squeeze the table to 80 columns
    results = results_df(result.run_dir)
    console.print(render_summary(task_summary(results), title=f"evalkit run {result.run_dir.name}"))
    t = result.totals
    retried = f" ({t.retried} needed a retry)" if t.retried else ""
    console.print(f"{t.done} cells asked ({t.skipped} already done), {t.errors} failed{retried}, "
                  f"{t.passed} passed")
    console.print(spend_line(t))
    if (results["status"] == "error").any():  # the top kinds per target, with the attempts behind them
        console.print(render_errors(error_summary(results, attempts_df(result.run_dir))))
    where = str(result.run_dir)
    console.print(f"results: {where}  (evalkit.results_df({where!r}), evalkit.attempts_df({where!r}))")
    console.print(f"report:  evalkit report {where} --open")
    report_ungraded(results, result.run_dir)
    code = exit_code(results, t, max_error_rate)
    if code == SPEND_CAP_REACHED:
        refused = int((results["error_kind"] == "budget_exceeded").sum())
        again = f" --retry-failed (for the {refused} cells refused mid-retry)" if refused else ""
        print(f"evalkit: stopped: --max-spend reached with {t.not_asked} cells not asked; continue with a larger "
              f"cap: evalkit run --resume {where} --max-spend USD{again}", file=sys.stderr)
    elif code == ERROR_RATE_EXCEEDED:
        failed = _failed(results)
        limit = "every cell failed" if max_error_rate is None else f"more than {max_error_rate:.1%} failed"
        print(f"evalkit: error: {failed} of {results.height} cells failed ({limit}); see the errors above, then "
              f"evalkit run --resume {where} --retry-failed", file=sys.stderr)
    return code


def spend_line(totals: Any) -> str:
    """``spend $0.4812 (models $0.1234 + judge $0.3578)``, with unpriced cells when there are any."""
    unpriced = f", {totals.unpriced} unpriced cells not counted" if totals.unpriced else ""
    return (f"spend ${totals.total_spend:.4f} (models ${totals.spend:.4f} + judge ${totals.judge_spend:.4f})"
            f"{unpriced}")


def exit_code(results: Any, totals: Any, max_error_rate: float | None) -> int:
    """0, or :data:`ERROR_RATE_EXCEEDED` / :data:`SPEND_CAP_REACHED` (see the module docstring)."""
    n = results.height
    failed = _failed(results) if n else 0
    if n and (failed == n or (max_error_rate is not None and failed / n > max_error_rate)):
        return ERROR_RATE_EXCEEDED
    if totals.not_asked:
        return SPEND_CAP_REACHED
    return 0


JUDGE_FAILED = "judge failed: "
"""How ``grade_reason`` starts when the judge's call failed (the answer's grade is unknown)."""


def _failed(results: Any) -> int:
    """Cells that failed, or whose answer the judge could not grade."""
    import polars as pl

    failed = (pl.col("status") == "error") | pl.col("grade_reason").str.starts_with(JUDGE_FAILED).fill_null(False)
    return int(results.filter(failed).height)


def report_ungraded(results: Any, run_dir: Path) -> None:
    """One line on stderr counting the answers of ``results`` left ungraded for want of a sandbox, if any."""
    import polars as pl

    from ._grading import NO_JUDGE, UNGRADED

    reasons = pl.col("grade_reason")
    no_sandbox = results.filter(reasons.str.starts_with(UNGRADED) & (reasons != NO_JUDGE)).height
    if no_sandbox:
        print(f"evalkit: warning: {no_sandbox} code_exec answers are ungraded (no sandbox); grade them with "
              f"evalkit regrade {run_dir} once bubblewrap is installed, or with --unsafe-code-exec",
              file=sys.stderr)
    judge_failed = results.filter(reasons.str.starts_with(JUDGE_FAILED))
    if judge_failed.height:
        kinds = judge_failed["grade_reason"].str.strip_prefix(JUDGE_FAILED).value_counts(sort=True)
        why = ", ".join(f"{kind} {count}" for kind, count in kinds.iter_rows())
        print(f"evalkit: warning: {judge_failed.height} answers are ungraded because the judge failed ({why}); "
              f"grade them with: evalkit regrade {run_dir}", file=sys.stderr)
    no_judge = results.filter(reasons == NO_JUDGE).height
    if no_judge:
        print(f"evalkit: note: {no_judge} judge-graded answers are ungraded (--no-judge); grade them with "
              f"evalkit regrade {run_dir} --judge PROVIDER:MODEL", file=sys.stderr)
