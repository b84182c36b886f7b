"""The per-prompt router's data: each item's request text and every target's recorded outcome on it.

* :func:`run_prompts`: the request text of every item of a run, rebuilt from the
  dataset its manifest names exactly as the runner built the request
  (:func:`evalkit.runner.run.build_request`), after checking the dataset's
  sha256 still matches the run's.
* :func:`routellm_prompts`: the prompts of RouteLLM's GPT-4 vs Mixtral data
  (item ids as :func:`~evalkit.analysis.load_routellm` makes them), and
  :func:`routellm_priced` its results with an estimated cost per call.
* :func:`prompt_data`: items × targets matrices (mean score over repeats, number
  of repeats, mean cost) for the items every target has a result for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..router import request_text
from ..types import ChatRequest

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PromptData", "prompt_data", "routellm_priced", "routellm_prompts", "run_prompts"]

_COST_QUANTUM = Decimal("1e-12")

ROUTELLM_PRICES = {  # USD per 1M tokens (input, output), from genai-prices as evalkit prices them
    "gpt-4-1106-preview": ("openai", "gpt-4-1106-preview"),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": ("together", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
}


@dataclass(frozen=True)
class PromptData:
    """Items (rows) × targets (columns): what training and the cross-fitted replay read.

    ``scores`` is the mean metric over an item's repeats (a failed call scores
    0, as in :func:`~evalkit.analysis.replay_policy`), ``weights`` the number of
    repeats, ``costs`` the mean USD per request as float (NaN: unpriced).
    ``target_costs`` are the Decimal means over every item, ``None`` for a
    target with any unpriced cell.
    """

    item_ids: tuple[str, ...]
    texts: tuple[str, ...]
    task_types: tuple[str, ...]
    targets: tuple[str, ...]
    scores: np.ndarray
    weights: np.ndarray
    costs: np.ndarray
    target_costs: tuple[Decimal | None, ...]
    n_dropped: int

    def __len__(self) -> int:
        return len(self.item_ids)


def as_text(prompt: Any) -> str:
    """The routed text of a prompt: a request as :func:`request_text` shows it (a plain string is one user turn)."""
    if isinstance(prompt, ChatRequest):
        return request_text(prompt)
    if isinstance(prompt, str):
        return request_text(ChatRequest.from_prompt(prompt))
    raise TypeError(f"a prompt is a ChatRequest or a string, got {type(prompt).__name__}")


def run_prompts(run_dir: str | Path) -> dict[str, str]:
    """``{item_id: request text}`` for a run, from the dataset named in its manifest.

    A dataset that changed since the run (sha256) is a ConfigError: its prompts
    are not the ones the results were recorded on.
    """
    from ..datasets import load_dataset
    from ..runner import Cell
    from ..runner.run import RunOptions, build_request

    manifest_path = Path(run_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        recorded = manifest["dataset"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not a readable run manifest: {exc}", file=str(manifest_path)) from None
    dataset = load_dataset(recorded.get("path") or recorded.get("name"))
    if recorded.get("sha256") and dataset.sha256 != recorded["sha256"]:
        raise ConfigError(f"{dataset.path} changed since the run (sha256 {dataset.sha256[:12]}…, the run recorded "
                          f"{recorded['sha256'][:12]}…): its prompts are not the ones the results are about",
                          file=str(manifest_path), field="dataset.sha256")
    options = RunOptions()
    return {item.id: request_text(build_request(item, Cell(0, 0, 0), options)) for item in dataset}


def prompt_data(prompts: Mapping[str, Any], results: Any, *, targets: Sequence[str] | None = None,
                metric: str = "score") -> PromptData:
    """Items with a prompt and a result for every target, as matrices (see :class:`PromptData`)."""
    import numpy as np
    import polars as pl

    from ._replay_frame import normalise

    frame = normalise(results, metric=metric)
    names = tuple(targets) if targets is not None else tuple(sorted(frame.get_column("target").unique().to_list()))
    known = set(frame.get_column("target").unique().to_list())
    unknown = [t for t in names if t not in known]
    if unknown:
        raise ValueError(f"no results for target {unknown[0]!r}; the results have {', '.join(sorted(known))}")
    per_item = (frame.filter(pl.col("target").is_in(names))
                .group_by("item_id", "target")
                .agg(pl.col("score").mean().alias("score"), pl.len().alias("n"),
                     pl.when(pl.col("cost").null_count() == 0).then(pl.col("cost").mean()).alias("cost"),
                     pl.col("task_type").first().alias("task_type")))
    complete = per_item.group_by("item_id").agg(pl.len().alias("k")).filter(pl.col("k") == len(names))
    all_items = per_item.get_column("item_id").n_unique()
    per_item = per_item.join(complete.select("item_id"), on="item_id", how="semi")
    missing = sorted(set(complete.get_column("item_id").to_list()) - set(prompts))
    if missing:
        raise ValueError(f"no prompt for item {missing[0]!r} ({len(missing)} items of the results have none)")
    items = sorted(complete.get_column("item_id").to_list())
    if not items:
        raise ValueError("no item has a result for every target")
    row_of = {item: i for i, item in enumerate(items)}
    col_of = {t: j for j, t in enumerate(names)}
    shape = (len(items), len(names))
    scores, weights, costs = np.zeros(shape), np.zeros(shape), np.full(shape, np.nan)
    task_types = [""] * len(items)
    for item, target, score, n, cost, task in per_item.iter_rows():
        i, j = row_of[item], col_of[target]
        scores[i, j], weights[i, j] = score, n
        costs[i, j] = np.nan if cost is None else cost
        task_types[i] = task
    return PromptData(tuple(items), tuple(as_text(prompts[i]) for i in items), tuple(task_types), names,
                      scores, weights, costs, _decimal_costs(results, names, set(items)), all_items - len(items))


def _decimal_costs(results: Any, names: Sequence[str], items: set[str]) -> tuple[Decimal | None, ...]:
    """Each target's mean cost per request as a Decimal, None when any of its cells is unpriced."""
    import polars as pl

    if isinstance(results, (str, Path)):
        from ..runner import results_df

        results = results_df(results)
    if "cost_usd" not in results.columns:
        return tuple(None for _ in names)
    out: list[Decimal | None] = []
    for name in names:
        cells = results.filter((pl.col("target") == name) & pl.col("item_id").cast(pl.String).is_in(list(items)))
        values = cells.get_column("cost_usd").to_list()
        if not values or any(v is None for v in values):
            out.append(None)
            continue
        total = sum((Decimal(str(v)) for v in values), Decimal(0))
        mean = (total / len(values)).quantize(_COST_QUANTUM).normalize()
        out.append(Decimal(format(mean, "f")))  # plain digits, no exponent: the artifact shows it as written
    return tuple(out)


