"""One invocation of a run: new or resumed, with the emulator when asked, a progress bar and a manifest."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from ..errors import ConfigError
from ..providers import Closeable
from ._cells import Shard
from .lock import RunLock
from .manifest import build_manifest, now_iso
from ._grading import needs_judge
from ._pacing import TRANSIENT_KINDS, check_priced, spend_ledger
from .run import RunOptions, RunTotals, run_cells
from .store import RunStore
from .targets import EMULATOR_PREFIX, resolve_targets

if TYPE_CHECKING:
    from ..datasets import Dataset
    from ..emulator import Emulator
    from ..providers import Provider
    from ..router import BudgetLedger
    from .cassettes import RecordingCassette, ReplayCassette, ReplayEmulator
    from .store import Key

__all__ = ["RunResult", "check_run_id", "new_run_id", "run_suite"]


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
                    progress: bool | Callable[[Mapping[str, Any], RunTotals], None] = True,
                    cassette: RecordingCassette | ReplayCassette | None = None,
                    retry_failed: bool = False) -> RunResult:
    """Run (or resume) ``suite`` × ``target_specs`` × ``options.repeats`` and return where it went.

    ``emulator`` (``{"seed": 0, "time_scale": 0.02, "fleet": "my_fleet.yaml"}``, fleet
    optional) starts the in-process provider emulator for ``emulator:MODEL`` targets; a
    suite it does not bundle is registered with it, so its answers are gradable. On
    resume, the suite, targets, judge, emulator settings and the options that decide
    which cells there are and what they ask come from the run's manifest; the options
    of this invocation (``concurrency``, ``retries``, ``max_spend``,
    ``unsafe_code_exec``) are taken from ``options`` and recorded in it.
    ``retry_failed`` (with ``resume``) asks again the cells whose last ask failed with a
    transient error. Judge-graded items need ``judge_spec`` unless ``options.no_judge``
    (a :class:`~evalkit.ConfigError` before anything is written). When
    ``options.max_spend`` stops a run, its manifest says ``"status": "incomplete"``.
    ``progress``: True draws a progress bar (a line updated in place in Jupyter), False
    nothing, a callable is called with each finished row and the running :class:`RunTotals`.
    ``cassette`` (from :func:`~evalkit.runner.cassettes.cassette`, or a ``ReplayCassette``): every
    provider, judge included, sends through it: the run is recorded, or replayed with no server.

    ``run_id`` is one directory name inside ``runs_dir`` (letters, digits, ``.``, ``_``,
    ``-``). The run directory is locked while this runs: a second writer gets a
    :class:`~evalkit.ConfigError`. A failed write (a full disk) raises the ``OSError``
    and leaves a run that ``resume`` completes.
    """
    from ..datasets import load_dataset

    if resume is not None:
        store, suite, target_specs, options, judge_spec, emulator = _resumed(Path(resume), options)
    else:
        store = _new_store(runs_dir, run_id, retry_failed)
    _check_emulator_settings(emulator)
    dataset = load_dataset(suite)
    _check_judge(dataset, options, judge_spec)
    async with contextlib.AsyncExitStack() as held:
        if resume is not None:  # locked before anything starts: a second writer is refused at once
            held.enter_context(RunLock(store.path, field="--resume"))
        replay = cassette is not None and cassette.replay  # a replay's cassette answers: no server needed
        emu = held.enter_context(_maybe_emulator(target_specs, judge_spec, emulator, replay=replay))
        if emu is not None and not replay:
            _register_suite(emu, dataset)
        targets, judge = _held_targets(held, target_specs, judge_spec, emu, cassette)
        if options.max_spend is not None:
            check_priced(targets, judge)
        again = _failed_cells(store) if retry_failed else None
        if resume is None:
            config = {**options.as_dict(), "suite": str(suite), "judge": judge_spec, "emulator": emulator}
            held.enter_context(_created(store, build_manifest(
                run_id=store.path.name, dataset=dataset, targets=list(target_specs), config=config,
                simulated=[t.name for s, t in zip(target_specs, targets) if s.startswith(EMULATOR_PREFIX)])))
        else:
            _reopened(store, dataset, options, retry_failed=retry_failed)
        ledger = spend_ledger(options.max_spend, _spent(store) if resume is not None else Decimal(0))
        totals = await _ask_missing_cells(store, dataset, targets, judge, options, progress, again, ledger)
        _record_end(store, totals)
    return RunResult(store.path, totals)


def _new_store(runs_dir: str | Path, run_id: str | None, retry_failed: bool) -> RunStore:
    """The store of a new run; a :class:`~evalkit.ConfigError` when its directory exists."""
    if retry_failed:
        raise ConfigError("only asks again the failed cells of a run being resumed; add --resume RUN_DIR",
                          field="--retry-failed")
    store = RunStore(Path(runs_dir) / (check_run_id(run_id) if run_id is not None else new_run_id()))
    _check_new(store)
    return store


def _held_targets(held: contextlib.AsyncExitStack, specs: Sequence[str], judge_spec: str | None,
                  emu: Emulator | ReplayEmulator | None, cassette: RecordingCassette | ReplayCassette | None,
                  ) -> tuple[list[Provider], Provider | None]:
    """The run's targets and judge, each closed when ``held`` closes (before the emulator stops)."""
    transport = None
    if cassette is not None:  # one for the whole run; its connections close after every provider has
        transport = cassette.transport()
        held.push_async_callback(transport.aclose_pool)
    targets = resolve_targets(specs, emulator=emu, transport=transport)
    judge = resolve_targets([judge_spec], emulator=emu, transport=transport)[0] if judge_spec else None
    for closable in (*targets, judge):
        if isinstance(closable, Closeable):
            held.push_async_callback(closable.aclose)
    return targets, judge


