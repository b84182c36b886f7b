"""The report as a reader sees it: opened in headless Chromium (Debian's ``chromium``).

Playwright drives the system browser (``/usr/bin/chromium``); nothing is downloaded. Without a
Chromium these tests are skipped, unless ``EVALKIT_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which
installs the browser), where a missing browser fails the build instead. A full-page screenshot of
each opened report is saved under ``test-artifacts/`` (or ``$EVALKIT_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from evalkit.report import build_report
from evalkit.runner import RunOptions, run_suite
from tests.report.test_example_report import make_example
from tests.runner.test_run import small_suite

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ["run-header", "leaderboard", "cost-quality", "latency", "errors", "routing", "replay",
            "task-classifier", "prompt-router", "comparison", "drilldown"]
CHART_SECTIONS = ["cost-quality", "latency", "errors", "task-classifier", "prompt-router"]
# Each payload would set a global if the browser ran it; the alert() would open a dialog.
PAYLOADS = ["<script>window.__pwned = 'script'; alert('script')</script>",
            "<img src=x onerror=\"window.__pwned = 'onerror'; alert('onerror')\">",
            "<svg onload=\"window.__pwned = 'svg'\"></svg>"]
CHROMIUM_FLAGS = make_example().CHROMIUM_FLAGS
chromium_path = make_example().chromium_path


def artifacts_dir() -> Path:
    path = Path(os.environ.get("EVALKIT_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("EVALKIT_REQUIRE_BROWSER") == "1":
            pytest.fail("EVALKIT_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        # A persistent context is how Playwright takes a fresh --user-data-dir of our own.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1366, "height": 900})
        context.set_default_timeout(10_000)  # a missing element fails in seconds, not after 30
        yield context
        context.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a real emulator run with failures, a baseline, hostile model outputs and every section."""
    tmp = tmp_path_factory.mktemp("browser-report")
    fleet = yaml.safe_load((ROOT / "evalkit" / "emulator" / "default_fleet.yaml").read_text())
    fleet["defaults"]["faults"] = {"server": 0.25, "rate_limit": 0.1, "retry_after_s": 0}
    (tmp / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    emulator = {"seed": 0, "time_scale": 0.0, "fleet": str(tmp / "fleet.yaml")}
    suite = small_suite(tmp, 3)

    def run(*models: str) -> Path:
        targets = [f"emulator:{model}" for model in models]
        return asyncio.run(run_suite(suite, targets, runs_dir=tmp / "runs", judge_spec="emulator:sim-large",
                                     emulator=emulator, progress=False,
                                     # No retries: the faults must reach the report as failed cells.
                                     options=RunOptions(concurrency=8, retries=0))).run_dir

    current, baseline = run("sim-small", "sim-large", "sim-fast"), run("sim-small", "sim-medium")
    part = next((current / "results").glob("*.parquet"))
    frame = pl.read_parquet(part)
    outputs = frame["output"].to_list()
    ok = [i for i, status in enumerate(frame["status"]) if status == "ok"]
    for index, payload in zip(ok, PAYLOADS):
        outputs[index] = f"Here is my answer: {payload}"
    frame.with_columns(pl.Series("output", outputs, pl.String)).write_parquet(part)
    return build_report(current, tmp / "report.html", baseline=baseline, prompt_router=True)


class OpenedPage:
    """A report loaded in a browser tab, with everything the page said or tried while loading."""

    def __init__(self, context: Any, path: Path) -> None:
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="load")

    def leaderboard_column(self, table: Any, index: int) -> list[str]:
        return table.locator("tbody tr").evaluate_all(
            f"rows => rows.map(r => r.cells[{index}].getAttribute('data-v'))")


# The report is built before the browser starts: Playwright's sync API keeps an event loop running.
@pytest.fixture(scope="module")
def opened(report: Path, browser: Any) -> Iterator[OpenedPage]:
    page = OpenedPage(browser, report)
    yield page
    page.page.screenshot(path=str(artifacts_dir() / "report-full.png"), full_page=True)
    page.page.close()


def test_the_page_loads_with_no_console_errors_and_no_fetches(opened: OpenedPage, report: Path) -> None:
    assert opened.errors == [] and [m for m in opened.console if m.startswith("error")] == []
    assert opened.requests == [report.as_uri()], "the report fetches nothing but itself"
    assert opened.page.title().startswith("evalkit report")


def test_every_section_is_rendered_with_its_charts_and_tables(opened: OpenedPage) -> None:
    page = opened.page
    for section in SECTIONS:
        assert page.locator(f"section#{section}").is_visible(), section
    for section in CHART_SECTIONS:
        chart = page.locator(f"section#{section} .chart svg").first
        box = chart.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, f"{section} chart is drawn"
    assert page.locator("table.sortable.leaderboard").count() == 6, "one leaderboard per task type"
    assert page.locator("section#routing table tbody tr").count() >= 1
    assert page.locator("section#comparison table tbody tr").count() >= 1
    assert page.locator("section#errors table tbody tr").count() >= 1, "the faulty fleet produced errors"
    assert "e-0" not in page.locator("main").inner_text(), "money is written out, not in scientific notation"


