"""``evalkit run`` and ``evalkit merge``: argument parsing and what they print.

With no arguments ``evalkit run`` is the main job on the embedded default: the
in-process provider emulator, its whole fleet, the bundled ``default`` suite.

Exit codes of ``evalkit run`` (:data:`EXIT_CODES`): 0 the run is complete and
its failed cells are within ``--max-error-rate``; 1 the system refused a write
(a full disk, a read-only directory): one line, and the run resumes once that
is fixed; 2 bad input, before anything is written (a flag out of range, a run
directory another evalkit process is writing); 3 every cell failed, or more
than ``--max-error-rate`` of them; 4 ``--max-spend`` was reached before every
cell was asked (``--resume`` with a larger cap goes on); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .._secret import scrubbed_warnings
from .._flags import blank_refused, fraction, number, usd
from ..errors import ConfigError

if TYPE_CHECKING:
    from .regrade import RegradeResult

__all__ = ["EXIT_CODES", "add_merge_parser", "add_regrade_parser", "add_run_parser", "merge_command",
           "regrade_command", "run_command"]

DEFAULT_TIME_SCALE = 0.02
DEFAULT_RETRIES = 3

EXIT_CODES = {0: "complete, failures within --max-error-rate", 1: "a write was refused (disk full, read-only)",
              2: "bad input; nothing was written", 3: "every cell failed, or more than --max-error-rate",
              4: "--max-spend reached before every cell was asked (resumable)", 130: "interrupted (resumable)"}
"""What ``evalkit run`` exits with."""

MERGE_INCOMPLETE = 4
"""What ``evalkit merge`` exits with when shards or cells are missing (the merged run is written and resumable)."""

_RUN_DESCRIPTION = """\
Ask every item of a suite to every target, grade the answers and write every
attempt to Parquet. With no arguments: the bundled default suite on the
in-process emulator's whole fleet (no keys). Transient failures are retried
(--retries) and each target's concurrency adapts to its rate limits; every
attempt is recorded. Results: evalkit.results_df(RUN_DIR) and
evalkit.attempts_df(RUN_DIR).