def _record_end(store: RunStore, totals: RunTotals) -> None:
    """The manifest says when this invocation ended and whether the run is complete or stopped by the cap."""
    manifest = store.read_manifest()
    manifest.update(ended_at=now_iso(), status="complete" if not totals.not_asked else "incomplete")
    if totals.not_asked:
        manifest["stopped"] = {"reason": "max_spend", "cells_not_asked": totals.not_asked}
    else:
        manifest.pop("stopped", None)
    store.write_manifest(manifest)


async def _ask_missing_cells(store: RunStore, dataset: Dataset, targets: Sequence[Provider], judge: Provider | None,
                             options: RunOptions, progress: bool | Callable[[Mapping[str, Any], RunTotals], None],
                             again: Mapping[Key, Sequence[Mapping[str, Any]]] | None,
                             ledger: BudgetLedger | None) -> RunTotals:
    """Ask every cell not yet in ``store``, with Parquet compacted before and after (also after a failure)."""
    store.compact()  # a crashed run may have left log parts behind
    _warn_if_code_cannot_run(dataset, options)
    try:
        with _progress(progress, dataset.name) as on_row:
            totals = await run_cells(dataset, targets, store, options, run_id=store.path.name, judge=judge,
                                     on_row=on_row, again=again, ledger=ledger)
    except BaseException:
        with contextlib.suppress(OSError):  # the disk may still be full: resume compacts what is left
            store.compact()
        raise
    store.compact()
    return totals


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str) -> str:
    """``run_id`` when it is one plain directory name; a :class:`~evalkit.ConfigError` otherwise.

    A path separator, ``..`` or an absolute path would put the run outside the runs directory.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"expected one directory name (letters, digits, '.', '_', '-'; at most 128, "
                          f"starting with a letter or digit), got {run_id!r}", field="--run-id")
    return run_id


def _check_new(store: RunStore) -> None:
    if store.path.exists():
        raise ConfigError("run directory already exists; use --resume to continue it",
                          file=str(store.path), field="--run-id")


@contextlib.contextmanager
def _created(store: RunStore, manifest: Mapping[str, Any]) -> Iterator[None]:
    """Create the run directory, lock it and write its manifest; hold the lock until the run ends.

    ``mkdir`` without ``exist_ok`` is the atomic claim on the name: of two runs
    started with the same ``--run-id`` one gets the error. When the manifest
    cannot be written (a full disk), the directory goes again: no half-made run.
    """
    store.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        store.path.mkdir()
    except FileExistsError:
        _check_new(store)
        raise
    lock = RunLock(store.path, field="--run-id")
    try:
        lock.acquire()
        store.write_manifest(manifest)
    except BaseException:
        lock.release()
        shutil.rmtree(store.path, ignore_errors=True)
        raise
    try:
        yield
    finally:
        lock.release()


def _check_emulator_settings(settings: Mapping[str, Any] | None) -> None:
    if settings and "time_scale" in settings:
        from .run import check_number

        check_number(settings["time_scale"], "--time-scale")


INVOCATION_OPTIONS = ("concurrency", "retries", "max_spend", "unsafe_code_exec")
"""Options of one invocation: a resume takes them from the caller and records them in the manifest."""


def _resumed(path: Path, given: RunOptions
             ) -> tuple[RunStore, str, list[str], RunOptions, str | None, dict[str, Any] | None]:
    store = RunStore(path)
    if not store.manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(path), field="--resume")
    manifest = store.read_manifest()
    config = manifest["config"]
    options = RunOptions(repeats=config["repeats"], concurrency=given.concurrency, seed=config["seed"],
                         temperature=config["temperature"], max_tokens=config["max_tokens"],
                         stream=config["stream"], shard=_shard(config.get("shard")) or given.shard,
                         unsafe_code_exec=bool(config.get("unsafe_code_exec")) or given.unsafe_code_exec,
                         retries=given.retries, limit=config.get("limit"), max_spend=given.max_spend,
                         no_judge=bool(config.get("no_judge")))
    return store, config["suite"], manifest["targets"], options, config.get("judge"), config.get("emulator")


def _reopened(store: RunStore, dataset: Dataset, options: RunOptions, *, retry_failed: bool = False) -> None:
    """Check a resumed run is of the same dataset; record this invocation's options in its manifest."""
    manifest = store.read_manifest()
    if manifest["dataset"]["sha256"] != dataset.sha256:
        raise ConfigError("the dataset changed since this run started; resume would mix two suites",
                          file=str(dataset.path), field="sha256")
    given = {name: options.as_dict()[name] for name in INVOCATION_OPTIONS}
    manifest["config"].update(given)
    manifest.setdefault("resumes", []).append({"at": now_iso(), **given, "retry_failed": retry_failed})
    store.write_manifest(manifest)


