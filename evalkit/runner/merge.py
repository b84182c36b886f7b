"""``evalkit merge``: shard run directories → one run directory.

Shards must come from the same suite, targets and options (their manifests
say so), each a different ``k/N`` slice of the cells (``--shard``). A merge of
fewer than N shards, or of a shard that did not finish (its status is not
``complete``, or cells of its slice are missing), is written all the same and
marked ``"status": "incomplete"`` in the merged manifest, which says what is
missing (``"incomplete"``); :class:`MergeResult` says it too, for the command
to print. ``evalkit run --resume MERGED`` asks the missing cells: the merged
run is the whole ``1/1`` slice.

Parts are streamed into the merged run one at a time, in the order each shard
wrote them, renumbered; log lines a crashed shard left are written as Parquet
parts. Merging never holds a whole run in memory, nor writes to a shard.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ._cells import Shard, parse_shard, shard_size
from ._log_parts import read_log_part
from .lock import RunLock
from .manifest import now_iso
from .schema import KEY
from .store import RunStore, part_order, write_parquet

__all__ = ["MergeResult", "ShardState", "merge_runs"]

_SAME = ("repeats", "seed", "temperature", "max_tokens", "stream", "suite", "judge", "limit")
# What a shard's manifest keeps of its own history; the merged run starts its own.
_PER_RUN = ("stopped", "resumes", "regrades", "incomplete", "shards", "merged_from")


@dataclass(frozen=True)
class ShardState:
    """One shard as merged: which slice it is, how it ended, how many of its slice's cells it has."""

    shard: str
    path: str
    status: str | None
    cells: int
    expected_cells: int

    @property
    def missing_cells(self) -> int:
        return self.expected_cells - self.cells

    @property
    def complete(self) -> bool:
        return self.status == "complete" and self.missing_cells <= 0

    def as_dict(self) -> dict[str, Any]:
        return {"shard": self.shard, "path": self.path, "status": self.status, "cells": self.cells,
                "expected_cells": self.expected_cells}


@dataclass(frozen=True)
class MergeResult:
    """Where the merged run is and whether it has every cell (what ``evalkit merge`` prints)."""

    output: Path
    shards: tuple[ShardState, ...]
    missing_shards: tuple[str, ...]
    missing_shard_cells: int
    """Cells of the shards not given."""

    @property
    def incomplete_shards(self) -> tuple[ShardState, ...]:
        return tuple(s for s in self.shards if not s.complete)

    @property
    def missing_cells(self) -> int:
        return self.missing_shard_cells + sum(max(s.missing_cells, 0) for s in self.shards)

    @property
    def complete(self) -> bool:
        return not self.missing_shards and not self.incomplete_shards

    def problems(self) -> list[str]:
        """One line per missing or incomplete shard (scrubbed of secret values); empty when complete."""
        from .._secret import scrub

        lines = []
        if self.missing_shards:
            lines.append(f"shard{'s' * (len(self.missing_shards) > 1)} {', '.join(self.missing_shards)} not "
                         f"given ({self.missing_shard_cells} cells)")
        for s in self.incomplete_shards:
            lines.append(f"shard {s.shard} ({s.path}) is {s.status or 'of unknown status'}: "
                         f"{max(s.missing_cells, 0)} of its {s.expected_cells} cells missing")
        return [scrub(line) for line in lines]


