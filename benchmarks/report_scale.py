"""The HTML report of a 100,000-cell run: how long ``evalkit report`` takes and how big the file is.

Run: ``python benchmarks/report_scale.py [--rows 100000] [--targets 4] [--runs 3]``.

Targets (issue #7, on the 2-core machine): report generation ≤ 10 s and the HTML < 5 MB (the
drill-down samples whole requests beyond ``--max-drilldown`` cells and says so). The run is the
synthetic ``results_df`` frame of ``analysis_scale.py`` plus a model output per cell (a few
hundred characters, some with markup to escape), written in the runner's layout
(``results/part-0000.parquet`` + ``manifest.json``). The same-run baseline is what any report
must do at least: read the run back (``results_df``) and write every row as CSV. Times are the
median of ``--runs`` builds, each in a fresh process state apart from warm imports.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from analysis_scale import synthetic_results, timed


def write_run(directory: Path, rows: int, n_targets: int) -> Path:
    """A run directory of ``rows`` synthetic cells, with outputs, that ``evalkit report`` can read."""
    import polars as pl

    frame = synthetic_results(rows, n_targets)
    outputs = [f"Answer {i}: " + ("the <b>result</b> is " if i % 7 == 0 else "so the answer is ") + "x " * (i % 150)
               for i in range(frame.height)]
    frame = frame.with_columns(pl.Series("output", outputs, pl.String), pl.lit("synthetic").alias("grade_reason"))
    (directory / "results").mkdir(parents=True)
    frame.write_parquet(directory / "results" / "part-0000.parquet")
    targets = frame.get_column("target").unique().sort().to_list()
    manifest = {"run_id": "bench-report", "targets": targets, "simulated_targets": targets,
                "config": {"suite": "synthetic", "repeats": 1, "seed": 0}, "status": "complete"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--targets", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from evalkit.report import build_report
    from evalkit.runner import results_df

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = write_run(Path(tmp) / "run", args.rows, args.targets)
        csv, html = Path(tmp) / "rows.csv", Path(tmp) / "report.html"
        baseline = timed(lambda: results_df(run_dir).write_csv(csv), args.runs)
        report = timed(lambda: build_report(run_dir, html), args.runs)
        size, csv_size = html.stat().st_size, csv.stat().st_size

    print(f"{args.rows:,} cells, {args.targets} targets, median of {args.runs} runs")
    print(f"{'step':<34}{'median s':>10}{'ratio':>8}{'size MB':>10}")
    print(f"{'baseline: results_df -> CSV':<34}{baseline:>10.2f}{1.0:>8.2f}{csv_size / 1e6:>10.2f}")
    print(f"{'evalkit report':<34}{report:>10.2f}{report / baseline:>8.2f}{size / 1e6:>10.2f}")
    verdict = "OK" if report <= 10 and size < 5_000_000 else "MISSED"
    print(f"target: <= 10 s and < 5 MB -> {verdict}")


if __name__ == "__main__":
    main()
