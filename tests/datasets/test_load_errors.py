"""load_dataset rejects malformed input with ``file:line: field: problem`` lines.

Every case asserts the exact location prefix. Loading is all or nothing, so
each case also checks that no Dataset is returned (the call raises).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.datasets import DatasetError, load_dataset
from evalkit.errors import ConfigError

from .rows import GOOD, row, write_jsonl

CODE_GRADER = {
    "type": "code_exec",
    "tests": "def check(candidate):\n    assert candidate(1) == 2\n",
    "entry_point": "f",
}


def error_text(path: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load_dataset(path)
    return str(info.value)


def expect(path: Path, line: int | None, field: str | None, message_start: str) -> None:
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    prefix = where + (f"{field}: " if field else "") + message_start
    text = error_text(path)
    assert prefix in text, f"expected {prefix!r} in:\n{text}"


# (case name, rows after a good first row, line, field, message start)
ROW_CASES = [
    ("invalid JSON", ['{"id": "x",'], 2, None, "invalid JSON"),
    ("not an object", ["[1, 2]"], 2, None, "expected a JSON object, got array"),
    ("NaN is not JSON", ['{"id": "x", "reference": NaN}'], 2, None, "invalid JSON"),
    ("missing id", [row(id=...)], 2, "id", "is required"),
    ("duplicate id", [row()], 2, "id", "duplicate id 'q1' (first used on line 1)"),
    ("id not a string", [row(id=7)], 2, "id", "must be a string, got number"),
    ("missing task_type", [row(id="x", task_type=...)], 2, "task_type", "is required"),
    ("empty task_type", [row(id="x", task_type=" ")], 2, "task_type", "must not be empty"),
    ("unknown field", [row(id="x", refrence=1)], 2, "refrence", "unknown field"),
    (
        "both messages and prompt",
        [row(id="x", messages=[{"role": "user", "content": "a"}])],
        2,
        "prompt",
        "give either 'messages' or 'prompt', not both",
    ),
    ("neither messages nor prompt", [row(id="x", prompt=...)], 2, "messages", "one of 'messages'"),
    ("empty prompt", [row(id="x", prompt="")], 2, "prompt", "must be a non-empty string"),
    ("messages not a list", [row(id="x", prompt=..., messages="hi")], 2, "messages", "must be a list"),
    ("empty messages", [row(id="x", prompt=..., messages=[])], 2, "messages", "must not be empty"),
    (
        "message not an object",
        [row(id="x", prompt=..., messages=["hi"])],
        2,
        "messages[0]",
        "must be an object with role and content, got string",
    ),
    (
        "message without role",
        [row(id="x", prompt=..., messages=[{"content": "a"}])],
        2,
        "messages[0].role",
        "is required",
    ),
    (
        "bad role",
        [
            row(
                id="x",
                prompt=...,
                messages=[{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}],
            )
        ],
        2,
        "messages[1].role",
        "must be one of system, user, assistant, got 'tool'",
    ),
    (
        "content not a string",
        [row(id="x", prompt=..., messages=[{"role": "user", "content": 5}])],
        2,
        "messages[0].content",
        "must be a string, got number",
    ),
    (
        "message without content",
        [row(id="x", prompt=..., messages=[{"role": "user"}])],
        2,
        "messages[0].content",
        "is required",
    ),
    (
        "no user message",
        [row(id="x", prompt=..., messages=[{"role": "system", "content": "a"}])],
        2,
        "messages",
        "must contain at least one user message",
    ),
    ("missing grader", [row(id="x", grader=...)], 2, "grader", "is required"),
    ("grader not a mapping", [row(id="x", grader=3)], 2, "grader", "must be a grader type name"),
    ("grader without type", [row(id="x", grader={"labels": ["a"]})], 2, "grader.type", "is required"),
    ("unknown grader type", [row(id="x", grader="fuzzy")], 2, "grader.type", "unknown grader type 'fuzzy'"),
    ("label without labels", [row(id="x", grader="label", reference="a")], 2, "grader.labels", "is required"),
    (
        "labels not a list",
        [row(id="x", grader={"type": "label", "labels": "a,b"}, reference="a")],
        2,
        "grader.labels",
        "must be a non-empty list",
    ),
    ("regex without pattern", [row(id="x", grader="regex")], 2, "grader.pattern", "is required"),
    (
        "regex does not compile",
        [row(id="x", grader={"type": "regex", "pattern": "(a"})],
        2,
        "grader.pattern",
        "does not compile",
    ),
    (
        "json_schema without schema",
        [row(id="x", grader="json_schema", reference={})],
        2,
        "grader.schema",
        "is required",
    ),
    (
        "code_exec without tests",
        [row(id="x", grader={"type": "code_exec", "entry_point": "f"}, reference="def f(x): ...")],
        2,
        "grader.tests",
        "is required",
    ),
    (
        "code_exec without entry_point",
        [row(id="x", grader={"type": "code_exec", "tests": CODE_GRADER["tests"]}, reference="def f(x): ...")],
        2,
        "grader.entry_point",
        "is required",
    ),
    (
        "code_exec tests without check",
        [row(id="x", grader=dict(CODE_GRADER, tests="assert True"), reference="x")],
        2,
        "grader.tests",
        "must be Python code that defines check(candidate)",
    ),
    (
        "code_exec bad timeout",
        [row(id="x", grader=dict(CODE_GRADER, timeout_s=-1), reference="x")],
        2,
        "grader.timeout_s",
        "must be a positive number",
    ),
    (
        "judge bad mode",
        [row(id="x", grader={"type": "judge", "mode": "pairwise"})],
        2,
        "grader.mode",
        "must be 'single' or 'reference', got 'pairwise'",
    ),
    ("judge without mode", [row(id="x", grader="judge")], 2, "grader.mode", "is required"),
    (
        "mcq bad choices",
        [row(id="x", grader={"type": "mcq", "choices": ["a", "b"]}, reference="a")],
        2,
        "grader.choices",
        "must be a non-empty list of capital letters",
    ),
    (
        "reference missing",
        [row(id="x", reference=...)],
        2,
        "reference",
        "is required for grader 'numeric' (only judge-graded items may omit it)",
    ),
    ("reference null", [row(id="x", reference=None)], 2, "reference", "is required for grader 'numeric'"),
    (
        "judge reference mode needs reference",
        [row(id="x", grader={"type": "judge", "mode": "reference"}, reference=...)],
        2,
        "reference",
        "is required for judge mode 'reference'",
    ),
    ("numeric reference not a number", [row(id="x", reference="four")], 2, "reference", "must be a number"),
    (
        "mcq reference not a choice",
        [row(id="x", grader={"type": "mcq", "choices": ["A", "B"]}, reference="C")],
        2,
        "reference",
        "'C' is not one of the choices A, B",
    ),
    (
        "label reference not a label",
        [row(id="x", grader={"type": "label", "labels": ["a"]}, reference="b")],
        2,
        "reference",
        "'b' is not one of the grader's labels",
    ),
    (
        "slot_f1 reference not a mapping",
        [row(id="x", grader="slot_f1", reference=["7pm"])],
        2,
        "reference",
        "must be an object mapping slot names",
    ),
    (
        "alias reference empty list",
        [row(id="x", grader="alias", reference=[])],
        2,
        "reference",
        "must be a non-empty string or a non-empty list",
    ),
    ("metadata not a mapping", [row(id="x", metadata=["a"])], 2, "metadata", "must be an object, got array"),
]


@pytest.mark.parametrize(
    ("rows", "line", "field", "message"), [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES]
)
def test_row_problem_is_reported_with_location(
    tmp_path: Path, rows: list[Any], line: int, field: str | None, message: str
) -> None:
    expect(write_jsonl(tmp_path, GOOD, *rows), line, field, message)


def test_all_problems_are_collected_in_one_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, row(id=1, task_type=""), "", "not json", GOOD, row())
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    error = info.value
    assert isinstance(error, ConfigError)
    located = [(p.line, p.field) for p in error.problems]
    assert located == [(1, "id"), (1, "task_type"), (3, None), (5, "id")]
    lines = str(error).splitlines()
    assert lines[0] == f"{path}: 4 problems in dataset:"
    assert lines[1:] == [str(p) for p in error.problems]
    assert lines[4] == f"{path}:5: id: duplicate id 'q1' (first used on line 4)"


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    expect(write_jsonl(tmp_path, GOOD, "", "", row(id="x", task_type=...)), 4, "task_type", "is required")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "\xff"}\n')
    expect(path, 2, None, "not valid UTF-8")


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank lines"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    expect(path, None, None, "dataset is empty: it has no items")


def test_file_not_found(tmp_path: Path) -> None:
    expect(tmp_path / "missing.jsonl", None, None, "dataset file not found")


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text(json.dumps(GOOD))
    expect(path, None, None, "unknown dataset file extension '.txt'")


def test_unknown_suite_name() -> None:
    with pytest.raises(ConfigError, match="dataset: no dataset file or bundled suite named 'no_such_suite'"):
        load_dataset("no_such_suite")


# --- CSV and Parquet --------------------------------------------------------------


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_missing_required_column(tmp_path: Path) -> None:
    expect(
        write_csv(tmp_path, "id,task_type,prompt,reference\nq1,math,2+2?,4\n"),
        1,
        "grader",
        "missing required column",
    )


def test_csv_without_messages_or_prompt_column(tmp_path: Path) -> None:
    expect(
        write_csv(tmp_path, "id,task_type,grader\nq1,math,numeric\n"),
        1,
        "messages",
        "missing required column",
    )


def test_csv_unknown_column(tmp_path: Path) -> None:
    expect(
        write_csv(tmp_path, "id,task_type,prompt,reference,grader,extra\nq1,math,2+2?,4,numeric,x\n"),
        1,
        "extra",
        "unknown column",
    )


def test_csv_invalid_json_cell_and_line_numbers_after_multiline_cell(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "id,task_type,messages,reference,grader\n"
        'a,math,"[{""role"": ""user"", ""content"": ""two\nlines""}]",4,numeric\n'
        "b,math,[not json,4,numeric\n"
        'c,math,"[{""role"": ""user"", ""content"": ""x""}]",,numeric\n',
    )
    text = error_text(path)
    assert f"{path}:4: messages: cell is not valid JSON" in text
    assert f"{path}:5: reference: is required for grader 'numeric'" in text


def test_csv_row_with_bad_json_cell_still_reports_its_other_problems(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, 'id,task_type,messages,reference,grader\nq1,,[oops,4,"{""type"": ""regex""}"\n'
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert [(p.line, p.field) for p in info.value.problems] == [
        (2, "messages"),
        (2, "task_type"),
        (2, "grader.pattern"),
    ]


def test_csv_cell_count_mismatch(tmp_path: Path) -> None:
    expect(
        write_csv(tmp_path, "id,task_type,prompt,reference,grader\nq1,math,2+2?,4\n"),
        2,
        None,
        "expected 5 cells like the header, got 4",
    )


def test_csv_header_only_is_empty(tmp_path: Path) -> None:
    expect(write_csv(tmp_path, "id,task_type,prompt,reference,grader\n"), None, None, "dataset is empty")


def test_parquet_wrong_column_types(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    table = pa.table(
        {
            "id": [1, 2],
            "task_type": ["math", "math"],
            "messages": [5, 6],
            "reference": [4, 4],
            "grader": ["numeric", "numeric"],
        }
    )
    pq.write_table(table, path)
    text = error_text(path)
    assert f"{path}:1: id: must be a string, got number" in text
    assert f"{path}:2: messages: must be a list of {{role, content}} objects, got number" in text


def test_parquet_missing_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"id": ["a"], "prompt": ["hi"], "grader": ["numeric"], "reference": [1]}), path)
    expect(path, 1, "task_type", "missing required column")


def test_parquet_unreadable_file(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet at all")
    expect(path, None, None, "cannot read Parquet file")
