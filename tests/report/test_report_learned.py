"""The report's learned routing: the task classifier's section and the per-prompt router's curve."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evalkit.report import build_report
from evalkit.report.learned import NOT_ASKED, routing_outcome
from tests.report.test_report import SECTIONS, Page
from tests.runner.test_run import run, small_suite


class Tables(HTMLParser):
    """Every table of one section: its class and its rows of cell texts (header row included)."""

    def __init__(self, html: str, section: str) -> None:
        super().__init__(convert_charrefs=True)
        self.section, self.inside = section, False
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.inside = values.get("id") == self.section
        elif self.inside and tag == "table":
            self.tables.append((values.get("class") or "", []))
        elif self.inside and tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif self.inside and tag in ("td", "th") and self.tables:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][1][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def table(self, cls: str) -> list[list[str]]:
        return next(rows for classes, rows in self.tables if cls in classes.split())


def section_html(html: str, section: str) -> str:
    start = html.index(f'<section id="{section}">')
    return html[start:html.index("</section>", start)]


def section_text(html: str, section: str) -> str:
    """What a reader sees of the section: its text, charts left out, entities decoded."""
    without_charts = re.sub(r"<svg.*?</svg>", "", section_html(html, section), flags=re.DOTALL)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", without_charts)).split())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six items of each of the smoke suite's six task types, two emulated targets."""
    tmp = tmp_path_factory.mktemp("learned")
    return run(tmp, small_suite(tmp, 6)).run_dir


def test_the_task_classifier_section_shows_what_cross_validation_measured(run_dir: Path, tmp_path: Path) -> None:
    # Before: no section; a reader of the report could not see whether unlabelled traffic would reach the routes.
    from evalkit.analysis import recommend
    from evalkit.analysis.classifier_training import examples_from_run, train_task_classifier
    from evalkit.runner import results_df

    html = build_report(run_dir, tmp_path / "report.html").read_text()
    page = Page(html)
    assert set(SECTIONS) <= page.ids and "task-classifier" in page.svg_sections, "the heatmap is in the section"
    assert "<image" not in section_html(html, "task-classifier"), "the heatmap is vector, not an embedded bitmap"

    examples = examples_from_run(run_dir)
    _, expected = train_task_classifier(examples.texts, examples.labels, ids=examples.ids)
    tables = Tables(html, "task-classifier")
    confusion = tables.table("confusion")
    assert confusion[0][1:-1] == list(expected.labels)
    assert [[int(v) for v in row[1:-1]] for row in confusion[1:]] == [list(r) for r in expected.confusion]
    scores = {row[0]: row[1:] for row in tables.table("classifier-scores")[1:]}
    for label, score in expected.per_label.items():
        assert scores[label] == [f"{score.precision:.1%}", f"{score.recall:.1%}", str(score.support)]

    text = section_text(html, "task-classifier")
    assert f"{expected.accuracy:.1%} of {len(examples.labels)} items" in text
    assert f"macro accuracy (mean recall over task types) {expected.macro_accuracy:.1%}" in text
    # Where these prompts would go unlabelled: recommend routes every task type of the run, so a prompt reaches
    # its route when its cross-fitted label is its own, and an abstention sends it to the default route.
    assert {row.task_type for row in recommend(results_df(run_dir)).rows} == set(examples.labels)
    deployed = expected.deployed_predictions
    own = sum(p == t for p, t in zip(deployed, examples.labels)) / len(deployed)
    abstained = sum(p is None for p in deployed) / len(deployed)
    assert 0 < abstained and own < 1, "this run shows both an abstention and a miss (fixture sanity)"
    assert (f"{own:.1%} would reach their task's route, {abstained:.1%} would take the default route because the "
            f"classifier abstains (calibrated confidence below {expected.abstain_below:.2f}), and "
            f"{1 - own - abstained:.1%} another task's route") in text


