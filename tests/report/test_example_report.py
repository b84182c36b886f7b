"""The committed example report is what ``python reports/make_example.py`` makes today.

A stale example misleads whoever opens it first; if this fails after a change to the report,
the runner or the graders, regenerate it with the command in ``reports/README.md``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "reports" / "smoke-emulator.html"
# What may differ between two regenerations: when it ran, from which commit, the charts' SVG
# bytes (a new matplotlib draws the same chart differently; the tables and text must not change),
# and the installed genai-prices release (the example's emulator models are priced by the fleet,
# so a new release changes only the label; a fresh install picks up whatever was released last).
VOLATILE = [re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"), re.compile(r"\(git [0-9a-f]{12}[^)]*\)"),
            re.compile(r"<svg.*?</svg>", re.DOTALL), re.compile(r"genai-prices \d+(?:\.\d+)*")]


def make_example():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "reports" / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stable(html: str) -> str:
    for pattern in VOLATILE:
        html = pattern.sub("…", html)
    return html


def test_the_committed_example_report_is_current(tmp_path: Path) -> None:
    fresh = make_example().build_example(tmp_path / "example.html").read_text()
    committed = COMMITTED.read_text()
    assert 'id="drilldown"' in committed and "All 246 cells of the run are shown" in committed
    fresh_lines, committed_lines = stable(fresh).splitlines(), stable(committed).splitlines()
    changed = [i for i, (a, b) in enumerate(zip(fresh_lines, committed_lines)) if a != b]
    assert len(fresh_lines) == len(committed_lines) and not changed, (
        f"reports/smoke-emulator.html is stale (first difference at line {changed[:1]}): "
        "run `python reports/make_example.py`")