def merge_runs(shards: Sequence[Path], output: Path) -> MergeResult:
    """Merge ``shards`` into a new run at ``output``; says which shards and how many cells are missing.

    ``output`` is created and locked while it is written, and removed again if
    writing fails (a full disk): a merge is all or nothing. The shards are
    locked shared meanwhile, so none of them can be resumed while it is read.
    Shards of different runs, of different shard counts, or the same shard
    twice are a :class:`~evalkit.ConfigError`.
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
            manifests.append(store.read_manifest())
        _check_same(stores, manifests)
        result = _shard_states(stores, manifests, output)
        _write_merged(stores, output, _merged_manifest(stores, manifests, result))
    return result


def _check_same(stores: Sequence[RunStore], manifests: Sequence[Mapping[str, Any]]) -> None:
    first = manifests[0]
    for store, manifest in zip(stores[1:], manifests[1:]):
        for key, a, b in (("dataset", first["dataset"]["sha256"], manifest["dataset"]["sha256"]),
                          ("targets", first["targets"], manifest["targets"]),
                          ("no_judge", bool(first["config"].get("no_judge")),
                           bool(manifest["config"].get("no_judge"))),
                          *((k, first["config"].get(k), manifest["config"].get(k)) for k in _SAME)):
            if a != b:
                raise ConfigError(f"differs from {stores[0].path}: {a!r} vs {b!r}", file=str(store.path), field=key)


def _shard_of(store: RunStore, manifest: Mapping[str, Any]) -> Shard:
    text = manifest["config"].get("shard") or "1/1"
    try:
        return parse_shard(text)
    except ConfigError:
        raise ConfigError(f"not a shard of a run: its shard is {text!r}", file=str(store.manifest_path),
                          field="shard") from None


def _shard_states(stores: Sequence[RunStore], manifests: Sequence[Mapping[str, Any]], output: Path) -> MergeResult:
    """Each shard's slice, status and cells; the slices no shard covers."""
    shards = [_shard_of(store, m) for store, m in zip(stores, manifests)]
    seen: dict[int, RunStore] = {}
    for store, shard in zip(stores, shards):
        if shard.count != shards[0].count:
            raise ConfigError(f"is shard {shard} but {stores[0].path} is shard {shards[0]}: shards of different "
                              "splits do not add up to one run", file=str(store.path), field="shard")
        if shard.index in seen:
            raise ConfigError(f"shard {shard} is given twice (also {seen[shard.index].path})",
                              file=str(store.path), field="shard")
        seen[shard.index] = store
    config, count = manifests[0]["config"], shards[0].count
    items = manifests[0]["dataset"]["items"]
    sizes = (min(items, config["limit"]) if config.get("limit") else items, len(manifests[0]["targets"]),
             config["repeats"])
    states = tuple(
        ShardState(str(shard), str(store.path), manifest.get("status"),
                   store.read_table("results", KEY).n_unique(), shard_size(*sizes, shard))
        for store, manifest, shard in zip(stores, manifests, shards))
    missing = [Shard(k, count) for k in range(1, count + 1) if k not in seen]
    return MergeResult(output, states, tuple(str(s) for s in missing), sum(shard_size(*sizes, s) for s in missing))


def _merged_manifest(stores: Sequence[RunStore], manifests: Sequence[Mapping[str, Any]],
                     result: MergeResult) -> dict[str, Any]:
    merged = {k: v for k, v in manifests[0].items() if k not in _PER_RUN}
    merged.update(run_id=result.output.name, merged_from=[str(s.path) for s in stores], ended_at=now_iso(),
                  started_at=min(m["started_at"] for m in manifests),
                  status="complete" if result.complete else "incomplete",
                  shards=[{**state.as_dict(), **{k: m[k] for k in _PER_RUN if k in m}}  # each shard's history
                          for state, m in zip(result.shards, manifests)])
    # The merged run is the whole of the cells: resuming it asks the ones missing.
    # Each shard's --max-spend capped that shard: the merged run has no cap until a resume gives one.
    merged["config"] = dict(manifests[0]["config"], shard="1/1", max_spend=None)
    if not result.complete:
        merged["incomplete"] = {"missing_shards": list(result.missing_shards),
                                "incomplete_shards": [s.shard for s in result.incomplete_shards],
                                "missing_cells": result.missing_cells}
    return merged


def _write_merged(stores: Sequence[RunStore], output: Path, manifest: Mapping[str, Any]) -> None:
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
    """Every part of every shard, in shard order and each shard's write order, as ``part-NNNN`` of ``output``.

    A log part a crashed shard left (no Parquet part of its name) is written
    as the Parquet parts it would have been compacted into.
    """
    tables = ("results", "attempts")
    for table in tables:
        (output / table).mkdir(parents=True, exist_ok=True)
    number = 0
    for store in stores:
        parquet = {table: {p.stem: p for p in store.parquet_parts(table)} for table in tables}
        logs = {p.stem: p for p in store.log_parts()}
        stems = {*parquet["results"], *parquet["attempts"], *logs}
        for stem in sorted(stems, key=lambda s: part_order(Path(s))):
            name, parsed = f"part-{number:04d}.parquet", None
            for index, table in enumerate(tables):
                if stem in parquet[table]:
                    shutil.copyfile(parquet[table][stem], output / table / name)
                elif stem in logs:
                    parsed = parsed or read_log_part(logs[stem])
                    if parsed is not None:
                        write_parquet(parsed[index], output / table / name)
            number += 1
