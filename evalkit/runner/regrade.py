"""``evalkit regrade``: grade a recorded run again without asking any model.

A run keeps every answer it received, so the run itself is the response cache:
after a grader changes (a fixed extraction rule, a new judge), the recorded
outputs are graded again and the results parts are rewritten in place
(atomically, one part at a time). Attempts, latencies and costs are untouched;
only ``score``, ``passed``, ``grade_reason`` and ``judge_cost_usd`` change.

Every regrade is recorded in the manifest (``"regrades"``: when, which judge,
what changed, what the judge cost and what judge spend its grades replaced),
and a judge given becomes the run's (``config.judge``): a resume grades its new
cells the same way. :class:`RegradeResult` says what changed, per target.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._grading import GraderCache
from .lock import RunLock
from .manifest import now_iso
from .store import RunStore, write_parquet

if TYPE_CHECKING:
    from ..providers import Provider

__all__ = ["RegradeResult", "TargetChanges", "regrade"]


@dataclass
class TargetChanges:
    """What a regrade changed for one target's cells."""

    graded: int = 0
    """Answered cells that got a grade."""
    scores_changed: int = 0
    passed_before: int = 0
    passed_after: int = 0
    now_passed: int = 0
    """Cells that pass now and did not before (failed, or ungraded)."""
    now_not_passed: int = 0
    """Cells that passed before and do not now (fail, or ungraded)."""


@dataclass
class RegradeResult:
    """What one regrade did: the judge, the counts, and the judge spend it added and replaced."""

    run_dir: Path
    judge: str | None
    previous_judge: str | None
    at: str = field(default_factory=now_iso)
    by_target: dict[str, TargetChanges] = field(default_factory=dict)
    judge_cost_usd: Decimal = Decimal(0)
    """What this regrade's judge calls cost (priced ones)."""
    replaced_judge_cost_usd: Decimal = Decimal(0)
    """What the grades it replaced had cost: spent before, no longer in ``judge_cost_usd`` of the results."""

    @property
    def graded(self) -> int:
        return sum(t.graded for t in self.by_target.values())

    @property
    def scores_changed(self) -> int:
        return sum(t.scores_changed for t in self.by_target.values())

    def record(self) -> dict[str, Any]:
        """The manifest's record of this regrade."""
        return {"at": self.at, "judge": self.judge, "previous_judge": self.previous_judge,
                "cells_graded": self.graded, "scores_changed": self.scores_changed,
                "judge_cost_usd": _usd(self.judge_cost_usd),
                "replaced_judge_cost_usd": _usd(self.replaced_judge_cost_usd),
                "by_target": {t: vars(c) for t, c in sorted(self.by_target.items())}}

    def lines(self) -> list[str]:
        """What ``evalkit regrade`` prints: the totals, then one line per target whose grades changed.

        Scrubbed of known secret values, like everything the runner prints.
        """
        from .._secret import scrub

        judge = self.judge or "no judge"
        if self.previous_judge != self.judge:
            judge += f" (was {self.previous_judge or 'no judge'})"
        out = [f"graded {self.graded} answered cells of {self.run_dir} again with {judge}: "
               f"{self.scores_changed} scores changed; judge spend ${_usd(self.judge_cost_usd)} "
               f"(the grades replaced had cost ${_usd(self.replaced_judge_cost_usd)})"]
        for target, c in sorted(self.by_target.items()):
            if c.scores_changed or c.now_passed or c.now_not_passed:
                out.append(f"  {target}: passed {c.passed_before} -> {c.passed_after} (+{c.now_passed} "
                           f"-{c.now_not_passed}), {c.scores_changed} scores changed")
        return [scrub(line) for line in out]


