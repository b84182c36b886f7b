"""Result tables that did not come from evalkit, as ``results_df``-compatible frames.

The long format :func:`load_results_table` reads has one row per item × model:

=============  ===========================================================
column         meaning
=============  ===========================================================
item           item id (anything; turned into a string)
task_type      the item's task type (optional: ``task_type=None`` → "all")
model          the model or system that answered (becomes ``target``)
score          grade in [0, 1] (optional if ``correct`` is given)
correct        pass/fail: bool, 0/1 or "true"/"false" (optional if ``score`` is)
cost           USD for this item (optional; null = unpriced, never 0)
latency_ms     wall time (optional)
repeat         0-based repeat index (optional; default 0)
output         the answer text (optional)
=============  ===========================================================

Column names are passed as keyword arguments. The output has every
``results_df`` column (:mod:`evalkit.runner.schema`): ``status`` "ok",
``score`` (= correct as 0/1 when only ``correct`` is given), ``passed``
(= correct, or ``score >= pass_threshold``, else null), ``cost_usd`` as a
Decimal, everything unknown null. Rows with neither a score nor a correct
value are dropped: the model has no result for that item.

Loaders for published multi-model data (``shared_data_dir`` is a folder laid
out like the team's ``shared/data``): :func:`load_routellm` (RouteLLM's
GPT-4-1106 vs Mixtral per-prompt results), :func:`load_routellm_routers`
(the commercial Martian and Unify routers RouteLLM ran on MT-Bench),
:func:`load_alpaca_eval` (AlpacaEval 2.0 per-instruction preferences; instance
data is CC BY-NC 4.0 — read it, do not redistribute it) and
:func:`load_wildbench` (WildBench v2 per-prompt judge scores). The publishers'
own aggregate metrics over these tables are in :mod:`evalkit.analysis.leaderboards`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

__all__ = ["load_alpaca_eval", "load_results_table", "load_routellm", "load_routellm_routers",
           "load_wildbench"]

_ROUTELLM_BENCHMARKS = ("mmlu", "gsm8k", "mt_bench")


def load_results_table(path_or_frame: Any, *, item: str = "item", task_type: str | None = "task_type",
                       model: str = "model", score: str | None = None, correct: str | None = None,
                       cost: str | None = None, latency_ms: str | None = None, repeat: str | None = None,
                       output: str | None = None, pass_threshold: float | None = None,
                       run_id: str | None = None) -> Any:
    """Read a long-format result table (CSV/Parquet/JSONL path, polars or pandas frame).

    The format and the output columns are described in this module's docstring.
    """
    import polars as pl

    from ..runner.schema import result_schema

    if score is None and correct is None:
        raise ValueError("give the score column, the correct column, or both")
    frame = _as_frame(path_or_frame)
    passed = _as_bool(pl.col(correct)) if correct is not None else (
        pl.col(score).cast(pl.Float64) >= pass_threshold if pass_threshold is not None else pl.lit(None))
    score_expr = pl.col(score).cast(pl.Float64) if score is not None else _as_bool(pl.col(correct)).cast(
        pl.Float64)
    columns = {
        "run_id": pl.lit(run_id if run_id is not None else _source_name(path_or_frame)),
        "item_id": pl.col(item).cast(pl.String),
        "task_type": pl.col(task_type).cast(pl.String) if task_type is not None else pl.lit("all"),
        "target": pl.col(model).cast(pl.String),
        "repeat": pl.col(repeat) if repeat is not None else pl.lit(0),
        "status": pl.lit("ok"),
        "served_by": pl.col(model).cast(pl.String),
        "latency_ms": pl.col(latency_ms) if latency_ms is not None else pl.lit(None),
        # Through a string so a float cost becomes the Decimal it prints as, not its binary expansion.
        "cost_usd": pl.col(cost).cast(pl.String) if cost is not None else pl.lit(None),
        "score": score_expr,
        "passed": passed,
        "n_attempts": pl.lit(1),
        "output": pl.col(output) if output is not None else pl.lit(None),
    }
    schema = result_schema()
    out = frame.select(**{name: columns.get(name, pl.lit(None)).alias(name) for name in schema})
    return out.cast(schema).filter(pl.col("score").is_not_null() | pl.col("passed").is_not_null())


def _as_frame(path_or_frame: Any) -> Any:
    import polars as pl

    if isinstance(path_or_frame, pl.DataFrame):
        return path_or_frame
    if isinstance(path_or_frame, pl.LazyFrame):
        return path_or_frame.collect()
    if not isinstance(path_or_frame, (str, Path)):
        return pl.from_pandas(path_or_frame)  # pandas (or anything pl.from_pandas takes)
    path = Path(path_or_frame)
    name = path.name.removesuffix(".gz")
    data = _read_bytes(path)
    if name.endswith(".parquet"):
        return pl.read_parquet(data)
    if name.endswith((".jsonl", ".ndjson")):
        return pl.read_ndjson(data)
    if name.endswith(".json"):
        return pl.read_json(data)
    return pl.read_csv(data, infer_schema_length=None)


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _source_name(path_or_frame: Any) -> str:
    return Path(path_or_frame).name if isinstance(path_or_frame, (str, Path)) else "external"


def _as_bool(column: Any) -> Any:
    """Booleans, 0/1 or "true"/"false" strings as a polars Boolean (anything else: null)."""
    import polars as pl

    text = column.cast(pl.String).str.to_lowercase().str.strip_chars()
    return (pl.when(text.is_in(["true", "1", "1.0", "yes"])).then(True)
            .when(text.is_in(["false", "0", "0.0", "no"])).then(False).otherwise(None))


def load_routellm(shared_data_dir: str | Path, benchmark: str = "mmlu", *, decontaminate: bool = True,
                  by_subject: bool = False) -> Any:
    """RouteLLM's per-prompt results for GPT-4-1106 and Mixtral-8x7B as a results table.

    ``mmlu`` / ``gsm8k``: ``passed`` is RouteLLM's True/False correctness,
    ``score`` the same as 0/1; item ids are ``<subject>/<row>`` (MMLU) or
    ``gsm8k/<row>``. ``mt_bench``: one item per question × turn,
    ``score`` = GPT-4 judgment / 10, ``passed`` null; judgments outside 1–10
    are dropped. ``decontaminate`` drops the prompts RouteLLM lists in
    ``contaminated_prompts.jsonl`` (its evaluations always do; MT-Bench drops
    a question when either turn is listed, which needs ``mt_bench/question.jsonl``).
    ``by_subject`` sets ``task_type`` to the MMLU subject or MT-Bench category
    instead of the benchmark name. The data has no cost or latency.
    """
    if benchmark not in _ROUTELLM_BENCHMARKS:
        raise ValueError(f"benchmark must be one of {_ROUTELLM_BENCHMARKS}, got {benchmark!r}")
    root = Path(shared_data_dir) / "routellm"
    contaminated = _contaminated(root / benchmark / "contaminated_prompts.jsonl") if decontaminate else []
    if benchmark == "mt_bench":
        return _routellm_mt_bench(Path(shared_data_dir), contaminated, by_subject)
    return _routellm_correctness(root, benchmark, contaminated, by_subject)


def _contaminated(path: Path) -> list[str]:
    return [json.loads(line)["eval_prompt"] for line in path.read_text().splitlines() if line.strip()]


def _routellm_correctness(root: Path, benchmark: str, contaminated: list[str], by_subject: bool) -> Any:
    import polars as pl

    if benchmark == "mmlu":
        files = sorted((root / "mmlu" / "responses").glob("mmlu_*.csv.gz"))
        subjects = [f.name.removeprefix("mmlu_").removesuffix(".csv.gz") for f in files]
    else:
        files, subjects = [root / "gsm8k" / "gsm8k_responses.csv.gz"], ["gsm8k"]
    parts = []
    for path, subject in zip(files, subjects):
        wide = pl.read_csv(_read_bytes(path), infer_schema_length=None).with_row_index("_row")
        models = [c for c, dtype in wide.schema.items() if dtype == pl.Boolean]
        # Prompts repeat across MMLU rows, so the id is the row's position, not its text.
        wide = wide.with_columns(pl.format("{}/{}", pl.lit(subject), "_row").alias("item"),
                                 pl.lit(subject if by_subject else benchmark).alias("task_type"))
        wide = wide.filter(~pl.col("prompt").is_in(contaminated))
        responses = {f"{m}_response" for m in models} & set(wide.columns)
        long = wide.unpivot(index=["item", "task_type"], on=models, variable_name="model",
                            value_name="correct")
        if responses:
            answers = wide.unpivot(index=["item"], on=sorted(responses), variable_name="model",
                                   value_name="output")
            answers = answers.with_columns(pl.col("model").str.strip_suffix("_response"))
            long = long.join(answers, on=["item", "model"], how="left")
        parts.append(long)
    frame = pl.concat(parts, how="diagonal")
    output = "output" if "output" in frame.columns else None
    return load_results_table(frame, correct="correct", output=output, run_id=f"routellm-{benchmark}")


def _routellm_mt_bench(shared: Path, contaminated: list[str], by_subject: bool) -> Any:
    judgements = shared / "routellm" / "mt_bench" / "judgements.jsonl.gz"
    return _mt_bench_judgements(judgements, shared, contaminated, by_subject, run_id="routellm-mt_bench")


def _mt_bench_judgements(path: Path, shared: Path, contaminated: list[str], by_subject: bool, *,
                         run_id: str) -> Any:
    """FastChat single-answer judgments (one row per question × turn × model) as a results table."""
    import polars as pl

    # The score column is an int in some files and a float in others (and -1 = "the judge gave no rating").
    judgements = pl.read_ndjson(_read_bytes(path), schema_overrides={"score": pl.Float64},
                                infer_schema_length=None)
    questions = pl.read_ndjson(shared / "mt_bench" / "question.jsonl").select(
        "question_id", "category", pl.col("turns").list.get(0).alias("t1"),
        pl.col("turns").list.get(1).alias("t2"))
    dropped = questions.filter(pl.col("t1").is_in(contaminated) | pl.col("t2").is_in(contaminated))
    frame = (judgements.join(dropped.select("question_id"), on="question_id", how="anti")
             .join(questions.select("question_id", "category"), on="question_id", how="left")
             .filter(pl.col("score").is_between(1, 10))
             .select(pl.format("mt_bench/{}/turn{}", "question_id", "turn").alias("item"),
                     (pl.col("category") if by_subject else pl.lit("mt_bench")).alias("task_type"),
                     "model", (pl.col("score") / 10).alias("score")))
    return load_results_table(frame, score="score", run_id=run_id)


def load_routellm_routers(shared_data_dir: str | Path, *, by_subject: bool = False) -> Any:
    """MT-Bench answers of the commercial routers RouteLLM benchmarked (``martian``, ``unify``).

    From ``routellm/benchmarks_mt-bench/gpt-4_single.jsonl.gz``: GPT-4
    single-answer judgments of every turn of the 80 MT-Bench questions,
    ``score`` = judgment / 10 as in :func:`load_routellm`'s ``mt_bench``. A
    judgment of -1 (the judge gave no rating; one Unify turn) is dropped, as
    MT-Bench's own scoring does. Nothing is decontaminated: RouteLLM's
    ``benchmarks/README.md`` scores the routers on all 80 questions. The mean
    ``score`` × 10 is the MT-Bench score that README publishes.
    """
    shared = Path(shared_data_dir)
    path = shared / "routellm" / "benchmarks_mt-bench" / "gpt-4_single.jsonl.gz"
    return _mt_bench_judgements(path, shared, [], by_subject, run_id="routellm-benchmarks-mt_bench")


def load_alpaca_eval(shared_data_dir: str | Path, *, by_subject: bool = False) -> Any:
    """AlpacaEval 2.0 per-instruction preferences (58 models × 805 instructions) as a results table.

    Each model was judged against the ``gpt4_1106_preview`` baseline by the
    weighted GPT-4-Turbo annotator; ``preference`` ∈ [1, 2] is the judge's
    probability-weighted verdict (2 = the model wins). ``score`` =
    ``preference - 1``, so a model's mean score × 100 is AlpacaEval's
    ``win_rate`` (``AbsoluteScoringRule``: mean over the instructions the model
    has an annotation for). ``passed`` = ``score > 0.5`` (a discrete win);
    exact draws (0.5) count as half a win in AlpacaEval's ``discrete_win_rate``,
    not here. The length-controlled win rate needs AlpacaEval's fitted
    instruction difficulties, which the shared data does not carry, so it is
    not reproduced. ``by_subject`` sets ``task_type`` to the instruction's
    source dataset (helpful_base, koala, oasst, selfinstruct, vicuna).
    """
    import polars as pl

    path = Path(shared_data_dir) / "alpaca_eval" / "ae2_per_instruction_preferences.csv.gz"
    wide = pl.read_csv(_read_bytes(path), infer_schema_length=None)
    models = [c for c in wide.columns if c not in ("idx", "dataset", "instruction")]
    long = wide.unpivot(index=["idx", "dataset"], on=models, variable_name="model", value_name="preference")
    frame = long.select(pl.format("alpaca_eval/{}", "idx").alias("item"),
                        (pl.col("dataset") if by_subject else pl.lit("alpaca_eval")).alias("task_type"),
                        "model", (pl.col("preference").cast(pl.Float64) - 1).alias("score"))
    results = load_results_table(frame, score="score", run_id="alpaca_eval")
    return results.with_columns((pl.col("score") > 0.5).alias("passed"))


def load_wildbench(shared_data_dir: str | Path) -> Any:
    """WildBench v2 per-prompt scores (8 models × 1,024 sessions) as a results table.

    From ``wildbench/wb_v2.0625_scores_gpt4o_judge_8models.csv``: the GPT-4o
    judge's 1–10 score of each model's answer to each session, ``score`` =
    judgment / 10 (the MT-Bench convention above); a blank (the model has no
    scored answer for that session) is no row. ``item_id`` is the session id;
    the task category is not in the shared data, so ``task_type`` is
    ``"wildbench"``. WildBench's ``WB_score`` of a model is
    :func:`evalkit.analysis.leaderboards.wildbench_scores`.
    """
    import polars as pl

    path = Path(shared_data_dir) / "wildbench" / "wb_v2.0625_scores_gpt4o_judge_8models.csv"
    wide = pl.read_csv(path, infer_schema_length=None)
    models = [c for c in wide.columns if c != "session_id"]
    long = wide.unpivot(index="session_id", on=models, variable_name="model", value_name="judgment")
    frame = long.select(pl.col("session_id").alias("item"), pl.lit("wildbench").alias("task_type"), "model",
                        (pl.col("judgment").cast(pl.Float64) / 10).alias("score"))
    return load_results_table(frame, score="score", run_id="wildbench")
