"""``evalkit run`` and ``evalkit merge``: argument parsing and what they print.

With no arguments ``evalkit run`` is the main job on the embedded default: the
in-process provider emulator, its whole fleet, the bundled ``default`` suite.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["add_merge_parser", "add_regrade_parser", "add_run_parser", "merge_command", "regrade_command", "run_command"]

DEFAULT_TIME_SCALE = 0.02


def add_run_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run a suite across targets (default: bundled suite × emulated fleet)",
                              description=__doc__)
    p.add_argument("--suite", default="default", help="bundled suite name or dataset path (default: default)")
    p.add_argument("--targets", help="comma-separated provider:model, routing.yaml or emulator:MODEL "
                                     "(default: every model of the emulator fleet)")
    p.add_argument("--judge", help="target that grades judge items (default: emulator:sim-large)")
    p.add_argument("--repeats", type=_positive_int, default=1)
    p.add_argument("--concurrency", type=_positive_int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-tokens", type=_positive_int, default=1024)
    p.add_argument("--stream", action="store_true", help="stream responses (measures time to first token)")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--run-id")
    p.add_argument("--resume", metavar="RUN_DIR", help="complete the missing cells of an earlier run")
    p.add_argument("--shard", metavar="K/N", help="run only every N-th cell, starting at the K-th")
    p.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE,
                   help=f"emulator delay factor (default {DEFAULT_TIME_SCALE}; 1.0 = realistic)")
    p.add_argument("--fleet", metavar="FILE", help="the emulator's fleet (YAML/TOML; default: the built-in "
                                                   "fleet), e.g. with injected faults")
    p.add_argument("--record", metavar="CASSETTE", help="record all HTTP traffic to a cassette")
    p.add_argument("--replay", metavar="CASSETTE", help="replay a recorded cassette; no network")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run_command)


def add_regrade_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("regrade", help="grade a recorded run again from its saved answers (no model calls)")
    p.add_argument("run_dir", help="runs/<run_id>")
    p.add_argument("--judge", help="target that grades judge items (default: the run's judge)")
    p.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE, help=argparse.SUPPRESS)
    p.set_defaults(run=regrade_command)


def regrade_command(args: argparse.Namespace) -> int:
    import json

    from .regrade import regrade
    from .session import _maybe_emulator
    from .targets import resolve_targets

    manifest_path = Path(args.run_dir) / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=args.run_dir, field="run_dir")
    config = json.loads(manifest_path.read_text())["config"]
    judge_spec = args.judge or config.get("judge")

    async def go() -> int:
        with _maybe_emulator([], judge_spec, config.get("emulator")) as emu:
            judge = resolve_targets([judge_spec], emulator=emu)[0] if judge_spec else None
            try:
                return await regrade(args.run_dir, judge=judge)
            finally:
                if judge is not None and hasattr(judge, "aclose"):
                    await judge.aclose()

    print(f"graded {asyncio.run(go())} answered cells of {args.run_dir} again")
    return 0


def add_merge_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("merge", help="combine shard run directories into one run")
    p.add_argument("runs", nargs="+", help="shard run directories")
    p.add_argument("-o", "--output", required=True, help="the merged run directory to create")
    p.set_defaults(run=merge_command)


def run_command(args: argparse.Namespace) -> int:
    from ..runner import RunOptions, results_df, run_suite
    from ..runner._cells import Shard, parse_shard
    from .summary import render_summary, task_summary

    shard = parse_shard(args.shard) if args.shard else Shard()
    options = RunOptions(repeats=args.repeats, concurrency=args.concurrency, seed=args.seed,
                         temperature=args.temperature, max_tokens=args.max_tokens, stream=args.stream,
                         shard=shard)
    specs, judge, emulator = _targets(args)
    from .session import new_run_id

    run_id = args.run_id or new_run_id()
    run_dir = Path(args.resume) if args.resume else Path(args.runs_dir) / run_id
    run = run_suite(args.suite, specs, options=options, runs_dir=args.runs_dir, run_id=run_id,
                    resume=args.resume, judge_spec=judge, emulator=emulator, progress=not args.no_progress)
    try:
        result = asyncio.run(_with_cassette(run, args))
    except KeyboardInterrupt:
        if (run_dir / "manifest.json").is_file():
            print(f"\ninterrupted; every finished cell is saved. Continue with: evalkit run --resume {run_dir}",
                  file=sys.stderr)
        else:
            print("\ninterrupted before the run started; nothing was written", file=sys.stderr)
        return 130
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a pipe or a log file: don't squeeze the table to 80 columns
    table = task_summary(results_df(result.run_dir))
    console.print(render_summary(table, title=f"evalkit run {result.run_dir.name}"))
    t = result.totals
    console.print(f"{t.done} cells asked ({t.skipped} already done), {t.errors} failed, "
                  f"{t.passed} passed, spend ${t.spend:.4f}" + (f", {t.unpriced} unpriced" if t.unpriced else ""))
    console.print(f"results: {result.run_dir}  (evalkit.results_df('{result.run_dir}'))")
    console.print(f"report:  evalkit report {result.run_dir} --open")
    return 0


def _targets(args: argparse.Namespace) -> tuple[list[str], str | None, dict[str, Any] | None]:
    from .targets import EMULATOR_PREFIX, emulator_specs

    from ..emulator.fleet import load_fleet

    fleet = getattr(args, "fleet", None)
    emulated = load_fleet(fleet)  # a bad fleet file stops here, before anything is written
    models = [m.name for m in emulated.models]
    if args.targets:
        specs = [s.strip() for s in args.targets.split(",") if s.strip()]
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


async def _with_cassette(run: Any, args: argparse.Namespace) -> Any:
    if not (args.record or args.replay):
        return await run
    from .cassettes import cassette

    with cassette(args.record or args.replay, record=bool(args.record)):
        return await run


def merge_command(args: argparse.Namespace) -> int:
    from .merge import merge_runs

    merged = merge_runs([Path(r) for r in args.runs], Path(args.output))
    print(f"merged {len(args.runs)} runs into {merged}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fail(error: ConfigError) -> int:
    """Print a bad-input error the way every evalkit command does, and return exit code 2."""
    print(f"evalkit: error: {error}", file=sys.stderr)
    return 2
