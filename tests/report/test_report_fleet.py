"""``evalkit report``'s routing section prices and sizes emulated targets by the fleet the run used.

The run is ``tests/analysis/test_run_fleet.py``'s: ``evalkit run --fleet FILE`` with a ``sim-large`` priced and
sized unlike the built-in one and ``acme-mini``, a model the built-in fleet lacks. The report read the built-in
fleet before, so acme-mini's window (too small for the long documents) was "unknown, assumed large enough".
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evalkit.cli import main
from tests.analysis.test_run_fleet import make_fleet_run, run_with_fleet, write_fleet


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fleet_run(tmp_path_factory.mktemp("fleet_run"))


class PageText(HTMLParser):
    """The text a reader of the report sees, whitespace collapsed."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.feed(html)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def report_text(run_dir: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["report", str(run_dir), "-o", str(out), "--no-classifier"]) == 0
    capsys.readouterr()
    return PageText(out.read_text()).text


def test_the_reports_routing_section_uses_the_runs_fleet(fleet_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    text = report_text(fleet_run, tmp_path / "report.html", capsys)
    routing = text[text.index("Recommended routing table"):text.index("Counterfactual replay")]
    assert re.search(r"anthropic:acme-mini[^⚠]*context window 5,000 < [\d,]+ prompt tokens", routing), routing
    assert "context window unknown" not in routing


def test_the_report_says_which_emulated_targets_its_fleet_cannot_price(fleet_run: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    edited = write_fleet(tmp_path / "edited.yaml", with_mini=False)
    run_dir = run_with_fleet(fleet_run, tmp_path / "run", str(edited))
    text = report_text(run_dir, tmp_path / "report.html", capsys)
    assert (f"the run's fleet {edited} has no model for anthropic:acme-mini: unpriced and context window "
            f"unknown") in text
    assert "context window unknown, assumed large enough: anthropic:acme-mini" in text  # recommend's own note

