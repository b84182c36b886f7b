"""``evalkit report RUN_DIR [-o FILE] [--baseline RUN_DIR]``: argument parsing only (cheap to import)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_report_parser"]


def add_report_parser(subparsers: Any) -> None:
    """Register the ``report`` subcommand on ``evalkit``'s subparsers."""
    p = subparsers.add_parser("report", help="write a self-contained HTML report of a recorded run")
    p.add_argument("run_dir", help="runs/<run_id>")
    p.add_argument("-o", "--output", help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--baseline", help="another run directory to compare against")
    p.add_argument("--max-drilldown", type=int, default=2000,
                   help="cells shown in the item drill-down (sampled beyond this; default 2000)")
    p.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    from .build import build_report

    path = build_report(args.run_dir, args.output, baseline=args.baseline, max_drilldown=args.max_drilldown)
    print(f"wrote {path}", file=sys.stderr)
    return 0
