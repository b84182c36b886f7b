"""``evalkit regrade``: grade a recorded run again without asking any model.

A run keeps every answer it received, so the run itself is the response cache:
after a grader changes (a fixed extraction rule, a new judge), the recorded
outputs are graded again and the results parts are rewritten in place
(atomically, one part at a time). Attempts, latencies and costs are untouched;
only ``score``, ``passed``, ``grade_reason`` and ``judge_cost_usd`` change.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .run import _GraderCache
from .store import RunStore

__all__ = ["regrade"]


async def regrade(run_dir: str | Path, *, judge: Any = None, concurrency: int = 8) -> int:
    """Grade every answered cell of ``run_dir`` again; returns how many cells were graded."""
    import polars as pl

    from ..datasets import load_dataset

    store = RunStore(run_dir)
    if not store.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(run_dir))
    store.compact()
    manifest = store.read_manifest()
    dataset = load_dataset(manifest["config"]["suite"])
    if dataset.sha256 != manifest["dataset"]["sha256"]:
        raise ConfigError("the dataset changed since this run; its items no longer match the answers",
                          file=str(dataset.path), field="sha256")
    items = {item.id: item for item in dataset}
    graders = _GraderCache(judge)
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
        tmp = part.with_suffix(".parquet.tmp")
        updated.write_parquet(tmp)
        os.replace(tmp, part)
    return graded
