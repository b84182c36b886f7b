"""``evalkit report [RUN_DIR] [-o FILE] [--baseline RUN_DIR] [--open] ...``: argument parsing (cheap to import)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._flags import number

__all__ = ["add_report_parser", "latest_run"]


def add_report_parser(subparsers: Any) -> None:
    """Register the ``report`` subcommand on ``evalkit``'s subparsers."""
    p = subparsers.add_parser("report", help="write a self-contained HTML report of a recorded run")
    p.add_argument("run_dir", nargs="?", help="runs/<run_id> (default: the newest run under --runs-dir)")
    p.add_argument("-o", "--output", help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--baseline", help="another run directory to compare against")
    p.add_argument("--max-drilldown", type=number(1, whole=True), default=2000,
                   help="cells shown in the item drill-down (sampled beyond this; default 2000)")
    p.add_argument("--runs-dir", help="where to look for the newest run when no RUN_DIR is given (default: runs)")
    p.add_argument("--no-classifier", action="store_true",
                   help="leave out the task classifier's section (it trains on the run's prompts: ~3.5 s per 300 items)")
    p.add_argument("--prompt-router", action="store_true",
                   help="add the per-prompt router's cross-fitted replay and cost-quality curve (~5 s for 300 "
                        "items and 6 targets; it grows with items x targets)")
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")
    p.set_defaults(run=_report)


def latest_run(runs_dir: str | Path) -> Path:
    """The run under ``runs_dir`` that started last (by its manifest), for ``evalkit report`` with no run."""
    import json

    from ..errors import ConfigError

    def started(manifest: Path) -> tuple[str, float]:
        # The manifest is rewritten when a run ends or resumes, so its mtime is not when it started.
        try:
            return str(json.loads(manifest.read_text()).get("started_at") or ""), manifest.stat().st_mtime
        except (OSError, ValueError):
            return "", manifest.stat().st_mtime

    manifests = sorted(Path(runs_dir).glob("*/manifest.json"), key=started)
    if not manifests:
        raise ConfigError("no run found here; run `evalkit run` first or name a run directory",
                          file=str(runs_dir), field="run_dir")
    return manifests[-1].parent


def _report(args: argparse.Namespace) -> int:
    from .build import build_report

    if args.run_dir and args.runs_dir:
        from ..errors import ConfigError

        # --runs-dir only chooses the newest run: beside a named run it would change nothing.
        raise ConfigError("only picks the newest run when no RUN_DIR is given; drop one of them",
                          field="--runs-dir")
    run_dir = args.run_dir or latest_run(args.runs_dir or "runs")
    path = build_report(run_dir, args.output, baseline=args.baseline, max_drilldown=args.max_drilldown,
                        classifier=not args.no_classifier, prompt_router=args.prompt_router)
    print(f"wrote {path}", file=sys.stderr)
    if args.open:
        import webbrowser

        # On a machine with no browser this returns False; the file is written all the same.
        if not webbrowser.open(Path(path).resolve().as_uri()):
            print(f"no web browser found; open {Path(path).resolve().as_uri()}", file=sys.stderr)
    return 0