def _check_judge(dataset: Dataset, options: RunOptions, judge_spec: str | None) -> None:
    """Judge-graded items need a judge, or ``--no-judge`` to leave them ungraded on purpose."""
    if options.no_judge and judge_spec:
        raise ConfigError("--no-judge leaves judge-graded items ungraded, so a judge would be unused",
                          field="--judge")
    if judge_spec or options.no_judge:
        return
    items = dataset.items[:options.limit] if options.limit else dataset.items
    judged = [item.id for item in items if needs_judge(item)]
    if judged:
        raise ConfigError(f"{len(judged)} items are graded by an LLM judge (first: {judged[0]!r}) and no judge "
                          "is given; pass --judge PROVIDER:MODEL, or --no-judge to leave them ungraded",
                          file=str(dataset.path), field="--judge")


def _register_suite(emu: Emulator | ReplayEmulator, dataset: Dataset) -> None:
    """A suite the emulator does not bundle is registered with it: its prompts get gradable answers.

    A replay's emulator (no server) has nothing to register with: the cassette answers.
    """
    register = getattr(emu, "register", None)
    if register is None:
        return
    added = register(dataset.items)
    if added.registered:
        print(f"evalkit: note: {added.registered} prompts of {dataset.name} registered with the emulator: its "
              "models answer them right or wrong by their skill per task type", file=sys.stderr)


def _failed_cells(store: RunStore) -> Mapping[Key, Sequence[Mapping[str, Any]]]:
    """The cells whose last ask failed with a transient error, with the attempt records of their asks."""
    return store.failed_cells(TRANSIENT_KINDS)


def _spent(store: RunStore) -> Decimal:
    """What a run's written cells cost so far, models and judge (unpriced counted as nothing known)."""
    from .results import results_df

    results = results_df(store.path, exact_money=True)
    total = Decimal(0)
    for column in ("cost_usd", "judge_cost_usd"):
        value = results[column].drop_nulls().sum() if results.height else None
        total += Decimal(str(value)) if value is not None else Decimal(0)
    return total


def _warn_if_code_cannot_run(dataset: Dataset, options: RunOptions) -> None:
    """One line on stderr when code_exec items will stay ungraded: no sandbox, and no permission to run without."""
    if options.unsafe_code_exec or not any((item.grader or {}).get("type") == "code_exec" for item in dataset):
        return
    from ..graders import sandbox_problem

    problem = sandbox_problem()
    if problem is not None:
        print(f"evalkit: warning: code_exec items will be ungraded: {problem}. Install bubblewrap, or pass "
              "--unsafe-code-exec to run model-written code without isolation (trusted models only)",
              file=sys.stderr)


def _shard(text: str | None) -> Shard | None:
    from ._cells import parse_shard

    return parse_shard(text) if text else None


@contextlib.contextmanager
def _maybe_emulator(specs: Sequence[str], judge: str | None, settings: dict[str, Any] | None, *,
                    replay: bool = False) -> Iterator[Emulator | ReplayEmulator | None]:
    needed = any(s.startswith(EMULATOR_PREFIX) for s in [*specs, judge or ""])
    if not needed:
        yield None
        return
    from .cassettes import replay_emulator

    settings = settings or {}
    seed, time_scale, fleet = settings.get("seed", 0), settings.get("time_scale", 0.02), settings.get("fleet")
    if replay:
        # The cassette answers every request of a replay: emulator targets need the fleet, not a server.
        yield replay_emulator(fleet, seed, time_scale)
        return
    from ..emulator import Emulator

    with Emulator(fleet, seed=seed, time_scale=time_scale) as emu:
        yield emu


@contextlib.contextmanager
def _progress(enabled: bool | Callable[[Mapping[str, Any], RunTotals], None], label: str
              ) -> Iterator[Callable[[Mapping[str, Any], RunTotals], None] | None]:
    if callable(enabled):  # the caller's own: called with each finished row and the running totals
        yield enabled
        return
    if not enabled:
        yield None
        return
    from .progress import NotebookProgress, RunProgress, in_notebook

    from .._secret import scrub

    with (NotebookProgress if in_notebook() else RunProgress)(scrub(label)) as bar:
        yield bar.update