# -- RouteLLM's GPT-4 vs Mixtral data ------------------------------------------------------------------


def routellm_prompts(shared_data_dir: str | Path, benchmark: str) -> dict[str, str]:
    """``{item_id: request text}`` for :func:`~evalkit.analysis.load_routellm`'s items.

    MMLU and GSM8K: the ``prompt`` column of RouteLLM's files (the exact text the
    models answered). MT-Bench: turn 1 is the question; turn 2 is both user
    turns (the first answer differs per model, so it is left out of the text).
    """
    return {item: text for item, (text, _) in _routellm_rows(Path(shared_data_dir), benchmark).items()}


def routellm_priced(shared_data_dir: str | Path, benchmark: str) -> tuple[dict[str, str], Any]:
    """RouteLLM's prompts and results with an *estimated* ``cost_usd`` per cell.

    Cost = input tokens × input price + output tokens × output price, tokens
    counted locally (cl100k), prices from genai-prices (GPT-4-1106 on OpenAI,
    Mixtral-8x7B-Instruct on Together). Output tokens: the stored answer where
    the data has one (GSM8K, MT-Bench), else 1 (MMLU: the answer letter).
    """
    import polars as pl

    from ..pricing import PriceTable
    from ..tokens import count_tokens
    from .external import load_routellm

    shared = Path(shared_data_dir)
    results = load_routellm(shared, benchmark)
    rows = _routellm_rows(shared, benchmark)
    table = PriceTable()
    prices = {model: table.lookup(*where) for model, where in ROUTELLM_PRICES.items()}
    input_tokens = {item: count_tokens(_plain(text), "gpt-4").count for item, (text, _) in rows.items()}
    costs = []
    for item, model, output in results.select("item_id", "target", "output").iter_rows():
        price = prices.get(model)
        if price is None:
            costs.append(None)
            continue
        answer = output if output is not None else rows[item][1].get(model)
        out_tokens = count_tokens(answer, "gpt-4").count if answer else 1
        costs.append(str((input_tokens[item] * price.input + out_tokens * price.output) / Decimal(1_000_000)))
    priced = results.with_columns(pl.Series("cost_usd", costs, pl.String).cast(results.schema["cost_usd"]))
    return {item: text for item, (text, _) in rows.items()}, priced


