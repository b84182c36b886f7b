"""A cell asked again (``--resume --retry-failed``) is its last row, with each attempt once; failed cells to re-ask."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evalkit.runner import RunStore, attempts_df, results_df
from evalkit.runner._rows import attempt_record
from evalkit.runner.store import frames, write_parquet
from evalkit.types import Attempt, Cost, Usage

KEY = ["item_id", "target", "repeat"]
T0 = 1_780_000_000.0


def attempt(kind: str | None = None, *, cost: str | None = "0.00125", at: float = T0, retry: int = 0) -> dict:
    """An attempt record exactly as the runner writes it."""
    usage = Usage(input_tokens=100, output_tokens=0 if kind else 20)
    price = None if cost is None else Cost.reported(Decimal(cost))
    return attempt_record(Attempt(target="openai:m", error_kind=kind, error=kind and f"{kind} from upstream",
                                  latency_ms=250.0, usage=usage, cost=price, started_at=at, retry=retry))


def row(item: str, attempts: list[dict], *, target: str = "openai:m", repeat: int = 0, **fields: Any) -> dict:
    """A cell's row as the runner writes it: failed when its last attempt failed."""
    kind = attempts[-1]["error_kind"]
    costs = [a["cost_usd"] for a in attempts]
    return {"run_id": "r", "item_id": item, "task_type": "qa", "target": target, "repeat": repeat,
            "status": "error" if kind else "ok", "error_kind": kind, "output": None if kind else f"answer {item}",
            "n_attempts": len(attempts), "latency_ms": 250.0 * len(attempts),
            "cost_usd": None if None in costs else str(sum(map(Decimal, costs))),
            "score": None if kind else 1.0, "passed": None if kind else True,
            "started_at": attempts[0]["started_at"], "ended_at": attempts[-1]["started_at"] + 1,
            "attempts": attempts, **fields}


def write(run_dir: Path, rows: list[dict], *, compact: bool) -> None:
    """One invocation of a run: its rows appended (a new log part), then compacted or left as a crash leaves them."""
    store = RunStore(run_dir)
    for r in rows:
        store.append(r)
    store.close()
    if compact:
        store.compact()


def first_ask() -> list[dict]:
    return [row("q1", [attempt("rate_limit")]),                      # transient: asked again below
            row("q2", [attempt()]),                                  # answered
            row("q3", [attempt("auth")]),                            # not transient: stays failed
            row("q4", [attempt("timeout"), attempt("timeout", retry=1)])]


def second_ask(first: list[dict]) -> list[dict]:
    """q1 answered now; q4 failed again. Each new row carries the earlier ask's attempts first."""
    return [row("q1", [*first[0]["attempts"], attempt(at=T0 + 60)]),
            row("q4", [*first[3]["attempts"], attempt("server", at=T0 + 60)])]


@pytest.mark.parametrize("compacted", [True, False], ids=["compacted", "second-ask-still-in-log"])
def test_a_cell_asked_again_is_its_last_row_with_each_attempt_once(tmp_path: Path, compacted: bool) -> None:
    first = first_ask()
    write(tmp_path, first, compact=True)
    write(tmp_path, second_ask(first), compact=compacted)

    results = results_df(tmp_path)
    assert results.height == 4 and not results.select(KEY).is_duplicated().any()
    by_item = {r["item_id"]: r for r in results.iter_rows(named=True)}
    assert by_item["q1"]["status"] == "ok" and by_item["q1"]["n_attempts"] == 2
    assert by_item["q4"]["error_kind"] == "server" and by_item["q4"]["n_attempts"] == 3
    assert by_item["q1"]["cost_usd"] == pytest.approx(0.0025), "the cell's cost covers both asks"

    attempts = attempts_df(tmp_path)
    assert not attempts.select(*KEY, "attempt").is_duplicated().any()
    per_cell = dict(attempts.group_by("item_id").len().iter_rows())
    assert per_cell == {"q1": 2, "q2": 1, "q3": 1, "q4": 3}
    assert attempts.filter(pl.col("item_id") == "q4")["error_kind"].to_list() == ["timeout", "timeout", "server"]
    # Every attempt shown belongs to the row shown: costs add up to the cell's.
    spent = attempts.group_by(KEY).agg(pl.col("cost_usd").sum()).join(results, on=KEY, suffix="_cell")
    assert (spent["cost_usd"] - spent["cost_usd_cell"]).abs().max() < 1e-12


def test_the_row_written_last_wins_even_where_part_names_sort_the_other_way(tmp_path: Path) -> None:
    """A run merged before parts were renumbered has shard parts ``part-SSS-NNNN``; its resume writes ``part-0011``.

    By name, ``part-0011`` sorts before ``part-010-0000``; by the order written it comes after it.
    """
    old = [row("q1", [attempt("rate_limit")], run_id="shard11")]
    results, attempts_ = frames(old)
    write_parquet(results, tmp_path / "results" / "part-010-0000.parquet")
    write_parquet(attempts_, tmp_path / "attempts" / "part-010-0000.parquet")
    write(tmp_path, [row("q1", [*old[0]["attempts"], attempt()])], compact=True)
    assert (tmp_path / "results" / "part-0011.parquet").is_file()
    assert results_df(tmp_path)["status"].to_list() == ["ok"]
    assert attempts_df(tmp_path)["error_kind"].to_list() == ["rate_limit", None]


def test_failed_cells_are_the_latest_rows_failed_with_a_given_kind_and_their_attempt_records(tmp_path: Path) -> None:
    first = first_ask()
    write(tmp_path, first, compact=True)
    store = RunStore(tmp_path)
    failed = store.failed_cells({"rate_limit", "timeout", "server"})
    assert failed == {("q1", "openai:m", 0): first[0]["attempts"], ("q4", "openai:m", 0): first[3]["attempts"]}, \
        "the records as the runner wrote them: cost as text, started_at in epoch seconds"
    assert store.failed_cells({"auth"}) == {("q3", "openai:m", 0): first[2]["attempts"]}
    assert store.failed_cells(()) == {}

    second = second_ask(first)
    write(tmp_path, second, compact=False)  # read from the log too, as a crashed resume leaves it
    again = RunStore(tmp_path).failed_cells({"rate_limit", "timeout", "server"})
    assert again == {("q4", "openai:m", 0): second[1]["attempts"]}, "q1 answered; q4's latest row only"
    assert RunStore(tmp_path).done_keys() == {(f"q{i}", "openai:m", 0) for i in range(1, 5)}


def test_an_unpriced_attempt_is_carried_as_unpriced(tmp_path: Path) -> None:
    write(tmp_path, [row("q1", [attempt("timeout", cost=None)])], compact=True)
    [records] = RunStore(tmp_path).failed_cells({"timeout"}).values()
    assert records[0]["cost_usd"] is None and records[0]["input_tokens"] == 100


def test_reading_a_large_run_keeps_one_row_per_cell(tmp_path: Path) -> None:
    """Several parts, every cell once and a few asked again: counts, not timings."""
    store = RunStore(tmp_path)
    n = 3000
    for i in range(n):
        store.append(row(f"q{i}", [attempt("rate_limit" if i % 100 == 0 else None, at=time.time())]))
    store.close()
    store.compact()
    failed = RunStore(tmp_path).failed_cells({"rate_limit"})
    assert len(failed) == n // 100
    write(tmp_path, [row(k[0], [*v, attempt()]) for k, v in failed.items()], compact=True)
    assert results_df(tmp_path).height == n and results_df(tmp_path)["status"].eq("ok").all()
    assert attempts_df(tmp_path).height == n + n // 100
