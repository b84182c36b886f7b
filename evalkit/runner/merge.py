"""``evalkit merge``: shard run directories → one run directory.

Shards must come from the same suite, targets and options (their manifests
say so) and be complete. Their Parquet parts are streamed into the merged run
one shard at a time, so merging never holds a whole run in memory.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from .lock import RunLock
from .manifest import now_iso
from .store import RunStore

__all__ = ["merge_runs"]

_SAME = ("repeats", "seed", "temperature", "max_tokens", "stream", "suite", "judge")


def merge_runs(shards: Sequence[Path], output: Path) -> Path:
    """Merge ``shards`` into a new run at ``output``; returns ``output``.

    ``output`` is created and locked while it is written, and removed again if
    writing fails (a full disk): a merge is all or nothing. The shards are
    locked shared meanwhile, so none of them can be resumed while it is read.
    """
    if output.exists():
        raise ConfigError("output already exists", file=str(output), field="--output")
    stores = [RunStore(s) for s in shards]
    with contextlib.ExitStack() as held:
        manifests = []
        for store in stores:
            if not store.manifest_path.is_file():
                raise ConfigError("not a run directory (no manifest.json)", file=str(store.path))
            held.enter_context(RunLock(store.path, shared=True, field="runs"))
            manifest = store.read_manifest()
            if manifest.get("status") != "complete" or store.log_parts():
                raise ConfigError("run is not complete; finish it with evalkit run --resume first",
                                  file=str(store.path))
            manifests.append(manifest)
        _check_same(stores, manifests)
        merged = dict(manifests[0], run_id=output.name, merged_from=[str(s.path) for s in stores],
                      ended_at=now_iso(), started_at=min(m["started_at"] for m in manifests))
        merged["config"] = dict(manifests[0]["config"], shard="merged")
        _write_merged(stores, output, merged)
    return output


def _check_same(stores: Sequence[RunStore], manifests: Sequence[dict]) -> None:
    first = manifests[0]
    for store, manifest in zip(stores[1:], manifests[1:]):
        for key, a, b in (("dataset", first["dataset"]["sha256"], manifest["dataset"]["sha256"]),
                          ("targets", first["targets"], manifest["targets"]),
                          *((k, first["config"].get(k), manifest["config"].get(k)) for k in _SAME)):
            if a != b:
                raise ConfigError(f"differs from {stores[0].path}: {a!r} vs {b!r}", file=str(store.path), field=key)


def _write_merged(stores: Sequence[RunStore], output: Path, manifest: dict) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        output.mkdir()  # the atomic claim on the name: a second merge into it gets the error
    except FileExistsError:
        raise ConfigError("output already exists", file=str(output), field="--output") from None
    try:
        with RunLock(output, field="--output"):
            _copy_parts(stores, output)
            RunStore(output).write_manifest(manifest)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        raise


def _copy_parts(stores: Sequence[RunStore], output: Path) -> None:
    for table in ("results", "attempts"):
        (output / table).mkdir(parents=True, exist_ok=True)
        for shard_index, store in enumerate(stores):
            for part in store.parquet_parts(table):
                shutil.copyfile(part, output / table / f"part-{shard_index:03d}{part.stem[4:]}.parquet")
