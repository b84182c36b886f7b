"""load_dataset: happy paths for JSONL/CSV/Parquet and every validation failure.

Each malformed-input case asserts the exact ``file:line: field:`` prefix of its
problem, since that is what a user reads to find and fix the row.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evalkit.datasets import Dataset, DatasetError, Item, load_dataset
from evalkit.errors import ConfigError
from evalkit.types import Message

from .rows import GOOD, row, write_jsonl


# --- happy paths -----------------------------------------------------------------


def test_jsonl_loads_items_with_normalised_fields(tmp_path: Path) -> None:
    chat = {
        "id": "c1",
        "task_type": "classification",
        "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": "hello"}],
        "reference": "greeting",
        "grader": {"type": "label", "labels": ["greeting", "other"]},
        "metadata": {"source": "unit"},
    }
    path = write_jsonl(tmp_path, GOOD, "", chat)
    dataset = load_dataset(path)
    assert isinstance(dataset, Dataset)
    assert dataset.name == "data" and dataset.path == path and len(dataset) == 2
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.task_types == ("math", "classification")
    first, second = list(dataset)
    assert first == Item("q1", "math", (Message("user", "What is 2+2?"),), 4, {"type": "numeric"}, {})
    assert first.prompt_text == "What is 2+2?" and first.grader_type == "numeric"
    assert second.messages[0] == Message("system", "Classify.")
    assert second.prompt_text == "hello"
    assert second.metadata == {"source": "unit"}


def test_reference_shapes_are_normalised_per_grader(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path,
        row(id="n", reference="1,234"),
        row(id="s", grader="slot_f1", reference='{"time": "7pm"}'),
        row(id="a", grader="alias", reference=["USA", "United States"]),
        row(id="j", grader={"type": "judge", "mode": "single"}, reference=...),
    )
    items = {item.id: item for item in load_dataset(path)}
    assert items["n"].reference == 1234
    assert items["s"].reference == {"time": "7pm"}
    assert items["a"].reference == ["USA", "United States"]
    assert items["j"].reference is None


def test_items_pickle_and_hash(tmp_path: Path) -> None:
    dataset = load_dataset(write_jsonl(tmp_path, GOOD))
    assert pickle.loads(pickle.dumps(dataset)) == dataset
    assert len({dataset.items[0], pickle.loads(pickle.dumps(dataset.items[0]))}) == 1


def test_dataset_error_pickles_with_its_problems(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(write_jsonl(tmp_path, {"id": 1}, "[]"))
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.problems == info.value.problems and str(copy) == str(info.value)


def test_csv_decodes_json_cells(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "id,task_type,messages,prompt,reference,grader,metadata\n"
        "a,factual_qa,,Capital of France?,Paris,exact,\n"
        'b,factual_qa,"[{""role"": ""user"", ""content"": ""Largest US state?""}]",,'
        '"[""Alaska"", ""AK""]",alias,"{""k"": 1}"\n'
        'c,classification,,"Multi\nline prompt",spam,'
        '"{""type"": ""label"", ""labels"": [""spam"", ""ham""]}",\n'
        "d,math,,2+2?,4,numeric,\n",
        encoding="utf-8",
    )
    items = {item.id: item for item in load_dataset(path)}
    assert items["a"].reference == "Paris" and items["a"].grader == {"type": "exact"}
    assert items["b"].messages == (Message("user", "Largest US state?"),)
    assert items["b"].reference == ["Alaska", "AK"] and items["b"].metadata == {"k": 1}
    assert items["c"].prompt_text == "Multi\nline prompt" and items["c"].grader["labels"] == ["spam", "ham"]
    assert items["d"].reference == 4


def _parquet_table() -> Any:
    pa = pytest.importorskip("pyarrow")
    return pa.table(
        {
            "id": ["p1", "p2"],
            "task_type": ["math", "classification"],
            "messages": [[{"role": "user", "content": "2+2?"}], [{"role": "user", "content": "hi"}]],
            "reference": ["4", "greeting"],
            # One struct type for all rows: p1's labels is null and must be dropped.
            "grader": [{"type": "numeric", "labels": None}, {"type": "label", "labels": ["greeting", "x"]}],
            "metadata": ['{"source": "unit"}', None],
        }
    )


def test_parquet_native_and_json_columns(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    pq.write_table(_parquet_table(), path)
    p1, p2 = load_dataset(path)
    assert p1.grader == {"type": "numeric"} and p1.reference == 4 and p1.metadata == {"source": "unit"}
    assert p2.grader == {"type": "label", "labels": ["greeting", "x"]} and p2.prompt_text == "hi"


def test_parquet_falls_back_to_polars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("polars")
    from evalkit.datasets import _readers

    path = tmp_path / "data.parquet"
    pq.write_table(_parquet_table(), path)

    def no_pyarrow(data: bytes) -> Any:
        raise ImportError("pyarrow")

    monkeypatch.setattr(_readers, "_records_with_pyarrow", no_pyarrow)
    assert [item.id for item in load_dataset(path)] == ["p1", "p2"]

    monkeypatch.setattr(_readers, "_records_with_polars", no_pyarrow)
    with pytest.raises(ConfigError, match="reading Parquet needs pyarrow: pip install pyarrow"):
        load_dataset(path)


def test_import_does_not_load_dataframe_libraries() -> None:
    heavy = "('polars', 'pyarrow', 'pandas')"
    code = f"import sys, evalkit.datasets; print(sorted(m for m in {heavy} if m in sys.modules))"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "[]"