exit codes: 0 complete; 1 a write was refused (disk full); 2 bad input, nothing
written; 3 every cell failed, or more than --max-error-rate; 4 --max-spend
reached (resumable); 130 interrupted"""

# Flags that decide which cells a run has and what they ask: fixed once a run exists.
_PLAN_FLAGS = (("--suite", "suite"), ("--targets", "targets"), ("--judge", "judge"), ("--no-judge", "no_judge"),
               ("--repeats", "repeats"), ("--seed", "seed"), ("--temperature", "temperature"),
               ("--max-tokens", "max_tokens"), ("--stream", "stream"), ("--shard", "shard"),
               ("--limit", "limit"), ("--fleet", "fleet"), ("--time-scale", "time_scale"),
               ("--run-id", "run_id"))


_UNSAFE_HELP = ("run model-written code of code_exec items without isolation when no sandbox (bubblewrap) is "
                "available; only for trusted models on a machine you can afford to lose")


def add_run_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run a suite across targets (default: bundled suite × emulated fleet)",
                              description=_RUN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to run (fixed once the run exists: not allowed with --resume)")
    what.add_argument("--suite", type=blank_refused, help="bundled suite name or dataset path (default: default)")
    what.add_argument("--targets", type=blank_refused, help="comma-separated provider:model, routing.yaml or "
                      "emulator:MODEL (default: every model of the emulator fleet)")
    what.add_argument("--judge", type=blank_refused, help="target that grades judge items "
                      "(default with emulator targets: emulator:sim-large; otherwise required by judge items)")
    what.add_argument("--no-judge", action="store_true",
                      help="leave judge-graded items ungraded (marked so) instead of needing --judge")
    what.add_argument("--limit", type=_within("--limit", whole=True), metavar="N",
                      help="only the first N items of the suite")
    what.add_argument("--repeats", type=_within("--repeats", whole=True),
                      help="independent samples per item and target (default 1)")
    what.add_argument("--seed", type=_within("--seed", whole=True),
                      help="sampling seed of the run; each repeat gets its own (default 0)")
    what.add_argument("--temperature", type=_within("--temperature"),
                      help="sampling temperature, 0 to 2 (default: the vendor's)")
    what.add_argument("--max-tokens", type=_within("--max-tokens", whole=True),
                      help="output token cap per call unless an item sets its own (default 1024)")
    what.add_argument("--stream", action="store_true", help="stream responses (measures time to first token)")
    what.add_argument("--shard", type=blank_refused, metavar="K/N",
                      help="run only every N-th cell, starting at the K-th")
    what.add_argument("--fleet", type=blank_refused, metavar="FILE", help="the emulator's fleet (YAML/TOML; "
                      "default: the built-in fleet), e.g. with injected faults or rate limits")
    what.add_argument("--time-scale", type=_within("--time-scale"),
                      help=f"emulator delay factor (default {DEFAULT_TIME_SCALE}; 1.0 = realistic)")
    what.add_argument("--run-id", type=_run_id, help="the run's directory name inside --runs-dir")
    how = p.add_argument_group("how this invocation asks (recorded in the manifest; allowed with --resume)")
    how.add_argument("--concurrency", type=_within("--concurrency", whole=True),
                     help="cells asked at once; also where each target's adaptive limit starts (default 32)")
    how.add_argument("--retries", type=_within("--retries", whole=True),
                     help="retries per cell of a transient failure (429, 5xx, timeout, cut stream), with "
                     f"backoff honouring Retry-After; 0 = none (default {DEFAULT_RETRIES})")
    how.add_argument("--max-spend", type=usd, metavar="USD", help="stop asking new cells once the run's spend "
                     "(models + judge, reserved at each call's worst case) would pass USD; never exceeded")
    how.add_argument("--max-error-rate", type=fraction, metavar="RATE", help="exit 3 when more than this "
                     "share of the run's cells failed, e.g. 0.05 or 5%% (default: only when every cell failed)")
    how.add_argument("--resume", type=blank_refused, metavar="RUN_DIR",
                     help="complete the missing cells of an earlier run")
    how.add_argument("--retry-failed", action="store_true", help="with --resume: ask again the cells whose "
                     "last ask failed with a transient error (the new row keeps the earlier attempts)")
    how.add_argument("--unsafe-code-exec", action="store_true", help=_UNSAFE_HELP + " (on --resume: applied to "
                     "the rest of the run and recorded in its manifest)")
    out = p.add_argument_group("output")
    out.add_argument("--runs-dir", type=blank_refused, default="runs", help="where runs are written (default: runs)")
    out.add_argument("--record", type=blank_refused, metavar="CASSETTE",
                     help="record all HTTP traffic to a cassette")
    out.add_argument("--replay", type=blank_refused, metavar="CASSETTE",
                     help="replay a recorded cassette; no network")
    out.add_argument("--no-progress", action="store_true", help="no progress bar (the summary is still printed)")
    p.set_defaults(run=run_command)


def add_regrade_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("regrade", help="grade a recorded run again from its saved answers (no model calls)",
                              description="Grade a recorded run's saved answers again, with no model calls (e.g. "
                              "once bubblewrap works, or with another --judge); the regrade and what it changed "
                              "are recorded in the run's manifest and printed.")
    p.add_argument("run_dir", type=blank_refused, help="runs/<run_id>")
    p.add_argument("--judge", type=blank_refused,
                   help="target that grades judge items (default: the run's judge)")
    p.add_argument("--unsafe-code-exec", action="store_true", help=_UNSAFE_HELP)
    p.add_argument("--time-scale", type=_within("--time-scale"),
                   help="delay factor of an emulated judge (default: the run's)")
    p.set_defaults(run=regrade_command)


def regrade_command(args: argparse.Namespace) -> int:
    import json

    from ..providers import Closeable
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

    async def go() -> RegradeResult:
        with _maybe_emulator([], judge_spec, emulator) as emu:
            judge = resolve_targets([judge_spec], emulator=emu)[0] if judge_spec else None
            try:
                return await regrade(args.run_dir, judge=judge, judge_spec=judge_spec,
                                     unsafe_code_exec=args.unsafe_code_exec)
            finally:
                if isinstance(judge, Closeable):
                    await judge.aclose()

    try:
        with scrubbed_warnings():
            result = asyncio.run(go())
    except OSError as exc:
        return _write_failed(exc, Path(args.run_dir), hint="parts not yet regraded keep their grades and the "
                             "manifest records this regrade as unfinished; run it again once fixed")
    print("\n".join(result.lines()))
    from .ending import report_ungraded

    report_ungraded(results_df(args.run_dir), Path(args.run_dir))
    return 0


def add_merge_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("merge", help="combine shard run directories into one run (exit 4 when shards "
                              "or cells are missing: the merged run is written, incomplete and resumable)",
                              description="Combine the shard runs of one suite (evalkit run --shard K/N) into one "
                              "run directory; missing shards or cells are reported, recorded in its manifest, and "
                              "exit 4 (evalkit run --resume MERGED asks them).")
    p.add_argument("runs", nargs="+", type=blank_refused, help="shard run directories")
    p.add_argument("-o", "--output", type=blank_refused, required=True,
                   help="the merged run directory to create")
    p.set_defaults(run=merge_command)


def run_command(args: argparse.Namespace) -> int:
    from ._cells import Shard, parse_shard
    from .run import RunOptions
    from .session import run_suite

    _fill_defaults(args)
    shard = parse_shard(args.shard) if args.shard else Shard()
    options = RunOptions(repeats=args.repeats, concurrency=args.concurrency, seed=args.seed,
                         temperature=args.temperature, max_tokens=args.max_tokens, stream=args.stream,
                         shard=shard, unsafe_code_exec=args.unsafe_code_exec, retries=args.retries,
                         limit=args.limit, max_spend=args.max_spend, no_judge=args.no_judge)
    specs, judge, emulator = _targets(args)
    from .session import new_run_id

    run_id = args.run_id or new_run_id()
    run_dir = Path(args.resume) if args.resume else Path(args.runs_dir) / run_id
    run = functools.partial(run_suite, args.suite, specs, options=options, runs_dir=args.runs_dir, run_id=run_id,
                            resume=args.resume, judge_spec=judge, emulator=emulator,
                            progress=not args.no_progress, retry_failed=args.retry_failed)
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
    from .ending import print_ending

    return print_ending(result, max_error_rate=args.max_error_rate)


def _fill_defaults(args: argparse.Namespace) -> None:
    """Refuse plan flags on ``--resume``; fill unset flags from the resumed run's manifest or the defaults."""
    defaults: dict[str, Any] = {"suite": "default", "repeats": 1, "seed": 0, "max_tokens": 1024,
                                "time_scale": DEFAULT_TIME_SCALE, "concurrency": 32, "retries": DEFAULT_RETRIES}
    if args.resume:
        given = [flag for flag, dest in _PLAN_FLAGS if getattr(args, dest) is not None and getattr(args, dest) is not False]
        if given:
            raise ConfigError("fixed by the run being resumed (see its manifest.json); start a new run to "
                              "change it", file=args.resume, field=given[0])
        config = _resumed_config(Path(args.resume))
        for name in ("concurrency", "retries"):
            if config.get(name) is not None:
                defaults[name] = config[name]
        if args.max_spend is None and config.get("max_spend") is not None:
            from decimal import Decimal

            args.max_spend = Decimal(config["max_spend"])
    elif args.retry_failed:
        raise ConfigError("only asks again the failed cells of a run being resumed; add --resume RUN_DIR",
                          field="--retry-failed")
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def _resumed_config(run_dir: Path) -> dict[str, Any]:
    import json

    manifest = run_dir / "manifest.json"
    if not manifest.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(run_dir), field="--resume")
    config: dict[str, Any] = json.loads(manifest.read_text()).get("config", {})
    return config


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
    judge = args.judge or (default_judge if not args.no_judge and (not args.targets or any(
        s.startswith(EMULATOR_PREFIX) for s in specs)) else None)
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
    print(f"merged {len(args.runs)} runs into {merged.output}")
    if merged.complete:
        return 0
    for problem in merged.problems():
        print(f"evalkit: warning: {problem}", file=sys.stderr)
    print(f"evalkit: the merged run is incomplete: {merged.missing_cells} cells missing (recorded in its "
          f"manifest); ask them with: evalkit run --resume {merged.output}", file=sys.stderr)
    return MERGE_INCOMPLETE


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
