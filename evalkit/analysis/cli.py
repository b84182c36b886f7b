"""``evalkit recommend``, ``evalkit replay`` and ``evalkit export``: argument parsing and output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._flags import fraction, latency_ms, number, usd
from ..errors import ConfigError

from .emulated_targets import emulated_targets

__all__ = ["add_export_parser", "add_recommend_parser", "add_replay_parser"]


def add_recommend_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "recommend", help="recommend a routing table from a recorded run",
        description="Per task type of a recorded run, pick the cheapest target whose quality, success rate, "
                    "p95 latency and cost per 1,000 requests meet the bars below, with fallbacks, and write "
                    "it as an evalkit routing YAML (evalkit export turns it into a gateway config). A target "
                    "that misses a bar is listed with the reason.")
    p.add_argument("run_dir", help="the recorded run: runs/<run_id>")
    p.add_argument("--min-quality", type=fraction, default=0.8, metavar="Q",
                   help="bar for the quality's lower confidence bound: a fraction in [0, 1] (0.8) or a "
                        "percentage (80%%); default 0.8")
    p.add_argument("--max-p95-latency", type=latency_ms, metavar="DURATION",
                   help="p95 latency SLO with its unit: 800ms, 5s or 2min (units: ms, s, min; default: none)")
    p.add_argument("--min-success", type=fraction, default=0.95, metavar="RATE",
                   help="least success rate: a fraction in [0, 1] (0.95) or a percentage (95%%); "
                        "default 0.95")
    p.add_argument("--budget-per-1k-requests", type=usd, metavar="USD",
                   help="the most a route may cost per 1,000 requests, in USD (>= 0; default: no budget)")
    p.add_argument("--metric", choices=("passed", "score"), default="passed",
                   help="what quality means: the pass rate (passed, default) or the mean score (score)")
    p.add_argument("--classifier", choices=("learned", "keywords"), default="learned",
                   help="how requests without a task type are classified: a classifier trained on the run's "
                        "prompts, written beside the YAML (default; needs -o), or the seed's keyword rules")
    p.add_argument("--seed", type=number(0, whole=True), default=0,
                   help="seed of the classifier's cross-validation folds, a whole number >= 0 (default 0)")
    p.add_argument("-o", "--output", help="write the routing YAML here, and the learned classifier beside it as "
                                          "NAME.classifier.json/.npz (default: the YAML to stdout)")
    p.set_defaults(run=_recommend)


def add_export_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export a routing config for a gateway (LiteLLM, Portkey)",
        description="Turn an evalkit routing YAML into a LiteLLM proxy config.yaml or a Portkey gateway config. "
                    "API keys are only referenced (environment variables, virtual keys); what the gateway "
                    "cannot do is refused or printed as a note, never dropped silently.")
    p.add_argument("config", help="an evalkit routing YAML (e.g. written by evalkit recommend -o)")
    p.add_argument("--format", choices=("evalkit", "litellm", "portkey"), default="evalkit",
                   help="evalkit (the checked YAML itself; default), litellm (proxy config.yaml) "
                        "or portkey (gateway config JSON)")
    p.add_argument("-o", "--output", help="write here (default: stdout)")
    p.set_defaults(run=_export)


def add_replay_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay", help="what a routing policy would have cost and scored on a recorded run",
        description="Route each request of a recorded run with a routing policy, using the recorded outcome of "
                    "each target (no calls are made), and compare its success rate, quality, cost and latency "
                    "with the best single target, the cheapest one and an oracle, with bootstrap intervals.")
    p.add_argument("run_dir", help="the recorded run: runs/<run_id> (several targets asked the same items)")
    p.add_argument("--policy", required=True, help="the evalkit routing YAML to replay")
    p.add_argument("--bootstrap", type=number(0, whole=True), default=1000, metavar="N",
                   help="bootstrap resamples for the intervals (0: no intervals; default 1000)")
    p.add_argument("--seed", type=number(0, whole=True), default=0,  # numpy's generators refuse negative seeds
                   help="seed of the bootstrap resamples and of a balancer's random picks, a whole number >= 0 "
                        "(default 0)")
    p.set_defaults(run=_replay)


def _recommend(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .recommend import recommend

    run_dir = Path(args.run_dir)
    emulated = emulated_targets(run_dir)  # priced and sized by the fleet the run used, from its manifest
    if args.classifier == "learned" and not args.output:
        raise ConfigError("the learned classifier is written beside the routing YAML: give -o FILE "
                          "(or --classifier keywords to print a YAML that needs no other file)", field="--output")
    table = recommend(run_dir, min_quality=args.min_quality,
                      max_p95_latency_ms=args.max_p95_latency, min_success=args.min_success,
                      budget_per_1k_requests=args.budget_per_1k_requests, metric=args.metric,
                      context_windows=dict(emulated.windows) or None, classifier=args.classifier, seed=args.seed)
    console = Console(stderr=True, width=150)
    console.print(table.render())
    if table.classifier_report is not None:
        print(table.classifier_report.to_text(), file=sys.stderr)
    elif args.classifier == "learned":
        print(f"warning: unlabelled requests keep the keyword rules: {table.classifier_note}", file=sys.stderr)
    for warning in (*emulated.problems, *table.warnings):
        print(f"warning: {warning}", file=sys.stderr)
    targets = dict(emulated.configs) or None
    preface = emulated.setup_comment()
    if not args.output:
        _write(preface + table.to_yaml(targets), None)
        return 0
    try:
        written = table.write(args.output, targets, preface=preface)
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror or exc}", file=args.output, field="--output") from None
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..export import export_with_notes

    exported = export_with_notes(args.config, args.format)
    _write(exported.text, args.output)
    for note in exported.notes:  # what the gateway cannot do that the evalkit router did
        print(f"note: {note}", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..runner import results_df
    from .replay import policy_from_config, replay_as_deployed, replay_policy

    deployed = replay_as_deployed(Path(args.run_dir), args.policy, n_boot=args.bootstrap, seed=args.seed)
    console = Console(width=150)
    if deployed is None:  # not a task table: no task types to predict
        policy = policy_from_config(args.policy, seed=args.seed)
        console.print(replay_policy(results_df(Path(args.run_dir)), policy, n_boot=args.bootstrap,
                                    seed=args.seed).render())
        return 0
    console.print("[bold]With the true task types[/bold] (every request arrives labelled)")
    console.print(deployed.true_labels.render())
    console.print(f"[bold]As deployed[/bold]: task types from {deployed.task_types.method}; "
                  f"{deployed.agreement:.1%} of items get their true type")
    console.print(deployed.deployed.render())
    return 0


def _write(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write: {exc.strerror or exc}", file=output, field="--output") from None
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
