"""``evalkit merge``: shard run directories → one run directory.

Shards must come from the same suite, targets and options (their manifests
say so) and be complete. Their Parquet parts are streamed into the merged run
one shard at a time, so merging never holds a whole run in memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from .manifest import now_iso
from .store import RunStore

__all__ = ["merge_runs"]

_SAME = ("repeats", "seed", "temperature", "max_tokens", "stream", "suite", "judge")


def merge_runs(shards: Sequence[Path], output: Path) -> Path:
    """Merge ``shards`` into a new run at ``output``; returns ``output``."""
    if output.exists():
        raise ConfigError("output already exists", file=str(output), field="--output")
    stores = [RunStore(s) for s in shards]
    manifests = []
    for store in stores:
        if not store.manifest_path.is_file():
            raise ConfigError("not a run directory (no manifest.json)", file=str(store.path))
        manifest = store.read_manifest()
        if manifest.get("status") != "complete" or store.log_parts():
            raise ConfigError("run is not complete; finish it with evalkit run --resume first",
                              file=str(store.path))
        manifests.append(manifest)
    first = manifests[0]
    for store, manifest in zip(stores[1:], manifests[1:]):
        for key, a, b in (("dataset", first["dataset"]["sha256"], manifest["dataset"]["sha256"]),
                          ("targets", first["targets"], manifest["targets"]),
                          *((k, first["config"].get(k), manifest["config"].get(k)) for k in _SAME)):
            if a != b:
                raise ConfigError(f"differs from {stores[0].path}: {a!r} vs {b!r}", file=str(store.path), field=key)
    _copy_parts(stores, output)
    merged = dict(first, run_id=output.name, merged_from=[str(s.path) for s in stores], ended_at=now_iso(),
                  started_at=min(m["started_at"] for m in manifests))
    merged["config"] = dict(first["config"], shard="merged")
    RunStore(output).write_manifest(merged)
    return output


def _copy_parts(stores: Sequence[RunStore], output: Path) -> None:
    for table in ("results", "attempts"):
        (output / table).mkdir(parents=True, exist_ok=True)
        for shard_index, store in enumerate(stores):
            for part in store.parquet_parts(table):
                shutil.copyfile(part, output / table / f"part-{shard_index:03d}{part.stem[4:]}.parquet")