def copy_run(run_dir: Path, dest: Path, suite: Path | None, sha256: str | None = None) -> Path:
    """The run under ``dest``, its manifest pointing at ``suite`` (and recording ``sha256`` if given)."""
    shutil.copytree(run_dir, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["config"]["suite"] = manifest["dataset"]["path"] = str(suite)
    if sha256 is not None:
        manifest["dataset"]["sha256"] = sha256
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


@pytest.mark.parametrize("case", ["deleted", "changed", "one-task-type", "not-asked"])
def test_without_a_dataset_to_learn_from_the_section_says_why(case: str, run_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    original = Path(manifest["config"]["suite"])
    suite = tmp_path / "suite.jsonl"
    lines = original.read_text().splitlines()
    if case == "deleted":
        target = copy_run(run_dir, tmp_path / "run", tmp_path / "gone.jsonl")
        reason = f"the run's prompts cannot be read ({tmp_path / 'gone.jsonl'}"
    elif case == "changed":
        suite.write_text("\n".join(lines[:-1]) + "\n")  # an item fewer than the run asked
        target = copy_run(run_dir, tmp_path / "run", suite)
        reason = f"{suite} changed since this run"
    elif case == "one-task-type":
        math = [line for line in lines if json.loads(line)["task_type"] == "math"]
        suite.write_text("\n".join(math) + "\n")
        target = copy_run(run_dir, tmp_path / "run", suite, hashlib.sha256(suite.read_bytes()).hexdigest())
        reason = "the run's dataset has one task type (math): a task router has nothing to choose between"
    else:
        target = run_dir
        reason = NOT_ASKED
    html = build_report(target, tmp_path / "report.html", classifier=case != "not-asked").read_text()
    page = Page(html)
    assert set(SECTIONS) <= page.ids and "task-classifier" not in page.svg_sections
    text = section_text(html, "task-classifier")
    assert f"No task classifier in this report: {reason}" in text, text
    assert "Unlabelled requests would be classified by the keyword rules" in text


def test_routing_outcome_counts_own_routes_abstentions_and_misroutes() -> None:
    truths = ["code", "code", "math", "math", "chat", "chat", "chat", "math"]
    deployed = ["code", None, "math", "code", "chat", None, "code", "poetry"]
    # "chat" has no route: it belongs on the default route, where a label without a route ("poetry") also goes.
    outcome = routing_outcome(truths, deployed, routes=["code", "math"])
    assert outcome == {"n": 8, "own": 4 / 8, "abstained": 1 / 8, "other": 3 / 8, "abstained_any": 2 / 8}
    # own: code→code, math→math, chat→chat (default), chat→None (default); abstained: code→None;
    # other: math→code, chat→code, math→poetry (default).


def test_the_per_prompt_router_is_asked_for_and_shown_against_its_baselines(run_dir: Path, tmp_path: Path) -> None:
    from evalkit.cli import main

    off = build_report(run_dir, tmp_path / "off.html", classifier=False).read_text()
    assert "Not computed for this report: evalkit report --prompt-router" in section_text(off, "prompt-router")
    assert "prompt-router" not in Page(off).svg_sections

    out = tmp_path / "on.html"
    assert main(["report", str(run_dir), "-o", str(out), "--prompt-router", "--no-classifier"]) == 0
    html = out.read_text()
    assert "prompt-router" in Page(html).svg_sections, "the cost–quality curve is drawn"
    rows = Tables(html, "prompt-router").table("replay")
    assert [row[0] for row in rows[1:]] == ["router", "best", "cheapest", "random", "oracle", "task_table"]
    assert all(re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", row[2]) for row in rows[1:]), rows
    text = section_text(html, "prompt-router")
    assert re.search(r"APGR (-?\d\.\d{3}|—) \[.*\] \(random 0\.5\), CPT\(50%\)", text), text
    assert "the random router" in text or "No APGR" in text
    assert NOT_ASKED in section_text(html, "task-classifier"), "--no-classifier reached the builder"


def test_a_failing_prompt_router_replay_is_reported_in_its_section(run_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.analysis import prompt_routing

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("every target has the same outcome on every item")

    monkeypatch.setattr(prompt_routing, "evaluate_prompt_router", broken)
    html = build_report(run_dir, tmp_path / "r.html", classifier=False, prompt_router=True).read_text()
    assert set(SECTIONS) <= Page(html).ids
    assert ("could not be computed: ValueError: every target has the same outcome on every item"
            in section_text(html, "prompt-router"))
