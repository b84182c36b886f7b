"""One invocation of a run: new or resumed, with the emulator when asked, a progress bar and a manifest."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import ConfigError
from ._cells import Shard
from .manifest import build_manifest, now_iso
from .run import RunOptions, RunTotals, run_cells
from .store import RunStore
from .targets import EMULATOR_PREFIX, resolve_targets

__all__ = ["RunResult", "run_suite", "new_run_id"]


@dataclass(frozen=True)
class RunResult:
    """Where a run is and what this invocation did."""

    run_dir: Path
    totals: RunTotals


def new_run_id() -> str:
    """Sortable and unique: ``20261126-153012-a1b2``."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


async def run_suite(suite: str | Path, target_specs: Sequence[str], *, options: RunOptions = RunOptions(),
                    runs_dir: str | Path = "runs", run_id: str | None = None, resume: str | Path | None = None,
                    judge_spec: str | None = None, emulator: dict[str, Any] | None = None,
                    progress: bool | Callable[[Mapping[str, Any], RunTotals], None] = True) -> RunResult:
    """Run (or resume) ``suite`` × ``target_specs`` × ``options.repeats`` and return where it went.

    ``emulator`` (``{"seed": 0, "time_scale": 0.02, "fleet": "my_fleet.yaml"}``, fleet
    optional) starts the in-process provider emulator for ``emulator:MODEL`` targets. On
    resume, the suite, targets, options and emulator settings come from the run's manifest.
    ``progress``: True draws a progress bar (a line updated in place in Jupyter), False
    nothing, a callable is called with each finished row and the running :class:`RunTotals`.
    """
    from ..datasets import load_dataset

    if resume is not None:
        store, suite, target_specs, options, judge_spec, emulator = _resumed(Path(resume), options.shard)
        run_id = store.path.name
    dataset = load_dataset(suite)
    with _maybe_emulator(target_specs, judge_spec, emulator) as emu:
        targets = resolve_targets(target_specs, emulator=emu)
        judge = resolve_targets([judge_spec], emulator=emu)[0] if judge_spec else None
        if resume is None:
            run_id = run_id or new_run_id()
            store = RunStore(Path(runs_dir) / run_id)
            if store.path.exists():
                raise ConfigError("run directory already exists; use --resume to continue it",
                                  file=str(store.path), field="--run-id")
            config = {**options.as_dict(), "suite": str(suite), "judge": judge_spec, "emulator": emulator}
            store.write_manifest(build_manifest(
                run_id=run_id, dataset=dataset, targets=list(target_specs), config=config,
                simulated=[t.name for s, t in zip(target_specs, targets) if s.startswith(EMULATOR_PREFIX)]))
        else:
            _check_same_dataset(store, dataset)
        store.compact()  # a crashed run may have left log parts behind
        try:
            with _progress(progress, dataset.name) as on_row:
                totals = await run_cells(dataset, targets, store, options, run_id=run_id, judge=judge,
                                         on_row=on_row)
        finally:
            store.compact()
            for closable in [*targets, judge]:
                if closable is not None and hasattr(closable, "aclose"):
                    await closable.aclose()
        manifest = store.read_manifest()
        manifest.update(ended_at=now_iso(), status="complete")
        store.write_manifest(manifest)
    return RunResult(store.path, totals)


def _resumed(path: Path, shard: Shard) -> tuple:
    store = RunStore(path)
    if not store.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(path), field="--resume")
    manifest = store.read_manifest()
    config = manifest["config"]
    options = RunOptions(repeats=config["repeats"], concurrency=config["concurrency"], seed=config["seed"],
                         temperature=config["temperature"], max_tokens=config["max_tokens"],
                         stream=config["stream"], shard=_shard(config.get("shard")) or shard)
    return store, config["suite"], manifest["targets"], options, config.get("judge"), config.get("emulator")


def _shard(text: str | None) -> Shard | None:
    from ._cells import parse_shard

    return parse_shard(text) if text else None


def _check_same_dataset(store: RunStore, dataset: Any) -> None:
    recorded = store.read_manifest()["dataset"]["sha256"]
    if recorded != dataset.sha256:
        raise ConfigError("the dataset changed since this run started; resume would mix two suites",
                          file=str(dataset.path), field="sha256")


@contextlib.contextmanager
def _maybe_emulator(specs: Sequence[str], judge: str | None, settings: dict[str, Any] | None) -> Iterator[Any]:
    needed = any(s.startswith(EMULATOR_PREFIX) for s in [*specs, judge or ""])
    if not needed:
        yield None
        return
    from .cassettes import replay_emulator, replaying

    settings = settings or {}
    seed, time_scale, fleet = settings.get("seed", 0), settings.get("time_scale", 0.02), settings.get("fleet")
    if replaying():
        # The cassette answers every request of a replay: emulator targets need the fleet, not a server.
        yield replay_emulator(fleet, seed, time_scale)
        return
    from ..emulator import Emulator

    with Emulator(fleet, seed=seed, time_scale=time_scale) as emu:
        yield emu


@contextlib.contextmanager
def _progress(enabled: bool | Callable[..., None], label: str) -> Iterator[Any]:
    if callable(enabled):  # the caller's own: called with each finished row and the running totals
        yield enabled
        return
    if not enabled:
        yield None
        return
    from .progress import NotebookProgress, RunProgress, in_notebook

    with (NotebookProgress if in_notebook() else RunProgress)(label) as bar:
        yield bar.update
