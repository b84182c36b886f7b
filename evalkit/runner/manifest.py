"""manifest.json: what a run was, so it can be resumed, compared and reproduced."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..datasets import Dataset

__all__ = ["build_manifest", "git_sha", "now_iso"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_sha(cwd: str | None = None) -> str | None:
    """The current commit of the working directory's repository, if any."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_manifest(*, run_id: str, dataset: Dataset, targets: list[str], config: Mapping[str, Any],
                   simulated: list[str] | None = None) -> dict[str, Any]:
    """The manifest of a new run (``ended_at`` is filled in when it finishes)."""
    from .._version import __version__
    from ..pricing import price_data_version

    return {
        "run_id": run_id,
        "evalkit_version": __version__,
        "git_sha": git_sha(),
        "dataset": {"name": dataset.name, "path": str(dataset.path), "sha256": dataset.sha256,
                    "items": len(dataset), "task_types": list(dataset.task_types)},
        "targets": list(targets),
        "simulated_targets": list(simulated or ()),
        "config": dict(config),
        "price_data_version": price_data_version(),
        "started_at": now_iso(),
        "ended_at": None,
        "status": "running",
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "cpus": os.cpu_count()},
    }
