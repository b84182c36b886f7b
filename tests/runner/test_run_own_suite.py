"""A user's own suite on the emulator gets gradable answers, not filler scored 0."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import evalkit

from .test_cli_inputs import run_cli

ITEMS = [
    {"id": f"sum-{a}-{b}", "task_type": "math", "prompt": f"What is {a} + {b}? End with 'So the answer is N.'",
     "reference": str(a + b), "grader": {"type": "numeric", "answer_after": "So the answer is"}}
    for a, b in ((17, 25), (123, 877), (40, 2), (999, 1), (314, 271), (12, 30))
]


def test_an_unbundled_suite_is_registered_and_graded_by_its_own_graders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    code, err = run_cli(tmp_path, ["--suite", "mine.jsonl", "--time-scale", "0", "--run-id", "mine"],
                        monkeypatch, capsys)
    assert code == 0 and f"{len(ITEMS)} prompts of mine registered with the emulator" in err, err
    results = evalkit.results_df(tmp_path / "runs/mine")
    assert results["passed"].sum() > 0, "registered prompts are answered with the item's own reference"
    by_target = results.group_by("target").agg(pl.col("passed").mean()).sort("passed")
    assert by_target["passed"][0] < by_target["passed"][-1], "models differ by their skill"
