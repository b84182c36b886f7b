"""The notebooks run top to bottom on the embedded default, and are committed without outputs.

Each notebook executes in a fresh kernel with ``notebooks/`` as its working directory, the way
``jupyter lab notebooks/`` runs it; ``EVALKIT_RUNS_DIR`` sends its runs to a temporary directory.
A failing cell fails the test with that cell's source and traceback (nbclient's CellExecutionError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from tests.shared import shared_path

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
TIMEOUT_S = 240  # per cell; each notebook takes well under a minute on 2 cores


def _shared_data() -> Path | None:
    """The team's shared/data with the RouteLLM, AlpacaEval and WildBench results 04 reads."""
    return shared_path("data", must_contain=("routellm", "alpaca_eval", "wildbench"))


def execute(name: str) -> Any:
    """Run ``notebooks/<name>.ipynb`` top to bottom and return the executed copy (the file is untouched)."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def texts(nb: Any) -> list[str]:
    """What a reader sees as text in the outputs: streams, plain-text and markdown results (latest updates)."""
    out = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                out.append(output.text)
            else:
                data = output.get("data", {})
                out += [data[kind] for kind in ("text/markdown", "text/plain") if kind in data]
    return out


def matches(nb: Any, pattern: str) -> list[re.Match]:
    return [m for text in texts(nb) for m in re.finditer(pattern, text)]


def run_dirs(runs_dir: Path) -> list[Path]:
    return sorted(m.parent for m in runs_dir.glob("*/manifest.json"))


def check_benchmark(nb: Any, runs_dir: Path) -> None:
    from evalkit.runner import results_df

    [run] = run_dirs(runs_dir)
    assert list((run / "results").glob("*.parquet")) and list((run / "attempts").glob("*.parquet"))
    results = results_df(run)
    # The progress line ends at the total, and the total is every cell of the run.
    assert matches(nb, rf"\b{results.height}/{results.height} cells"), "the progress display never reached the end"
    from evalkit.runner import attempts_df

    attempts = attempts_df(run)
    retried = results.filter(results["n_attempts"] > 1)
    assert retried.height > 0, "the notebook injects faults: some cells need a retry"
    assert attempts.height == results["n_attempts"].sum(), "every retry is an attempt row"
    assert attempts.filter(attempts["error_kind"].is_not_null()).height >= retried.height
    failed = results.filter(results["status"] == "error")
    assert failed["error_kind"].null_count() == 0, "every failed cell has a typed error_kind"
    assert matches(nb, r"\d+ cells needed a retry; \d+ failed after all their retries")


def check_analysis(nb: Any, runs_dir: Path) -> None:
    assert len(run_dirs(runs_dir)) == 1
    images = [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the Pareto frontier figure must render"
    assert matches(nb, r"pandas and summary_df agree on \d+ "), "the pandas recomputation must match summary_df"


def check_routing(nb: Any, runs_dir: Path) -> None:
    [run] = run_dirs(runs_dir)
    routing = run / "routing"
    config = yaml.safe_load((routing / "routing.yaml").read_text())
    assert config["router"]["type"] == "task" and config["router"]["routes"]
    assert config["router"]["classifier"] == {"file": "routing.classifier.json"}
    assert (routing / "routing.classifier.json").is_file() and (routing / "routing.classifier.npz").is_file()
    assert "model_list" in yaml.safe_load((routing / "litellm_config.yaml").read_text())
    assert "LiteLLM cannot run it" in (routing / "litellm_config.yaml").read_text()
    assert json.loads((routing / "portkey.json").read_text())
    assert matches(nb, r"note: The task classifier is not exported.*Portkey cannot run it")
    # The classifier's cross-validated scores with their confusion matrix, then the per-prompt router's curve.
    assert matches(nb, r"task classifier: 5-fold cross-validation on 300 items")
    assert matches(nb, r"cross-fitted replay, 300 items, 5 folds")
    assert matches(nb, r"task_table +task table \(cross-fitted\)")
    figures = [cell.id for cell in nb.cells for output in cell.get("outputs", [])
               if "image/png" in output.get("data", {})]
    assert figures == ["classifier", "prompt-router"], figures
    named = matches(nb, r"unlabelled, the classifier names it '(\w+)' \(its task type: '(\w+)'\)")
    assert named and named[0].group(1) == named[0].group(2)
    served = matches(nb, r"router answered: served by (\S+) after (\d+) attempts")
    assert served, "the request through Router.from_config must be answered"
    assert int(served[0].group(2)) >= 2, "the scripted failures of the primary must show in response.attempts"


# 04's checks per category and data set. A check dropped, added or moved to another category changes
# these, and must change them here too, on purpose: "published" means the publisher printed the number and
# evalkit recomputed it from the raw data (AlpacaEval: 57 leaderboard rows × 6 columns; WildBench: 7
# WB_scores; RouteLLM: the Martian and Unify router scores); "curator" are routellm/README.md's own recomputations;
# "by construction" the random router's APGR and CPT(50%) on 3 benchmarks, which hold for any data.
PUBLISHED_RESULTS_CHECKS = {
    "published": {"routellm": 2, "alpaca_eval": 342, "wildbench": 7},
    "curator": {"routellm": 15},
    "by construction": {"routellm": 6},
    "sanity": {"routellm": 4, "alpaca_eval": 1},
}
SUMMARY_04 = (r"(\d+) of (\d+) published numbers reproduced; (\d+) of (\d+) curator references reproduced; "
              r"(\d+) of (\d+) by construction \(prove nothing about the code\); "
              r"(\d+) of (\d+) sanity checks hold")


def check_published(nb: Any, runs_dir: Path) -> None:
    [summary] = matches(nb, SUMMARY_04)
    numbers = list(map(int, summary.groups()))
    counts = {category: (numbers[2 * i], numbers[2 * i + 1])
              for i, category in enumerate(PUBLISHED_RESULTS_CHECKS)}
    expected = {category: sum(by_set.values()) for category, by_set in PUBLISHED_RESULTS_CHECKS.items()}
    assert {category: total for category, (_, total) in counts.items()} == expected, counts
    assert all(held == total for held, total in counts.values()), f"a check did not hold: {counts}"
    by_set = {m.group(1): {name: int(n) for name, n in re.findall(r"([\w-]+) (\d+)", m.group(2))}
              for m in matches(nb, r"(published|curator|by construction|sanity) by data set: (.*)")}
    assert by_set == PUBLISHED_RESULTS_CHECKS
    assert not matches(nb, r"NOT reproduced"), "a check failed"
    assert run_dirs(runs_dir) == [], "04 reads published data; it runs nothing"


CHECKS: dict[str, Callable[[Any, Path], None]] = {
    "01_benchmark": check_benchmark,
    "02_analysis": check_analysis,
    "03_routing": check_routing,
    "04_published_results": check_published,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (NOTEBOOKS / f"{name}.ipynb").is_file():
        pytest.skip(f"notebooks/{name}.ipynb is not in this checkout")
    if name == "04_published_results":
        shared = _shared_data()
        if shared is None:
            pytest.skip("shared/data (RouteLLM, AlpacaEval) not present; 04_published_results reads it")
        monkeypatch.setenv("EVALKIT_SHARED_DATA", str(shared))
    # The kernel inherits this process's environment.
    monkeypatch.setenv("EVALKIT_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    CHECKS[name](execute(name), tmp_path)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    """Outputs in git turn every re-run into a diff full of images and timings."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
            assert "execution" not in cell.metadata, f"{path.name} cell {i} has execution timings"


def test_every_notebook_is_executed_by_a_test() -> None:
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} <= set(CHECKS)
