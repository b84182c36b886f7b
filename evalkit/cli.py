"""The ``evalkit`` command line: run, merge, regrade, recommend, replay, export, report, emulate.

Exit codes: 0 success, 2 bad input (a :class:`~evalkit.errors.ConfigError`:
the message names file, line and field), 1 anything else that went wrong (the
system refused a read or write: a full disk, a read-only folder; one line, no
traceback).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from ._flags import number
from ._secret import scrub
from ._version import __version__
from .analysis.cli import add_export_parser, add_recommend_parser, add_replay_parser
from .errors import ConfigError
from .report.cli import add_report_parser
from .runner.cli import add_merge_parser, add_regrade_parser, add_run_parser

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """The parser of ``evalkit`` and its subcommands: a bad flag is one line, exit code 2.

    It reads ``-5s`` or ``-5%`` after a flag as its value, as Python 3.13's
    argparse does: before 3.13 only ``-5`` and ``-.5`` count as negative numbers, so
    ``--max-p95-latency -5s`` failed with "expected one argument" instead of
    the flag's own message (a duration must be positive). No evalkit flag
    looks like a negative number, so nothing else changes. Subcommand parsers
    are made of the same class.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message: str) -> NoReturn:
        """One line naming the flag and the problem, exit code 2 (argparse adds the whole usage block)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``evalkit`` and its subcommands."""
    parser = _Parser(
        prog="evalkit",
        description="Benchmark LLM providers on your prompts, turn the evidence into routing tables, and run "
        "them. With no keys, evalkit run benchmarks the built-in provider emulator's fleet on the bundled suite.",
        epilog="Exit codes: 0 success; 2 bad input (one line naming the file, line and field); 1 the system "
        "refused a read or write; evalkit run: 3 every cell failed or more than --max-error-rate, 4 --max-spend "
        "reached (resumable), 130 interrupted; evalkit merge: 4 shards or cells missing (resumable). "
        "evalkit COMMAND --help lists a command's flags.",
    )
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}",
                        help="print evalkit's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     help="what to do; evalkit COMMAND --help describes it")
    commands.required = True
    add_run_parser(commands)
    add_merge_parser(commands)
    add_regrade_parser(commands)
    add_recommend_parser(commands)
    add_replay_parser(commands)
    add_export_parser(commands)
    add_report_parser(commands)
    emulate = commands.add_parser(
        "emulate",
        help="run the provider emulator (OpenAI, Anthropic and Gemini wire formats) on 127.0.0.1",
        description="Serve simulated models on 127.0.0.1 until interrupted. The first line printed is the "
        "base URL; OpenAI clients use BASE/v1, Anthropic and Gemini clients use BASE.",
    )
    emulate.add_argument("--port", type=number(0, 65535, whole=True), default=0,
                         help="port to listen on (default 0: pick a free one)")
    emulate.add_argument(
        "--fleet", metavar="FILE", help="fleet file (YAML or TOML; default: the built-in fleet)"
    )
    emulate.add_argument("--seed", type=int, default=0, help="seed of every simulated draw (default 0)")
    emulate.add_argument(
        "--time-scale",
        type=number(0),
        default=1.0,
        metavar="F",
        help="multiply simulated delays by F, a finite number >= 0 (0: no delay; default 1.0)",
    )
    emulate.add_argument(
        "--dataset",
        action="append",
        metavar="FILE",
        dest="datasets",
        help="JSONL dataset whose prompts get gradable answers (repeatable; default: the bundled suites)",
    )
    emulate.add_argument("--no-datasets", action="store_true", help="answer every prompt with filler text")
    emulate.add_argument(
        "--stall-s",
        type=number(0, low_exclusive=True),
        metavar="S",
        help="seconds (> 0) the timeout/stall faults hold a response (default: the fleet's, 30 s)",
    )
    emulate.set_defaults(run=_run_emulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``evalkit`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        print(f"evalkit: error: {scrub(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment, not the input: a full disk, a read-only or missing folder
        print(f"evalkit: error: {scrub(str(exc))}", file=sys.stderr)
        return 1


def _run_emulate(args: argparse.Namespace) -> int:
    from .emulator import Emulator  # the HTTP server stack loads only for this subcommand

    if args.no_datasets and args.datasets:
        raise ConfigError("--dataset and --no-datasets contradict each other; give one",
                          field="--no-datasets")
    datasets = () if args.no_datasets else args.datasets
    emulator = Emulator(
        args.fleet,
        seed=args.seed,
        time_scale=args.time_scale,
        port=args.port,
        datasets=datasets,
        stall_s=args.stall_s,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emulator.start()
        except OSError as exc:
            print(
                f"evalkit: error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
        print(emulator.base_url, flush=True)
        print(
            f"evalkit emulator: {len(emulator.fleet)} models, {len(emulator.book)} known prompts, "
            f"seed {args.seed}, time scale {args.time_scale:g}; OpenAI clients: {emulator.openai_base_url}. "
            "Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
