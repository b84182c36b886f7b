"""Self-contained HTML reports of recorded runs: :func:`build_report`.

Importing this package is cheap: jinja2, matplotlib and polars load when a
report is built, and ``evalkit/__init__`` does not import it.
"""

from __future__ import annotations

from .build import build_report, render_html

__all__ = ["build_report", "render_html"]
