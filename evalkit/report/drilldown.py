"""Item drill-down: each item's prompt and every target's answer, grade and reason.

The page must stay small for any run, so at most ``max_rows`` cells are shown:
whole requests (item × repeat, all targets together, so answers stay
comparable) are drawn in a seeded random order until the cap is reached.
Long prompts and outputs are cut (the page says so on each one); everything
is escaped by the template, never here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_OUTPUT_CHARS", "MAX_PROMPT_CHARS", "drilldown", "load_prompts", "prompts_of",
           "run_dataset"]

MAX_PROMPT_CHARS = 2000
MAX_OUTPUT_CHARS = 1500


def run_dataset(manifest: dict[str, Any]) -> tuple[Any, str | None]:
    """The run's dataset, or ``None`` and why it cannot be read.

    The manifest's ``config.suite`` is tried first (a suite name or path), then
    the recorded dataset path: a moved or deleted dataset is ``None``.
    """
    from ..datasets import load_dataset

    config = manifest.get("config") or {}
    candidates = [config.get("suite"), (manifest.get("dataset") or {}).get("path")]
    problem = None
    for source in (c for c in candidates if c):
        try:
            return load_dataset(source), None
        except Exception as exc:  # noqa: BLE001 - try the next source, then report the last failure
            problem = str(exc) if str(exc).startswith(str(source)) else f"{source}: {exc}"
    return None, problem or "no dataset recorded in the manifest"


def load_prompts(manifest: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """item id → prompt text from the run's dataset, and a note when the dataset cannot be read."""
    return prompts_of(*run_dataset(manifest))


def prompts_of(dataset: Any, problem: str | None = None) -> tuple[dict[str, str], str | None]:
    """item id → prompt text of ``dataset`` (from :func:`run_dataset`); without one, the note says why."""
    if dataset is None:
        return {}, f"prompts unavailable ({problem})"
    return {item.id: _prompt_text(item) for item in dataset}, None


def _prompt_text(item: Any) -> str:
    """The item's messages, one block per message, role first when there are several."""
    messages = list(item.messages)
    if len(messages) == 1:
        return str(messages[0].content or "")
    return "\n\n".join(f"[{m.role}] {m.content or ''}" for m in messages)


def _cut(text: str | None, limit: int) -> tuple[str, bool]:
    text = text or ""
    return (text, False) if len(text) <= limit else (text[:limit], True)


def drilldown(results: Any, prompts: dict[str, str], max_rows: int, seed: int = 0) -> dict[str, Any]:
    """Requests to show (each with its cells), how many cells were shown out of how many."""
    import polars as pl

    requests = results.select("item_id", "repeat").unique().sort("item_id", "repeat")
    per_request = max(1, results.height // max(1, requests.height))
    sampled = results.height > max_rows
    if sampled:
        keep = requests.sample(n=max(1, max_rows // per_request), seed=seed, shuffle=True)
        shown = results.join(keep, on=["item_id", "repeat"], how="semi")
    else:
        shown = results
    shown = shown.sort("task_type", "item_id", "repeat", "target").head(max_rows)
    cols = ["item_id", "task_type", "repeat", "target", "status", "error_kind", "error", "score", "passed",
            "grade_reason", "output", "latency_ms", "cost_usd"]
    items: list[dict[str, Any]] = []
    for row in shown.select(cols).with_columns(pl.col("cost_usd").cast(pl.Float64)).iter_rows(named=True):
        if not items or (items[-1]["item_id"], items[-1]["repeat"]) != (row["item_id"], row["repeat"]):
            prompt, cut = _cut(prompts.get(row["item_id"]), MAX_PROMPT_CHARS)
            items.append({"item_id": row["item_id"], "task_type": row["task_type"], "repeat": row["repeat"],
                          "prompt": prompt, "prompt_cut": cut, "cells": []})
        row["output"], row["output_cut"] = _cut(row["output"] or row["error"], MAX_OUTPUT_CHARS)
        row["verdict"] = "error" if row["status"] == "error" else (
            "pass" if row["passed"] else "fail" if row["passed"] is not None else "ungraded")
        items[-1]["cells"].append(row)
    return {"items": items, "shown": shown.height, "total": results.height, "sampled": sampled,
            "max_rows": max_rows, "prompt_limit": MAX_PROMPT_CHARS, "output_limit": MAX_OUTPUT_CHARS,
            "task_types": sorted({i["task_type"] for i in items})}