def _plain(text: str) -> str:
    from ..router import ROLE_MARK

    return text.replace(f"{ROLE_MARK}user\n", "")


def _routellm_rows(shared: Path, benchmark: str) -> dict[str, tuple[str, dict[str, str]]]:
    """``{item_id: (request text, {model: stored answer})}`` (answers only for MT-Bench)."""
    import gzip

    import polars as pl

    root = shared / "routellm"
    if benchmark == "mt_bench":
        return _mt_bench_rows(shared)
    if benchmark == "mmlu":
        files = sorted((root / "mmlu" / "responses").glob("mmlu_*.csv.gz"))
        subjects = [f.name.removeprefix("mmlu_").removesuffix(".csv.gz") for f in files]
    elif benchmark == "gsm8k":
        files, subjects = [root / "gsm8k" / "gsm8k_responses.csv.gz"], ["gsm8k"]
    else:
        raise ValueError(f"benchmark must be one of mmlu, gsm8k, mt_bench, got {benchmark!r}")
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for path, subject in zip(files, subjects):
        prompts = pl.read_csv(gzip.decompress(path.read_bytes()), columns=["prompt"]).get_column("prompt")
        for row, prompt in enumerate(prompts.to_list()):  # ids as load_routellm makes them: the row's position
            out[f"{subject}/{row}"] = (as_text(prompt or ""), {})
    return out


def _mt_bench_rows(shared: Path) -> dict[str, tuple[str, dict[str, str]]]:
    import gzip
    import re

    questions = [json.loads(line) for line in (shared / "mt_bench" / "question.jsonl").read_text().splitlines()
                 if line.strip()]
    answers: dict[tuple[int, int], dict[str, str]] = {}
    pattern = {1: re.compile(r"\[The Start of Assistant's Answer\]\n(.*)\n\[The End of Assistant's Answer\]", re.DOTALL),
               2: re.compile(r".*### Assistant A:\n(.*)\n\n<\|The End of Assistant A's Conversation", re.DOTALL)}
    judgements = gzip.decompress((shared / "routellm" / "mt_bench" / "judgements.jsonl.gz").read_bytes())
    for line in judgements.decode("utf-8").splitlines():
        record = json.loads(line)
        found = pattern.get(record["turn"], pattern[1]).search(record["user_prompt"])
        if found:
            answers.setdefault((record["question_id"], record["turn"]), {})[record["model"]] = found.group(1)
    out = {}
    for q in questions:
        first = ChatRequest.from_prompt(q["turns"][0])
        both = ChatRequest(messages=[{"role": "user", "content": t} for t in q["turns"][:2]])
        for turn, request in ((1, first), (2, both)):
            out[f"mt_bench/{q['question_id']}/turn{turn}"] = (request_text(request),
                                                              answers.get((q["question_id"], turn), {}))
    return out
