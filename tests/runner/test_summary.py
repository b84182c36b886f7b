"""What ``evalkit run`` prints at the end: the task table on any terminal, and the top error kinds per target."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from evalkit._secret import Secret
from evalkit.runner.schema import attempt_schema, result_schema
from evalkit.runner.summary import SAMPLE_CHARS, error_summary, render_errors, render_summary, task_summary

# The default fleet's targets as `evalkit run` prints them (emulator:MODEL served on the model's first wire).
DEFAULT_TARGETS = ["anthropic:sim-long", "gemini:sim-fast", "openai:sim-large", "openai:sim-medium",
                   "openai:sim-reasoner", "openai:sim-small"]
TASK_TYPES = ["classification", "code", "creative", "factual_qa", "long_document", "math"]


def _results(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A ``results_df``-shaped frame: every column of the schema, the given ones filled."""
    schema = result_schema()
    full = [{name: row.get(name) for name in schema} for row in rows]
    return pl.DataFrame(full, schema=schema, orient="row")


def _cell(i: int, target: str, task_type: str = "math", *, kind: str | None = None, error: str | None = None,
          latency_ms: float = 850.0, cost: str | None = "0.000125") -> dict[str, Any]:
    failed = kind is not None or error is not None
    return {"item_id": f"item-{i:03d}", "task_type": task_type, "target": target, "repeat": 0,
            "status": "error" if failed else "ok", "error_kind": kind, "error": error,
            "latency_ms": latency_ms, "cost_usd": None if cost is None else Decimal(cost),
            "score": None if failed else 1.0, "passed": None if failed else True, "n_attempts": 1}


def _default_run_table() -> Any:
    """The bundled default suite × the default fleet: 50 items per task type, wide numbers included."""
    rows = []
    for t, target in enumerate(DEFAULT_TARGETS):
        for k, task_type in enumerate(TASK_TYPES):
            for i in range(50):
                rows.append(_cell(1000 * k + i, target, task_type, latency_ms=120.0 + 400.0 * t * i,
                                  cost=None if target == "openai:sim-reasoner" else f"0.0{t}{i:02d}41"))
    return task_summary(_results(rows))


