"""The HTML report as a user gets it: sections present, nothing fetched, outputs escaped, size capped."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from evalkit.report import build_report
from evalkit.runner import results_df
from evalkit.runner.schema import result_schema
from tests.runner.test_run import run, small_suite

SECTIONS = ["run-header", "leaderboard", "cost-quality", "latency", "errors", "routing", "replay", "task-classifier",
            "prompt-router", "drilldown"]
PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


class Page(HTMLParser):
    """What a browser would see: element ids, every src/href, script tags, and which section each svg is in."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.section: str | None = None
        self.svg_sections: list[str | None] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "section":
            self.section = values.get("id")
        if tag == "svg":
            self.svg_sections.append(self.section)
        self.links += [(tag, name, value or "") for name, value in attrs if name in ("src", "href", "xlink:href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    return run(tmp, small_suite(tmp, 2)).run_dir


def test_every_section_is_present_and_nothing_is_fetched(run_dir: Path, tmp_path: Path) -> None:
    path = build_report(run_dir, tmp_path / "out" / "report.html")
    html = path.read_text()
    page = Page(html)
    assert set(SECTIONS) <= page.ids
    assert "comparison" not in page.ids, "no baseline given, no comparison section"
    # Self-contained: no script/link/img/iframe tags pointing anywhere, no remote URL in any src/href.
    assert not [link for link in page.links if link[0] in ("script", "link", "img", "iframe")]
    assert not [link for link in page.links if link[2].startswith(("http://", "https://", "//"))]
    assert "<script src" not in html and "<link" not in html
    # Charts are inline SVG inside their sections.
    assert {"cost-quality", "latency"} <= set(page.svg_sections)
    assert "simulated" in html and "openai:sim-small" in html
    assert html.count('class="sortable leaderboard"') == len(results_df(run_dir)["task_type"].unique())
    assert "All 24 cells of the run are shown" in " ".join(" ".join(page.text).split())


def test_default_output_goes_into_the_run_directory(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert build_report(copy) == copy / "report.html" and (copy / "report.html").is_file()


def test_model_output_is_escaped_not_executed(run_dir: Path, tmp_path: Path) -> None:
    patched = tmp_path / "patched"
    shutil.copytree(run_dir, patched)
    part = next((patched / "results").glob("*.parquet"))
    frame = pl.read_parquet(part)
    outputs = frame["output"].to_list()
    outputs[0], outputs[1] = PAYLOADS
    frame.with_columns(pl.Series("output", outputs, pl.String)).write_parquet(part)
    html = build_report(patched, tmp_path / "x.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img" not in html
    page = Page(html)
    assert page.tags.count("script") == 1, "only the report's own inline script"
    assert "img" not in page.tags
    assert any(PAYLOADS[0] in chunk for chunk in page.text), "shown to the reader as text"


def test_baseline_adds_a_comparison_with_paired_p_values(run_dir: Path, tmp_path: Path) -> None:
    baseline = run(tmp_path, small_suite(tmp_path, 2), targets=["emulator:sim-small", "emulator:sim-medium"]).run_dir
    html = build_report(run_dir, tmp_path / "cmp.html", baseline=baseline).read_text()
    page = Page(html)
    assert "comparison" in page.ids and set(SECTIONS) <= page.ids
    text = " ".join(page.text)
    assert "Comparison with baseline run" in text
    # sim-small is in both runs on the same items: paired; sim-medium / sim-large are in one run only.
    assert "(baseline only)" in text and "(new)" in text


def test_a_failing_replay_is_reported_in_its_section(run_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.report import sections

    def broken(*args: object) -> None:
        raise ValueError("no request has results for every target")

    monkeypatch.setattr(sections, "_replay", broken)
    page = Page(build_report(run_dir, tmp_path / "r.html").read_text())
    assert set(SECTIONS) <= page.ids
    assert "ValueError: no request has results for every target" in " ".join(page.text)


def test_cli_subcommand_writes_the_report(run_dir: Path, tmp_path: Path) -> None:
    from evalkit.report.cli import add_report_parser

    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    out = tmp_path / "reports" / "smoke.html"
    args = parser.parse_args(["report", str(run_dir), "-o", str(out), "--baseline", str(run_dir)])
    assert args.run(args) == 0 and "comparison" in Page(out.read_text()).ids


def test_importing_the_report_package_is_cheap() -> None:
    import subprocess
    import sys

    code = "import evalkit.report, evalkit.report.cli, sys; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not {"jinja2", "matplotlib", "polars", "numpy"} & set(eval(out))


def synthetic_run(source: Path, dest: Path, rows: int = 100_000) -> Path:
    """A run of ``rows`` cells in the runner's layout: results/part-0000.parquet and a manifest."""
    import numpy as np

    targets = ["openai:sim-small", "openai:sim-medium", "openai:sim-large", "gemini:sim-fast"]
    n_items = rows // len(targets)
    rng = np.random.default_rng(0)
    tasks = ["code", "math", "factual_qa", "classification", "long_document", "creative"]
    item = np.repeat(np.arange(n_items), len(targets))
    error = rng.random(rows) < 0.03
    frame = pl.DataFrame({
        "run_id": "synthetic", "item_id": [f"item-{i:06d}" for i in item],
        "task_type": [tasks[i % len(tasks)] for i in item], "target": targets * n_items, "repeat": 0,
        "status": np.where(error, "error", "ok"), "_kind": rng.choice(["timeout", "rate_limit", "server_error"], rows),
        "output": [f"answer {i} " + "lorem ipsum " * (i % 40) for i in range(rows)],
        "latency_ms": rng.lognormal(5, 0.6, rows), "ttft_ms": rng.lognormal(4, 0.5, rows),
        "_score": rng.random(rows).round(2), "grade_reason": "synthetic",
        "cost_usd": (rng.random(rows) / 1000).round(9).astype(str), "input_tokens": 100, "output_tokens": 50,
        "tokens_exact": True, "n_attempts": 1,
    })
    ok = pl.col("status") == "ok"
    frame = frame.with_columns(pl.when(ok).then(pl.col("_score")).alias("score"),
                               pl.when(ok).then(pl.col("_score") >= 0.5).alias("passed"),
                               pl.when(~ok).then(pl.col("_kind")).alias("error_kind"))
    schema = result_schema()
    frame = frame.with_columns(pl.lit(None).cast(t).alias(c) for c, t in schema.items() if c not in frame.columns)
    (dest / "results").mkdir(parents=True)
    frame.select(list(schema)).cast(schema).write_parquet(dest / "results" / "part-0000.parquet")
    manifest = json.loads((source / "manifest.json").read_text())
    manifest.update(run_id="synthetic", simulated_targets=targets)
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_a_100k_row_run_gives_a_small_report(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    big = synthetic_run(run_dir, tmp_path / "big")
    assert results_df(big).height == 100_000
    started = time.perf_counter()
    path = build_report(big, tmp_path / "big.html")
    elapsed = time.perf_counter() - started
    size = path.stat().st_size
    with capsys.disabled():
        print(f"\n100k-row report: {elapsed:.2f} s, {size / 1e6:.2f} MB")
    assert size < 5_000_000
    html = path.read_text()
    page = Page(html)
    assert set(SECTIONS) <= page.ids and "errors" in page.svg_sections
    text = " ".join(" ".join(page.text).split())
    assert "This run has 100,000 cells; a random sample of whole requests" in text
    assert 1_000 < html.count('<tr class="cell ') <= 2_000, "the drill-down is capped at max_drilldown"


def test_report_with_no_run_named_uses_the_newest_run_and_can_open_it(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import webbrowser

    from evalkit.cli import main

    runs = tmp_path / "runs"
    older, newer = runs / "older", runs / "newer"
    for copy, age in ((older, 100), (newer, 0)):
        shutil.copytree(run_dir, copy)
        stamp = time.time() - age
        os.utime(copy / "manifest.json", (stamp, stamp))
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--open"]) == 0
    assert (newer / "report.html").is_file() and not (older / "report.html").exists()
    assert opened == [(newer / "report.html").resolve().as_uri()]


@pytest.mark.parametrize("where", ["no-runs", "not-a-run"])
def test_report_of_nothing_is_a_clear_error(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "stray").mkdir()
    args = ["report"] if where == "no-runs" else ["report", "stray"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and ("no run found" in err or "not a run directory" in err), err
    assert not list(tmp_path.rglob("*.html"))


def test_a_run_with_a_sparse_manifest_still_gets_a_report(run_dir: Path, tmp_path: Path) -> None:
    sparse = tmp_path / "sparse"
    shutil.copytree(run_dir, sparse)
    (sparse / "manifest.json").write_text(json.dumps({"run_id": "hand-made"}))
    page = Page(build_report(sparse, tmp_path / "sparse.html").read_text())
    assert set(SECTIONS) <= page.ids and "Run hand-made" in " ".join(page.text)


@pytest.mark.parametrize(("args", "message"), [
    (["report", "stray", "--runs-dir", "elsewhere"], "--runs-dir: only picks the newest run when no RUN_DIR"),
    (["report", "stray", "--max-drilldown", "-1"], "argument --max-drilldown: must be a whole number >= 1"),
])
def test_report_flags_that_would_change_nothing_are_errors(args: list[str], message: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Both were accepted: --runs-dir was ignored beside a run, and -1 drew an empty drill-down.
    from evalkit.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.html"))
