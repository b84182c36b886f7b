"""``evalkit run --suite smoke --targets llamacpp:...`` end to end against a real llama.cpp server.

What a newcomer with a local server types, with no header workaround: every
row is answered or a typed failure, the deterministic graders grade, the
results load as a DataFrame and the report renders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.runner import attempts_df, results_df


def _evalkit(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=1200)


@pytest.fixture(scope="module")
def smoke_run(llamacpp_server, tmp_path_factory):
    """One smoke run on the real server (41 items), shared by the tests below."""
    work = tmp_path_factory.mktemp("llamacpp-run")
    env = {**os.environ, "LLAMACPP_BASE_URL": llamacpp_server.base_url}
    done = _evalkit("run", "--suite", "smoke", "--targets", llamacpp_server.target, "--max-tokens", "32",
                    "--concurrency", "2", "--run-id", "llama", "--no-progress", "--no-judge", env=env, cwd=work)
    return work, work / "runs" / "llama", done


def test_the_smoke_suite_runs_on_llamacpp_with_graded_rows(smoke_run) -> None:
    work, run_dir, done = smoke_run
    assert done.returncode == 0, done.stderr[-3000:]
    rows = results_df(run_dir).to_pandas()
    assert len(rows) == 41 and set(rows["target"]) == {"llamacpp:gemma-3-270m"}
    answered = rows[rows["error_kind"].isna()]
    # The server runs with a 2,048-token context: the long documents are refused by llama.cpp itself
    # (400 context_length_exceeded), and each is a typed failure row, not a crash of the run.
    kinds = rows["error_kind"].value_counts(dropna=False).to_dict()
    assert set(rows["error_kind"].dropna()) == {"context_length"}, kinds
    long_docs = rows[rows["task_type"] == "long_document"]
    assert (rows[rows["error_kind"] == "context_length"]["task_type"] == "long_document").all(), kinds
    assert len(answered) >= 41 - len(long_docs), kinds
    deterministic = answered[~answered["item_id"].str.startswith(("mt_bench", "squality"))]
    assert deterministic["score"].notna().all()
    assert (answered["output_tokens"] <= 32).all()  # within --max-tokens, whether counted or reported


def test_the_attempts_and_the_report_of_that_run(smoke_run) -> None:
    work, run_dir, done = smoke_run
    assert done.returncode == 0, done.stderr[-3000:]
    attempts = attempts_df(run_dir).to_pandas()
    assert len(attempts) >= 41 and (attempts["target"] == "llamacpp:gemma-3-270m").all()
    report = _evalkit("report", str(run_dir), "-o", str(work / "report.html"), env=dict(os.environ), cwd=work)
    assert report.returncode == 0, report.stderr[-2000:]
    html = (work / "report.html").read_text()
    assert "llamacpp:gemma-3-270m" in html