def test_comparison_labels_targets_by_the_run_they_were_in(opened: OpenedPage) -> None:
    rows = opened.page.locator("section#comparison tbody tr").all_inner_texts()
    baseline_only = {row.split("\t")[1] for row in rows if "(baseline only)" in row}
    new = {row.split("\t")[1] for row in rows if "(new)" in row}
    assert {name.split(" ")[0] for name in baseline_only} == {"openai:sim-medium"}
    assert {name.split(" ")[0] for name in new} == {"openai:sim-large", "gemini:sim-fast"}


def test_clicking_a_header_sorts_the_leaderboard(opened: OpenedPage) -> None:
    table = opened.page.locator("table.sortable.leaderboard").first
    cost = 9  # $ / item
    header = table.locator("thead th").nth(cost)
    header.click()
    ascending = opened.leaderboard_column(table, cost)
    assert header.get_attribute("aria-sort") == "ascending"
    assert [float(v) for v in ascending if v] == sorted(float(v) for v in ascending if v)
    header.click()
    descending = opened.leaderboard_column(table, cost)
    assert header.get_attribute("aria-sort") == "descending"
    assert [float(v) for v in descending if v] == sorted((float(v) for v in descending if v), reverse=True)
    table.locator("thead th").nth(0).click()
    names = opened.leaderboard_column(table, 0)
    assert names == sorted(names), "text columns sort alphabetically"


def test_drilldown_filters_by_task_type_and_verdict(opened: OpenedPage) -> None:
    page = opened.page
    items = page.locator("article.item")
    total = items.count()
    page.select_option("#filter-task", "math")
    visible = page.locator("article.item:not([hidden])")
    assert 0 < visible.count() < total
    assert set(visible.evaluate_all("xs => xs.map(x => x.dataset.task)")) == {"math"}
    page.select_option("#filter-task", "")
    page.select_option("#filter-verdict", "error")
    rows = page.locator("tr.cell:not([hidden])")
    assert rows.count() >= 1 and set(rows.evaluate_all("xs => xs.map(x => x.dataset.verdict)")) == {"error"}
    assert page.locator("#filter-count").inner_text() == f"{visible.count()} requests shown"
    page.select_option("#filter-verdict", "")
    assert page.locator("article.item:not([hidden])").count() == total


def test_hostile_model_output_is_shown_as_text_and_never_runs(opened: OpenedPage) -> None:
    page = opened.page
    assert page.evaluate("window.__pwned") is None
    assert opened.dialogs == []
    assert page.locator("article.item img").count() == 0
    shown = page.locator("article.item pre").all_inner_texts()
    for payload in PAYLOADS:
        assert any(payload in text for text in shown), f"{payload} is visible as text"


def test_print_layout_keeps_every_section(report: Path, browser: Any) -> None:
    page = OpenedPage(browser, report).page
    try:
        page.emulate_media(media="print")
        assert page.locator("nav.toc").is_hidden(), "navigation is not printed"
        for section in SECTIONS:
            assert page.locator(f"section#{section}").is_visible(), section
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF") and len(pdf) > 50_000
        (artifacts_dir() / "report.pdf").write_bytes(pdf)
    finally:
        page.close()


def test_the_example_names_every_point_in_the_browser_without_overlaps(browser: Any) -> None:
    """The committed example (six targets, six panels) as a reader's browser lays out its fonts."""
    from evalkit.report.chart_style import short_labels

    page = OpenedPage(browser, ROOT / "reports" / "smoke-emulator.html").page
    try:
        targets = set(page.locator("section#leaderboard tbody td:first-child").evaluate_all(
            "cells => cells.map(c => c.getAttribute('data-v'))"))
        names = sorted(short_labels(targets).values())
        panels = page.locator("section#cost-quality svg").evaluate(
            """(svg, names) => [...svg.querySelectorAll('g[id^="axes_"]')].map(axes => [...axes.querySelectorAll('text')]
                 .filter(t => names.includes(t.textContent))
                 .map(t => { const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; }))
               .filter(labels => labels.length)""", names)
        assert len(panels) == 6, "one panel per task type"
        for labels in panels:
            assert sorted(label[0] for label in labels) == names, "every target named once in every panel"
            for a, b in itertools.combinations(labels, 2):
                apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
                assert apart, f"{a[0]!r} and {b[0]!r} overlap on screen"
    finally:
        page.close()
