"""The bundled suites: shape, provenance, and that the build script reproduces them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from evalkit.datasets import bundled_suite_path, bundled_suites, load_dataset
from evalkit.errors import ConfigError
from tests.shared import shared_path

REPO = Path(__file__).resolve().parents[2]
SUITES_DIR = REPO / "datasets"
TASK_TYPES = {"code", "math", "factual_qa", "classification", "long_document", "creative"}
# Which grader each source uses; a change here is a change of the suite's meaning.
SOURCE_GRADERS = {
    "humaneval": "code_exec",
    "gsm8k": "numeric",
    "bbh": "exact",
    "nq_open": "alias",
    "mmlu": "mcq",
    "banking77": "label",
    "restaurant8k": "slot_f1",
    "longchat_lines": "numeric",
    "nq_open_oracle": "alias",
    "squality": "judge",
    "mt_bench": "judge",
}


@pytest.fixture(scope="module")
def default():
    return load_dataset("default")


@pytest.fixture(scope="module")
def smoke():
    return load_dataset("smoke")


@pytest.fixture(scope="module")
def manifest():
    return json.loads((SUITES_DIR / "default.sources.json").read_text(encoding="utf-8"))


def test_bundled_suites_are_found_in_the_checkout() -> None:
    assert {"default", "smoke"} <= set(bundled_suites())
    assert bundled_suite_path("default") == SUITES_DIR / "default.jsonl"
    with pytest.raises(ConfigError, match="no bundled suite named 'nope'"):
        bundled_suite_path("nope")


def test_wheel_layout_is_found_and_a_foreign_datasets_folder_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.datasets import _bundled

    package = tmp_path / "site-packages" / "evalkit"
    (package / "_bundled_datasets").mkdir(parents=True)
    (package / "_bundled_datasets" / "mini.jsonl").write_text((SUITES_DIR / "smoke.jsonl").read_text())
    # An unrelated top-level "datasets" package next to evalkit (no build script) must not count.
    (package.parent / "datasets").mkdir()
    (package.parent / "datasets" / "other.jsonl").write_text("{}\n")
    monkeypatch.setattr(_bundled, "_EVALKIT_DIR", package)
    assert bundled_suites() == ["mini"]
    assert bundled_suite_path("mini") == package / "_bundled_datasets" / "mini.jsonl"
    assert load_dataset("mini").name == "mini"


def test_default_has_six_task_types_and_about_300_unique_items(default) -> None:
    assert set(default.task_types) == TASK_TYPES
    assert 280 <= len(default) <= 320
    assert len({item.id for item in default}) == len(default)
    counts = Counter(item.task_type for item in default)
    assert all(counts[t] >= 25 for t in TASK_TYPES), counts
    assert (SUITES_DIR / "default.jsonl").stat().st_size < 6_000_000


def test_every_item_names_source_license_and_expected_grader(default) -> None:
    for item in default:
        meta = item.metadata
        assert {"source", "source_id", "license"} <= set(meta), item.id
        assert item.grader_type == SOURCE_GRADERS[meta["source"]], item.id
        if meta["source"] == "bbh":
            assert "canary GUID" in meta["canary"], item.id
        if item.grader_type == "judge":
            expected_mode = "reference" if item.task_type == "long_document" else "single"
            assert item.grader["mode"] == expected_mode, item.id


def test_long_document_prompts_are_long_but_not_huge(default) -> None:
    # ~4 characters per token: roughly 2.5k-7k tokens, nothing near 16k.
    lengths = [len(item.prompt_text) for item in default if item.task_type == "long_document"]
    assert lengths and min(lengths) >= 9_000 and max(lengths) <= 29_000, (min(lengths), max(lengths))


def test_code_references_pass_their_own_tests(default) -> None:
    programs = [
        item.reference + "\n\n" + item.grader["tests"] + f"\n\ncheck({item.grader['entry_point']})\n"
        for item in default
        if item.grader_type == "code_exec"
    ]
    runner = (
        "import json, sys\nfor code in json.load(sys.stdin):\n    exec(compile(code, 'item', 'exec'), {})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner],
        input=json.dumps(programs),
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_smoke_is_a_stratified_subset_of_default(default, smoke) -> None:
    by_id = {item.id: item for item in default}
    assert 36 <= len(smoke) <= 48
    assert all(by_id.get(item.id) == item for item in smoke)
    counts = Counter(item.task_type for item in smoke)
    assert set(counts) == TASK_TYPES and all(6 <= n <= 8 for n in counts.values()), counts


def test_sources_file_matches_the_suites(default, smoke, manifest) -> None:
    assert manifest["seed"] == 20261126 and manifest["script_version"]
    ids_by_source: dict[str, list] = {}
    for item in default:
        ids_by_source.setdefault(item.metadata["source"], []).append(item.metadata["source_id"])
    assert set(manifest["sources"]) == set(ids_by_source)
    for source, entry in manifest["sources"].items():
        assert entry["source_ids"] == ids_by_source[source], source
        assert entry["count"] == len(ids_by_source[source]) and entry["inputs"], source
    assert manifest["suites"]["default"]["sha256"] == default.sha256
    assert manifest["suites"]["default"]["items"] == len(default)
    assert manifest["suites"]["smoke"]["sha256"] == smoke.sha256
    assert manifest["suites"]["smoke"]["ids"] == [item.id for item in smoke]


def test_attribution_names_every_source_and_license_files_exist(manifest) -> None:
    attribution = (SUITES_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    for source in manifest["sources"]:
        assert f"`{source}`" in attribution, source
    for name in (
        "squality/LICENSE",
        "squality/GUTENBERG_LICENSE",
        "Apache-2.0.txt",
        "CC-BY-4.0.txt",
        "CC-BY-SA-3.0.txt",
    ):
        assert (SUITES_DIR / "licenses" / name).is_file(), name


def _shared_data() -> Path | None:
    return shared_path("data", must_contain=("humaneval",))


@pytest.mark.skipif(
    _shared_data() is None, reason="source data not found at <repo>/../shared/data or /work/shared/data"
)
def test_build_script_reproduces_the_suites_byte_for_byte(tmp_path: Path) -> None:
    script = SUITES_DIR / "build_suites.py"
    result = subprocess.run(
        [sys.executable, str(script), "--shared", str(_shared_data()), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("default.jsonl", "smoke.jsonl", "default.sources.json"):
        assert (tmp_path / name).read_bytes() == (SUITES_DIR / name).read_bytes(), name
