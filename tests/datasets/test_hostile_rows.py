"""Rows built to crash a loader (deep nesting, huge integers, bad bytes) are one clear error, in every format.

Before: 100,000 nested ``[`` in a JSONL row or a CSV/Parquet JSON cell raised ``RecursionError`` out of
``evalkit run`` (exit 1, a traceback); a 5,000-digit integer surfaced Python's own advice to raise
``sys.set_int_max_str_digits``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.datasets import load_dataset
from evalkit.errors import ConfigError

from .rows import GOOD, row

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "1" * 5_000


def jsonl(tmp_path: Path, metadata_json: str) -> Path:
    path = tmp_path / "bad.jsonl"
    second = json.dumps(row(id="q2", metadata={"n": 0})).replace('{"n": 0}', '{"n": ' + metadata_json + "}")
    path.write_text(json.dumps(GOOD) + "\n" + second + "\n", encoding="utf-8")
    return path


def csv(tmp_path: Path, metadata_json: str) -> Path:
    path = tmp_path / "bad.csv"
    cell = '"' + ('{"n": ' + metadata_json + "}").replace('"', '""') + '"'
    path.write_text("id,task_type,prompt,reference,grader,metadata\nq2,math,x,4,numeric," + cell + "\n",
                    encoding="utf-8")
    return path


def parquet(tmp_path: Path, metadata_json: str) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["q2"], "task_type": ["math"], "prompt": ["x"], "reference": ["4"],
                             "grader": ["numeric"], "metadata": ['{"n": ' + metadata_json + "}"]}), path)
    return path


@pytest.mark.parametrize(
    ("writer", "where"), [(jsonl, ":2: invalid JSON: "), (csv, ":2: metadata: cell is not valid JSON: "),
                          (parquet, ":1: metadata: cell is not valid JSON: ")])
@pytest.mark.parametrize(
    ("value", "problem"),
    [(DEEP, "nested deeper than 100 levels"), (HUGE, "an integer of 5000 digits; at most 1000 are accepted"),
     ("1e999", "1e999 is too large for a number")])
def test_hostile_values_are_one_located_error(tmp_path: Path, writer, where: str, value: str, problem: str) -> None:
    path = writer(tmp_path, value)
    with pytest.raises(ConfigError) as caught:
        load_dataset(path)
    assert f"{path}{where}{problem}" in str(caught.value)
    assert "set_int_max_str_digits" not in str(caught.value)


def test_non_utf8_rows_name_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + json.dumps(row(id="q2", prompt="caf\xe9")).encode()
                     .replace(b"\\u00e9", b"\xe9") + b"\n")
    with pytest.raises(ConfigError, match=r"latin1\.jsonl:2: not valid UTF-8 \(invalid continuation byte at byte"):
        load_dataset(path)
    table = tmp_path / "latin1.csv"
    table.write_bytes(b"id,task_type,prompt,reference,grader\nq1,math,caf\xe9,4,numeric\n")
    with pytest.raises(ConfigError, match=r"latin1\.csv:2: not valid UTF-8 \(invalid continuation byte at byte 48\)"):
        load_dataset(table)


def test_evalkit_run_on_a_hostile_suite_exits_2_and_writes_nothing(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    for value in (DEEP, HUGE):
        suite = jsonl(tmp_path, value)
        code = main(["run", "--suite", str(suite), "--targets", "emulator:sim-small", "--runs-dir", str(runs)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"evalkit: error: {suite}:2: invalid JSON" in err and "Traceback" not in err
        assert not runs.exists() or not any(runs.iterdir())