def _text(renderable: Any, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_targets_stay_whole_and_distinct_at_80_columns() -> None:
    """At 80 columns every target used to print as ``opena…``: four identical rows per task type."""
    text = _text(render_summary(_default_run_table(), title="evalkit run 20261201-120000-abcd"), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text  # no name, number or heading is cut
    groups: dict[str, list[str]] = {}
    for line in lines:
        words = line.split()
        if words and words[0] in TASK_TYPES and len(words) == 1:
            group = groups.setdefault(words[0], [])
        elif words and words[0] in DEFAULT_TARGETS:
            group.append(words[0])
    assert groups == {task_type: DEFAULT_TARGETS for task_type in TASK_TYPES}, text  # six distinct rows each
    assert "unpriced" in text and "75,320" in text  # an unpriced target says so; wide latencies fit


def test_a_wide_console_keeps_one_boxed_row_per_task_type_and_target() -> None:
    text = _text(render_summary(_default_run_table(), title="run"), 150)
    assert "…" not in text
    for task_type in TASK_TYPES:
        for target in DEFAULT_TARGETS:
            assert any(f"│ {task_type}" in line and f"│ {target} " in line for line in text.splitlines())


def test_long_target_names_fold_onto_a_second_line_instead_of_being_cut() -> None:
    prefix = "openrouter:meta-llama/llama-3.1-405b-instruct"
    targets = [f"{prefix}-{suffix}" for suffix in ("fp8", "turbo", "bf16")]
    table = task_summary(_results([_cell(i, target) for target in targets for i in range(3)]))
    text = _text(render_summary(table, title="run"), 80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    joined = "".join(line.split("  ")[0] for line in text.splitlines())  # the name column, lines glued back
    for target in targets:
        assert target in joined, text


def test_names_are_printed_as_written_not_as_rich_markup() -> None:
    table = task_summary(_results([_cell(1, "router[bold]:a"), _cell(2, "[red]x")]))
    text = _text(render_summary(table, title="run [dim]1"), 80)
    assert "router[bold]:a" in text and "[red]x" in text and "run [dim]1" in text


# --- error_summary / render_errors -------------------------------------------------------------------------------


def _faulty_results() -> pl.DataFrame:
    rows = [_cell(i, "openai:sim-large") for i in range(2)]  # 2 ok + 8 failed of 10
    rows += [_cell(10 + i, "openai:sim-large", kind="rate_limit",
                   error=f"[rate_limit 429] openai:sim-large: Rate limit reached, try again in {i} s")
             for i in range(4)]
    rows += [_cell(20 + i, "openai:sim-large", kind="timeout", error="read timed out after 60 s")
             for i in range(2)]
    rows += [_cell(30, "openai:sim-large", kind="server", error="[server 500] upstream exploded")]
    rows += [_cell(31, "openai:sim-large", kind="auth", error="401 bad key")]
    rows += [_cell(40 + i, "gemini:sim-fast") for i in range(5)]  # never fails
    rows += [_cell(50, "anthropic:sim-long", kind="connection", error=None),
             _cell(51, "anthropic:sim-long", kind="connection", error="connection reset\n  by peer\tat 10.0.0.1"),
             _cell(52, "anthropic:sim-long", error="no kind recorded"),
             _cell(53, "anthropic:sim-long")]
    return _results(rows)


def test_error_summary_ranks_the_top_kinds_per_target_with_a_sample_each() -> None:
    table = error_summary(_faulty_results(), top=3)
    assert table.select("target", "error_kind", "cells", "target_failed", "target_cells").rows() == [
        ("openai:sim-large", "rate_limit", 4, 8, 10),
        ("openai:sim-large", "timeout", 2, 8, 10),
        ("openai:sim-large", "auth", 1, 8, 10),  # auth and server tie at 1: by name; server is cut by top=3
        ("anthropic:sim-long", "connection", 2, 3, 4),
        ("anthropic:sim-long", "unknown", 1, 3, 4),
    ]
    assert table["share"].to_list() == pytest.approx([0.4, 0.2, 0.1, 0.5, 0.25])
    samples = dict(zip(table["target"] + "/" + table["error_kind"], table["sample"]))
    assert samples["openai:sim-large/rate_limit"].endswith("try again in 0 s")  # the first cell's message
    assert samples["anthropic:sim-long/connection"] == "connection reset by peer at 10.0.0.1"  # one line
    assert samples["anthropic:sim-long/unknown"] == "no kind recorded"
    assert table["attempts"].null_count() == table.height  # no attempts given: unknown, not 0


def test_error_samples_are_scrubbed_before_they_are_clipped() -> None:
    key = "sk-summary-" + "k" * 40
    Secret(key)  # a key evalkit holds: it never reaches printed output
    long = f"[auth 401] Incorrect API key provided: {key}. " + "You can find your API key at https://x. " * 10
    results = _results([_cell(1, "openai:sim-large", kind="auth", error=long)])
    sample = error_summary(results)["sample"][0]
    assert key not in sample and "sk-summary" not in sample and "********" in sample
    assert len(sample) == SAMPLE_CHARS and sample.endswith("…")


def test_error_summary_counts_failed_attempts_once_each() -> None:
    results = _results([_cell(1, "openai:sim-large", kind="rate_limit", error="429"),
                        _cell(2, "openai:sim-large")])
    attempts_schema = attempt_schema()

    def attempt(item: str, n: int, kind: str | None, *, sent: bool = True) -> dict[str, Any]:
        return {"item_id": item, "target": "openai:sim-large", "repeat": 0, "attempt": n, "attempt_target":
                "openai:sim-large", "error_kind": kind, "error": None if kind is None else f"{kind} #{n}",
                "sent": sent}

    rows = [attempt("item-001", n, "rate_limit") for n in range(3)]
    rows += [attempt("item-001", n, "rate_limit") for n in range(3)]  # carried into the re-asked cell's row
    rows += [attempt("item-002", 0, "server"), attempt("item-002", 1, None),  # retried into an answer
             attempt("item-002", 2, "budget_exceeded", sent=False)]  # skipped, never sent
    attempts = pl.DataFrame([{name: r.get(name) for name in attempts_schema} for r in rows],
                            schema=attempts_schema, orient="row")
    table = error_summary(results, attempts)
    assert table.select("error_kind", "cells", "attempts", "target_failed_attempts").rows() == [
        ("rate_limit", 1, 3, 4)]


def test_no_failed_cell_is_an_empty_table() -> None:
    table = error_summary(_results([_cell(i, "openai:sim-large") for i in range(3)]))
    assert table.is_empty() and "sample" in table.columns
    with pytest.raises(ValueError, match="top must be at least 1"):
        error_summary(_faulty_results(), top=0)


def test_render_errors_shows_each_failing_target_its_kinds_and_samples_as_text() -> None:
    text = _text(render_errors(error_summary(_faulty_results())), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "gemini:sim-fast" not in text  # it never failed
    large = next(i for i, line in enumerate(lines) if line.startswith("openai:sim-large "))
    assert lines[large].split()[:3] == ["openai:sim-large", "8", "80%"]
    assert "of its 10 cells failed" in lines[large]
    assert lines[large + 1].split()[:3] == ["rate_limit", "4", "40%"]
    assert "[server 500]" not in text  # cut by top=3 ...
    text = _text(render_errors(error_summary(_faulty_results(), top=5)), 80)
    assert "[server 500] upstream exploded" in text  # ... and printed as written, not taken for rich markup
    assert "attempts" not in text  # no attempts given: no column of blanks
