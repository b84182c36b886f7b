"""Regenerate the example report (and the README's screenshots) from the committed smoke cassette.

    python reports/make_example.py            # from the repository root, after pip install -e ".[dev]"

1. Replays ``cassettes/smoke-emulator.yaml`` (the bundled ``smoke`` suite × the emulator's fleet,
   streamed, judged by ``emulator:sim-large``) into a temporary run directory: no network, no
   emulator server, the recorded latencies and TTFTs.
2. Writes ``reports/smoke-emulator.html`` with ``evalkit report``.
3. With Chromium on the machine (``apt-get install chromium``), photographs the top of the page and
   its cost-vs-quality section into ``reports/screenshot-*.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASSETTE = ROOT / "cassettes" / "smoke-emulator.yaml"
REPORT = ROOT / "reports" / "smoke-emulator.html"
RUN_ID = "smoke-emulator"
# The options the cassette was recorded with (cassettes/README.md): replays match requests by body.
# The flags a sandboxed, offline machine needs: no GPU, no sandbox (root in a container), and no
# background connections to Google, which a closed network refuses. The browser tests use them too.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RECORDED_WITH = ["--suite", "smoke", "--stream", "--time-scale", "0.02", "--no-progress"]


def chromium_path() -> str | None:
    """Debian's Chromium (or ``$EVALKIT_CHROMIUM``), None when the machine has none."""
    return os.environ.get("EVALKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def replay_run(runs_dir: Path) -> Path:
    """Replay the committed cassette into ``runs_dir/smoke-emulator`` and return that run directory."""
    from evalkit.cli import main

    code = main(["run", *RECORDED_WITH, "--replay", str(CASSETTE), "--runs-dir", str(runs_dir),
                 "--run-id", RUN_ID])
    if code != 0:
        raise SystemExit(f"replaying {CASSETTE} failed (exit {code})")
    return runs_dir / RUN_ID


def build_example(output: Path = REPORT) -> Path:
    """Replay the cassette and write the example report to ``output``."""
    from evalkit.report import build_report

    with tempfile.TemporaryDirectory() as tmp:
        return build_report(replay_run(Path(tmp)), output)


def screenshot(report: Path, out_dir: Path) -> list[Path]:
    """The top of the report and its cost-vs-quality charts, as the README shows them."""
    from playwright.sync_api import sync_playwright

    top, charts = out_dir / "screenshot-top.png", out_dir / "screenshot-charts.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(report.resolve().as_uri(), wait_until="load")
        page.screenshot(path=str(top))
        page.locator("section#cost-quality").screenshot(path=str(charts))
        browser.close()
    return [top, charts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args(argv)
    report = build_example()
    print(f"wrote {report.relative_to(ROOT)} ({report.stat().st_size / 1e6:.2f} MB)")
    if args.no_screenshots:
        return 0
    if chromium_path() is None:
        print("no chromium on PATH: screenshots not taken (apt-get install chromium)", file=sys.stderr)
        return 0
    for path in screenshot(report, report.parent):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
