"""``evalkit regrade``: grade a recorded run again without asking any model.

A run keeps every answer it received, so the run itself is the response cache:
after a grader changes (a fixed extraction rule, a new judge), the recorded
outputs are graded again and the results parts are rewritten in place
(atomically, one part at a time). Attempts, latencies and costs are untouched;
only ``score``, ``passed``, ``grade_reason`` and ``judge_cost_usd`` change.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .lock import RunLock
from .run import _GraderCache
from .store import RunStore, write_parquet

__all__ = ["regrade"]


async def regrade(run_dir: str | Path, *, judge: Any = None, concurrency: int = 8,
                  unsafe_code_exec: bool = False) -> int:
    """Grade every answered cell of ``run_dir`` again; returns how many cells were graded.

    The run directory is locked meanwhile (a :class:`~evalkit.ConfigError` if another
    process writes it). ``unsafe_code_exec`` (or the run's own setting) lets
    ``code_exec`` items run without a sandbox when none is available.
    """
    store = RunStore(run_dir)
    if not store.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(run_dir))
    with RunLock(store.path, field="run_dir"):
        store.compact()
        manifest = store.read_manifest()
        unsafe = unsafe_code_exec or bool(manifest["config"].get("unsafe_code_exec"))
        return await _regrade_parts(store, manifest, _GraderCache(judge, unsafe_code_exec=unsafe), concurrency)


async def _regrade_parts(store: RunStore, manifest: dict[str, Any], graders: _GraderCache,
                         concurrency: int) -> int:
    import polars as pl

    from ..datasets import load_dataset

    dataset = load_dataset(manifest["config"]["suite"])
    if dataset.sha256 != manifest["dataset"]["sha256"]:
        raise ConfigError("the dataset changed since this run; its items no longer match the answers",
                          file=str(dataset.path), field="sha256")
    items = {item.id: item for item in dataset}
    gate = asyncio.Semaphore(concurrency)
    graded = 0
    for part in store.parquet_parts("results"):
        frame = pl.read_parquet(part)

        async def grade(item_id: str, output: str | None, status: str) -> dict[str, Any]:
            if status != "ok" or output is None:
                return {"score": None, "passed": None, "grade_reason": None, "judge_cost_usd": None}
            async with gate:
                return await graders.grade(items[item_id], output)

        grades = await asyncio.gather(*(grade(i, o, s) for i, o, s in
                                        zip(frame["item_id"], frame["output"], frame["status"])))
        graded += sum(g["score"] is not None for g in grades)
        updated = frame.with_columns(
            pl.Series("score", [g["score"] for g in grades], dtype=pl.Float64),
            pl.Series("passed", [g["passed"] for g in grades], dtype=pl.Boolean),
            pl.Series("grade_reason", [g["grade_reason"] for g in grades], dtype=pl.String),
            pl.Series("judge_cost_usd", [g.get("judge_cost_usd") for g in grades],
                      dtype=pl.String).cast(frame.schema["judge_cost_usd"]),
        )
        write_parquet(updated, part)
    return graded
