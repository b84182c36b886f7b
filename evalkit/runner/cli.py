"""``evalkit run`` and ``evalkit merge``: argument parsing and what they print.

With no arguments ``evalkit run`` is the main job on the embedded default: the
in-process provider emulator, its whole fleet, the bundled ``default`` suite.

Exit codes: 2 for bad input, before anything is written (a flag out of range,
a run directory another evalkit process is writing); 1 when the system refuses
a write (a full disk, a read-only directory): one line, and the run resumes
once that is fixed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from pathlib import Path
from typing import Any, Callable

from .._secret import scrubbed_warnings
from .._flags import blank_refused, number
from ..errors import ConfigError

__all__ = ["add_merge_parser", "add_regrade_parser", "add_run_parser", "merge_command", "regrade_command", "run_command"]

DEFAULT_TIME_SCALE = 0.02


_UNSAFE_HELP = ("run model-written code of code_exec items without isolation when no sandbox (bubblewrap) is "
                "available; only for trusted models on a machine you can afford to lose")


def add_run_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run a suite across targets (default: bundled suite × emulated fleet)",
                              description=__doc__)
    p.add_argument("--suite", type=blank_refused, default="default",
                   help="bundled suite name or dataset path (default: default)")
    p.add_argument("--targets", type=blank_refused, help="comma-separated provider:model, routing.yaml or "
                   "emulator:MODEL (default: every model of the emulator fleet)")
    p.add_argument("--judge", type=blank_refused, help="target that grades judge items "
                                                         "(default: emulator:sim-large)")
    p.add_argument("--repeats", type=_within("--repeats", whole=True), default=1,
                   help="independent samples per item and target (default 1)")
    p.add_argument("--concurrency", type=_within("--concurrency", whole=True), default=32,
                   help="cells asked at once (default 32)")
    p.add_argument("--seed", type=_within("--seed", whole=True), default=0,
                   help="sampling seed of the run; each repeat gets its own (default 0)")
    p.add_argument("--temperature", type=_within("--temperature"),
                   help="sampling temperature, 0 to 2 (default: the vendor's)")
    p.add_argument("--max-tokens", type=_within("--max-tokens", whole=True), default=1024,
                   help="output token cap per call unless an item sets its own (default 1024)")
    p.add_argument("--stream", action="store_true", help="stream responses (measures time to first token)")
    p.add_argument("--runs-dir", type=blank_refused, default="runs", help="where runs are written (default: runs)")
    p.add_argument("--run-id", type=_run_id, help="the run's directory name inside --runs-dir")
    p.add_argument("--resume", type=blank_refused, metavar="RUN_DIR",
                   help="complete the missing cells of an earlier run")
    p.add_argument("--shard", type=blank_refused, metavar="K/N",
                   help="run only every N-th cell, starting at the K-th")
    p.add_argument("--time-scale", type=_within("--time-scale"), default=DEFAULT_TIME_SCALE,
                   help=f"emulator delay factor (default {DEFAULT_TIME_SCALE}; 1.0 = realistic)")
    p.add_argument("--fleet", type=blank_refused, metavar="FILE", help="the emulator's fleet (YAML/TOML; "
                   "default: the built-in fleet), e.g. with injected faults")
    p.add_argument("--record", type=blank_refused, metavar="CASSETTE",
                   help="record all HTTP traffic to a cassette")
    p.add_argument("--replay", type=blank_refused, metavar="CASSETTE",
                   help="replay a recorded cassette; no network")
    p.add_argument("--unsafe-code-exec", action="store_true", help=_UNSAFE_HELP + " (on --resume: applied to "
                   "the rest of the run and recorded in its manifest)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run_command)


def add_regrade_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("regrade", help="grade a recorded run again from its saved answers (no model calls)")
    p.add_argument("run_dir", type=blank_refused, help="runs/<run_id>")
    p.add_argument("--judge", type=blank_refused,
                   help="target that grades judge items (default: the run's judge)")
    p.add_argument("--unsafe-code-exec", action="store_true", help=_UNSAFE_HELP)
    p.add_argument("--time-scale", type=_within("--time-scale"),
                   help="delay factor of an emulated judge (default: the run's)")
    p.set_defaults(run=regrade_command)


def regrade_command(args: argparse.Namespace) -> int:
    import json

    from .regrade import regrade
    from .results import results_df
    from .session import _maybe_emulator
    from .targets import EMULATOR_PREFIX, resolve_targets

    manifest_path = Path(args.run_dir) / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=args.run_dir, field="run_dir")
    config = json.loads(manifest_path.read_text())["config"]
    judge_spec = args.judge or config.get("judge")
    emulator = config.get("emulator")
    if args.time_scale is not None:
        # It was accepted and ignored; now it paces an emulated judge, and is an error where there is none.
        if not (judge_spec or "").startswith(EMULATOR_PREFIX):
            raise ConfigError("only paces an emulated judge, and this regrade has none", field="--time-scale")
        emulator = {**(emulator or {}), "time_scale": args.time_scale}

    async def go() -> int:
        with _maybe_emulator([], judge_spec, emulator) as emu:
            judge = resolve_targets([judge_spec], emulator=emu)[0] if judge_spec else None
            try:
                return await regrade(args.run_dir, judge=judge, unsafe_code_exec=args.unsafe_code_exec)
            finally:
                if judge is not None and hasattr(judge, "aclose"):
                    await judge.aclose()

    try:
        with scrubbed_warnings():
            graded = asyncio.run(go())
    except OSError as exc:
        return _write_failed(exc, Path(args.run_dir), hint="its Parquet parts are unchanged")
    print(f"graded {graded} answered cells of {args.run_dir} again")
    _report_ungraded(results_df(args.run_dir), Path(args.run_dir))
    return 0


def add_merge_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("merge", help="combine shard run directories into one run")
    p.add_argument("runs", nargs="+", type=blank_refused, help="shard run directories")
    p.add_argument("-o", "--output", type=blank_refused, required=True,
                   help="the merged run directory to create")
    p.set_defaults(run=merge_command)


def run_command(args: argparse.Namespace) -> int:
    from ..runner import RunOptions, run_suite
    from ..runner._cells import Shard, parse_shard

    shard = parse_shard(args.shard) if args.shard else Shard()
    options = RunOptions(repeats=args.repeats, concurrency=args.concurrency, seed=args.seed,
                         temperature=args.temperature, max_tokens=args.max_tokens, stream=args.stream,
                         shard=shard, unsafe_code_exec=args.unsafe_code_exec)
    specs, judge, emulator = _targets(args)
    from .session import new_run_id

    run_id = args.run_id or new_run_id()
    run_dir = Path(args.resume) if args.resume else Path(args.runs_dir) / run_id
    run = functools.partial(run_suite, args.suite, specs, options=options, runs_dir=args.runs_dir, run_id=run_id,
                            resume=args.resume, judge_spec=judge, emulator=emulator,
                            progress=not args.no_progress)
    try:
        with scrubbed_warnings():
            result = asyncio.run(_with_cassette(run, args))
    except KeyboardInterrupt:
        if (run_dir / "manifest.json").is_file():
            print(f"\ninterrupted; every finished cell is saved. Continue with: evalkit run --resume {run_dir}",
                  file=sys.stderr)
        else:
            print("\ninterrupted before the run started; nothing was written", file=sys.stderr)
        return 130
    except OSError as exc:
        resumable = (run_dir / "manifest.json").is_file()
        return _write_failed(exc, run_dir, hint=f"every finished cell is saved; once fixed, continue with: "
                             f"evalkit run --resume {run_dir}" if resumable else "nothing was written")
    _print_summary(result)
    return 0


def _print_summary(result: Any) -> None:
    from rich.console import Console

    from ..runner import results_df
    from .summary import render_summary, task_summary

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a pipe or a log file: don't squeeze the table to 80 columns
    results = results_df(result.run_dir)
    console.print(render_summary(task_summary(results), title=f"evalkit run {result.run_dir.name}"))
    t = result.totals
    console.print(f"{t.done} cells asked ({t.skipped} already done), {t.errors} failed, "
                  f"{t.passed} passed, spend ${t.spend:.4f}" + (f", {t.unpriced} unpriced" if t.unpriced else ""))
    console.print(f"results: {result.run_dir}  (evalkit.results_df('{result.run_dir}'))")
    console.print(f"report:  evalkit report {result.run_dir} --open")
    _report_ungraded(results, result.run_dir)


def _report_ungraded(results: Any, run_dir: Path) -> None:
    """One line on stderr counting the answers of ``results`` left ungraded for want of a sandbox, if any."""
    import polars as pl

    from .run import UNGRADED

    ungraded = results.filter(pl.col("grade_reason").str.starts_with(UNGRADED)).height
    if ungraded:
        print(f"evalkit: warning: {ungraded} code_exec answers are ungraded (no sandbox); grade them with "
              f"evalkit regrade {run_dir} once bubblewrap is installed, or with --unsafe-code-exec",
              file=sys.stderr)


def _write_failed(exc: OSError, run_dir: Path, *, hint: str) -> int:
    """Print a failed write (a full disk, a read-only directory) as one line; exit code 1 (environment)."""
    from .._secret import scrub

    where = exc.filename or run_dir
    reason = exc.strerror or str(exc)
    print(scrub(f"evalkit: error: cannot write {where}: {reason}; {hint}"), file=sys.stderr)
    return 1


def _targets(args: argparse.Namespace) -> tuple[list[str], str | None, dict[str, Any] | None]:
    from .targets import EMULATOR_PREFIX, emulator_specs

    from ..emulator.fleet import load_fleet

    fleet = getattr(args, "fleet", None)
    emulated = load_fleet(fleet)  # a bad fleet file stops here, before anything is written
    models = [m.name for m in emulated.models]
    if args.targets is not None:
        specs = [s.strip() for s in args.targets.split(",") if s.strip()]
        if not specs:
            raise ConfigError(f"no targets given in {args.targets!r}", field="--targets")
    else:
        specs = emulator_specs(emulated)
    # The default judge is the fleet's sim-large, or its first model when a custom fleet has none.
    default_judge = f"{EMULATOR_PREFIX}{'sim-large' if 'sim-large' in models else models[0]}"
    judge = args.judge or (default_judge if not args.targets or any(
        s.startswith(EMULATOR_PREFIX) for s in specs) else None)
    uses_emulator = any(s.startswith(EMULATOR_PREFIX) for s in [*specs, judge or ""])
    if fleet and not uses_emulator:
        raise ConfigError("no target or judge is an emulator model, so the fleet would be unused",
                          file=str(fleet), field="--fleet")
    emulator = {"seed": args.seed, "time_scale": args.time_scale} if uses_emulator else None
    if emulator is not None and fleet:
        emulator["fleet"] = str(Path(fleet).resolve())  # the manifest keeps it, so --resume finds it
    return specs, judge, emulator


async def _with_cassette(run: Callable[..., Any], args: argparse.Namespace) -> Any:
    """``run(cassette=...)`` with the cassette of ``--record``/``--replay``, if any, open around it.

    The run is made only once the cassette is open: a missing cassette leaves no un-awaited run behind.
    """
    if not (args.record or args.replay):
        return await run(cassette=None)
    from .cassettes import cassette

    with cassette(args.record or args.replay, record=bool(args.record)) as tape:
        return await run(cassette=tape)


def merge_command(args: argparse.Namespace) -> int:
    from .merge import merge_runs

    try:
        merged = merge_runs([Path(r) for r in args.runs], Path(args.output))
    except OSError as exc:
        return _write_failed(exc, Path(args.output), hint="nothing was written")
    print(f"merged {len(args.runs)} runs into {merged}")
    return 0


def _within(flag: str, *, whole: bool = False) -> Callable[[str], int | float]:
    """An argparse type for a run setting: a finite number in its range (``run.LIMITS``, shared with the API)."""
    from .run import LIMITS

    return number(*LIMITS[flag.lstrip("-").replace("-", "_")], whole=whole)


def _run_id(text: str) -> str:
    from .session import check_run_id

    try:
        return check_run_id(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--run-id: ")) from None