async def regrade(run_dir: str | Path, *, judge: Provider | None = None, judge_spec: str | None = None,
                  concurrency: int = 8, unsafe_code_exec: bool = False) -> RegradeResult:
    """Grade every answered cell of ``run_dir`` again; returns what changed, and records it in the manifest.

    ``judge_spec`` names the judge in the record (default: the judge's name).
    The run directory is locked meanwhile (a :class:`~evalkit.ConfigError` if another
    process writes it). ``unsafe_code_exec`` (or the run's own setting) lets
    ``code_exec`` items run without a sandbox when none is available. The
    manifest records the regrade before any part is rewritten (``"status":
    "running"``), so a regrade that did not finish is on record too.
    """
    store = RunStore(run_dir)
    if not store.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(run_dir))
    with RunLock(store.path, field="run_dir"):
        store.compact()
        manifest = store.read_manifest()
        items = _items(manifest)
        spec = judge_spec if judge_spec is not None else getattr(judge, "name", None)
        result = RegradeResult(store.path, spec, manifest["config"].get("judge"))
        history = manifest.setdefault("regrades", [])
        history.append({"at": result.at, "judge": spec, "previous_judge": result.previous_judge,
                        "status": "running"})
        store.write_manifest(manifest)
        unsafe = unsafe_code_exec or bool(manifest["config"].get("unsafe_code_exec"))
        await _regrade_parts(store, items, GraderCache(judge, unsafe_code_exec=unsafe), concurrency, result)
        history[-1] = {**result.record(), "status": "complete"}
        if spec is not None:  # the run's grades are this judge's now; a resume grades its new cells with it too
            manifest["config"]["judge"] = spec
            manifest["config"]["no_judge"] = False
        store.write_manifest(manifest)
    return result


def _items(manifest: dict[str, Any]) -> dict[str, Any]:
    """The run's dataset items by id; a :class:`~evalkit.ConfigError` when the dataset changed since."""
    from ..datasets import load_dataset

    dataset = load_dataset(manifest["config"]["suite"])
    if dataset.sha256 != manifest["dataset"]["sha256"]:
        raise ConfigError("the dataset changed since this run; its items no longer match the answers",
                          file=str(dataset.path), field="sha256")
    return {item.id: item for item in dataset}


async def _regrade_parts(store: RunStore, items: dict[str, Any], graders: GraderCache,
                         concurrency: int, result: RegradeResult) -> None:
    import polars as pl

    gate = asyncio.Semaphore(concurrency)

    async def grade(item_id: str, output: str | None, status: str) -> dict[str, Any]:
        if status != "ok" or output is None:
            return {"score": None, "passed": None, "grade_reason": None, "judge_cost_usd": None}
        async with gate:
            return await graders.grade(items[item_id], output)

    for part in store.parquet_parts("results"):
        frame = pl.read_parquet(part)
        grades = await asyncio.gather(*(grade(i, o, s) for i, o, s in
                                        zip(frame["item_id"], frame["output"], frame["status"])))
        updated = frame.with_columns(
            pl.Series("score", [g["score"] for g in grades], dtype=pl.Float64),
            pl.Series("passed", [g["passed"] for g in grades], dtype=pl.Boolean),
            pl.Series("grade_reason", [g["grade_reason"] for g in grades], dtype=pl.String),
            pl.Series("judge_cost_usd", [g.get("judge_cost_usd") for g in grades],
                      dtype=pl.String).cast(frame.schema["judge_cost_usd"]),
        )
        _count_changes(frame, updated, result)
        write_parquet(updated, part)


def _count_changes(before: Any, after: Any, result: RegradeResult) -> None:
    """Add one part's changes to ``result``, per target."""
    import polars as pl

    was, now = pl.col("passed_before").fill_null(False), pl.col("passed").fill_null(False)
    changes = (
        after.select("target", "score", "passed")
        .with_columns(before["score"].alias("score_before"), before["passed"].alias("passed_before"))
        .group_by("target")
        .agg(graded=pl.col("score").is_not_null().sum(),
             scores_changed=pl.col("score").ne_missing(pl.col("score_before")).sum(),
             passed_before=was.sum(), passed_after=now.sum(),
             now_passed=(now & ~was).sum(), now_not_passed=(was & ~now).sum())
    )
    for row in changes.iter_rows(named=True):
        counts = result.by_target.setdefault(row.pop("target"), TargetChanges())
        for name, value in row.items():
            setattr(counts, name, getattr(counts, name) + value)
    result.judge_cost_usd += after["judge_cost_usd"].sum() or Decimal(0)
    result.replaced_judge_cost_usd += before["judge_cost_usd"].sum() or Decimal(0)


def _usd(amount: Decimal) -> str:
    """An exact amount without the trailing zeros of its stored scale: 0.0042, not 0.004200000000."""
    return f"{amount.normalize():f}"
