"""The reproduction ledger: honest categories, tolerances from the printed digits, citations that must exist."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from evalkit.analysis.reproduction import (
    CATEGORIES,
    FLOAT64_REASON,
    Reproduction,
    cite,
    float64_bound,
    printed_tolerance,
)


@pytest.mark.parametrize(("printed", "tolerance"), [
    ("0.562", 0.0005), ("14042", 0.5), ("14,042", 0.5), ("8.3125", 0.00005), ("8.757862", 5e-7),
    ("0.50", 0.005), ("-5.25", 0.005), ("1.5e-3", 0.00005), (" 9.228 ", 0.0005),
])
def test_tolerance_is_half_the_last_printed_digit(printed: str, tolerance: float) -> None:
    assert printed_tolerance(printed) == pytest.approx(tolerance, rel=1e-12)


@pytest.mark.parametrize("printed", ["n/a", "", "nan", "inf", "-"])
def test_a_tolerance_needs_a_printed_number(printed: str) -> None:
    with pytest.raises(ValueError):
        printed_tolerance(printed)


def test_a_number_printed_with_more_digits_is_held_to_them() -> None:
    """The old notebook matched every number within 0.005: 8.757862 vs 8.7579 passed. It must not."""
    ledger = Reproduction()
    assert not ledger.published("routellm", "README:13", "unify", "8.757862", 8.7579).holds
    assert ledger.published("routellm", "README:13", "unify", "8.757862", 8.7578616).holds
    assert not ledger.curator("routellm", "README:12", "gpt-4", "9.228", 9.2286).holds
    assert ledger.curator("routellm", "README:12", "gpt-4", "9.228", 9.228125).holds
    assert ledger.curator("routellm", "README:4", "rows", "14,042", 14042).holds
    assert not ledger.curator("routellm", "README:4", "rows", "14,042", 14041).holds
    assert [c.tolerance for c in ledger.checks][:3] == pytest.approx([5e-7, 5e-7, 5e-4])


def test_a_float_printed_in_full_is_matched_within_its_stated_bound() -> None:
    ledger = Reproduction()
    # "50.0" written by repr() is exactly 50: half its last digit (0.05) would accept 50.01.
    assert not ledger.published("alpaca_eval", "csv:7", "win_rate", "50.0", 50.01, bound=5e-9,
                                reason="rounded input").holds
    check = ledger.published("alpaca_eval", "csv:7", "win_rate", "50.0", 50.000000001, bound=5e-9,
                             reason="rounded input")
    assert check.holds and check.tolerance == 5e-9 and check.basis == "rounded input"
    value = 1.9900497512437807
    assert ledger.published("alpaca_eval", "csv:9", "discrete", repr(value), value + 2 * math.ulp(value),
                            bound=float64_bound(repr(value)), reason=FLOAT64_REASON).holds
    assert not ledger.published("alpaca_eval", "csv:9", "discrete", repr(value), value + 1e-14,
                                bound=float64_bound(repr(value)), reason=FLOAT64_REASON).holds
    with pytest.raises(ValueError, match="reason"):
        ledger.published("alpaca_eval", "csv:9", "discrete", "1.5", 1.5, bound=1e-9)
    with pytest.raises(ValueError, match="positive bound"):
        ledger.published("alpaca_eval", "csv:9", "discrete", "1.5", 1.5, bound=0.0, reason="none")
    assert float64_bound("1.0") == 4 * math.ulp(1.0) and float64_bound("-32.5", ulps=1) == math.ulp(32.5)


def test_categories_are_counted_apart_and_a_failure_shows() -> None:
    ledger = Reproduction()
    ledger.published("alpaca_eval", "csv:2", "a", "1.5", 1.5)
    ledger.published("alpaca_eval", "csv:3", "b", "2.5", 2.6)  # not reproduced
    ledger.curator("routellm", "README:10", "c", "80.58", 80.5797)
    ledger.by_construction("routellm", "a straight line", "random APGR", 0.5, 0.5 + 1e-12)
    ledger.sanity("routellm", "oracle - random", "> 0", False, -0.1)
    assert ledger.counts() == {"published": (1, 2), "curator": (1, 1), "by construction": (1, 1),
                               "sanity": (0, 1)}
    assert ledger.summary() == (
        "1 of 2 published numbers reproduced; 1 of 1 curator references reproduced; "
        "1 of 1 by construction (prove nothing about the code); 0 of 1 sanity checks hold")
    assert ledger.by_dataset("published") == {"alpaca_eval": 2} and ledger.by_dataset("curator") == {"routellm": 1}
    with pytest.raises(ValueError):
        ledger.by_dataset("published by the curator")
    empty = Reproduction()
    assert empty.counts() == dict.fromkeys(CATEGORIES, (0, 0))
    assert empty.to_frame().height == 0


def test_the_table_shows_each_check_with_its_difference() -> None:
    ledger = Reproduction()
    ledger.curator("routellm", "README:4", "rows", "14,042", 14042)
    ledger.by_construction("routellm", "a straight line", "random APGR", 0.5, 0.5)
    ledger.sanity("routellm", "held-out APGR", "between random and oracle", True, 0.68)
    frame = ledger.to_frame()
    assert frame.columns == ["category", "dataset", "source", "quantity", "printed", "computed", "tolerance",
                             "basis", "holds", "abs_diff"]
    assert frame["category"].to_list() == ["curator", "by construction", "sanity"]
    assert frame["abs_diff"].to_list() == [0.0, 0.0, None]
    assert frame.filter(pl.col("category") == "sanity")["basis"].item() == "between random and oracle"


def test_a_citation_names_the_line_and_fails_when_the_text_is_not_there(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stats.json").write_text(
        '{\n "a": {\n  "WB_score": 1.5,\n },\n "b": {\n  "WB_score": 2.25,\n }\n}\n')
    assert cite(tmp_path, "data/stats.json", '"b": {', '"WB_score": 2.25,') == "data/stats.json:6"
    assert cite(tmp_path, "data/stats.json", '"WB_score": 1.5') == "data/stats.json:3"
    with pytest.raises(ValueError, match="not found"):  # a's score, but only searched after b's key
        cite(tmp_path, "data/stats.json", '"b": {', '"WB_score": 1.5')
    with pytest.raises(ValueError, match="not found"):
        cite(tmp_path, "data/stats.json", "2.250")
    with pytest.raises(ValueError):
        cite(tmp_path, "data/stats.json")
