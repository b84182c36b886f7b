"""The numbers behind each report section, as plain dicts and lists a template can print.

Every function takes the results frame (and the manifest where needed) and
returns small structures: summaries are per task type × target, so their size
does not grow with the number of rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..analysis.emulated_targets import EmulatedTargets, emulated_targets

__all__ = ["emulated_targets_of", "error_counts", "header", "latency_stats", "leaderboard", "read_manifest",
           "routed_tasks", "routing"]


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest.json, or an empty dict for a table without one (the header says so)."""
    path = run_dir / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def header(manifest: dict[str, Any], results: Any, run_dir: Path) -> dict[str, Any]:
    """What was run, when, with which versions, and the totals."""
    import polars as pl

    from .._version import __version__

    config = manifest.get("config") or {}
    spend = results.get_column("cost_usd").cast(pl.Float64).sum() if results.height else 0.0
    judge = results.get_column("judge_cost_usd").cast(pl.Float64).sum() if results.height else 0.0
    unpriced = results.filter(pl.col("status") == "ok").get_column("cost_usd").null_count()
    return {
        "run_id": manifest.get("run_id") or run_dir.name,
        "suite": config.get("suite") or (manifest.get("dataset") or {}).get("name"),
        "dataset": manifest.get("dataset") or {},
        "targets": manifest.get("targets") or sorted(results.get_column("target").unique().to_list()),
        "simulated": manifest.get("simulated_targets") or [],
        "repeats": config.get("repeats"),
        "seed": config.get("seed"),
        "judge": config.get("judge"),
        "started_at": manifest.get("started_at"),
        "ended_at": manifest.get("ended_at"),
        "status": manifest.get("status"),
        "evalkit_version": manifest.get("evalkit_version"),
        "report_version": __version__,
        "price_data_version": manifest.get("price_data_version"),
        "git_sha": manifest.get("git_sha"),
        "requests": results.height,
        "n_items": results.get_column("item_id").n_unique(),
        "spend": spend or 0.0,
        "judge_spend": judge or 0.0,
        "unpriced": unpriced,
        "errors": results.filter(pl.col("status") == "error").height,
    }


def leaderboard(summary: Any) -> list[dict[str, Any]]:
    """Per task type, its targets' rows (best quality first), ready for a sortable table."""
    columns = ["target", "n", "quality", "quality_low", "quality_high", "success_rate", "pass_rate",
               "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "cost_per_item", "cost_per_success",
               "unpriced", "error_kinds"]
    out = []
    for task in sorted(summary.get_column("task_type").unique().to_list()):
        part = summary.filter(summary["task_type"] == task).sort("quality", descending=True, nulls_last=True)
        out.append({"task_type": task, "rows": part.select(columns).to_dicts()})
    return out


def latency_stats(results: Any) -> list[dict[str, Any]]:
    """p5/p25/p50/p75/p95 of latency and TTFT per target (the box plots' boxes)."""
    import polars as pl

    out = []
    for metric, column in (("latency", "latency_ms"), ("ttft", "ttft_ms")):
        col = pl.col(column)
        stats = results.group_by("target").agg(
            *(col.quantile(q / 100, "linear").alias(f"p{q}") for q in (5, 25, 50, 75, 95)))
        out += [{"metric": metric, **row} for row in stats.to_dicts()]
    return out


def error_counts(results: Any) -> dict[str, dict[str, int]]:
    """Per target, errored cells by error kind (``unknown`` when the kind was not recorded)."""
    import polars as pl

    errors = results.filter(pl.col("status") == "error").with_columns(
        pl.col("error_kind").fill_null("unknown"))
    counts: dict[str, dict[str, int]] = {}
    for row in errors.group_by("target", "error_kind").len().iter_rows(named=True):
        counts.setdefault(row["target"], {})[row["error_kind"]] = row["len"]
    return counts


def routing(results: Any, emulated: EmulatedTargets) -> dict[str, Any]:
    """``recommend`` with its defaults, and the replay of its table against the baselines.

    ``emulated`` (:func:`emulated_targets_of`) gives the emulated targets' windows
    and how the replayed config reaches them; what the run's fleet cannot tell
    about them is listed in ``fleet_problems``. Either half may fail on an odd
    run (one target, nothing graded, unpriced targets): the error text goes
    into the page instead of failing the report.
    """
    from ..analysis import recommend

    out: dict[str, Any] = {"table": None, "error": None, "replay": None, "replay_error": None,
                           "fleet_problems": list(emulated.problems)}
    try:
        table = recommend(results, context_windows=dict(emulated.windows) or None)
    except Exception as exc:  # noqa: BLE001 - shown in the page: a report of a run must not die on it
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["table"] = table
    out["rows"] = [*table.rows, table.default]
    try:
        out["replay"] = _replay(results, emulated, table)
    except Exception as exc:  # noqa: BLE001 - same: the replay section shows why instead
        out["replay_error"] = f"{type(exc).__name__}: {exc}"
    return out


def routed_tasks(routing_section: dict[str, Any]) -> list[str] | None:
    """The task types the recommended table routes (``None`` when there is no table)."""
    table = routing_section.get("table")
    return None if table is None else [row.task_type for row in table.rows]


def emulated_targets_of(run_dir: Path) -> EmulatedTargets:
    """The run's emulated targets as the fleet it used describes them (none for a table without a manifest)."""
    if not (run_dir / "manifest.json").is_file():
        return EmulatedTargets()
    return emulated_targets(run_dir)


def _replay(results: Any, emulated: EmulatedTargets, table: Any) -> Any:
    from ..analysis import policy_from_config, replay_policy

    # Emulated targets are named like real ones; the config must say they live on the emulator.
    policy = policy_from_config(table.to_config(dict(emulated.configs) or None))
    return replay_policy(results, policy)
