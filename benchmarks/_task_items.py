"""Items of the bundled suite's sources that are NOT in the suite, for held-out tests of the task classifier.

Used by ``benchmarks/task_classifier.py`` and ``tests/analysis/test_classifier_training.py``.

* :func:`held_out_items`: the suite's own builders (``datasets/build_suites.py``:
  same loaders, same prompt templates, same seeded selection) asked for more items
  per source than the suite took; every id the suite has is dropped. A builder
  takes a prefix of a seeded shuffle, so the first items it returns are the
  suite's and the rest are new. MT-Bench has none to give: the suite already holds
  all 30 first turns of its writing, roleplay and humanities questions.
* :func:`bare_items`: a stress set, not a target: the same sources' cases *without*
  the suite's instruction wrapper (a GSM8K question alone, a HumanEval signature and
  docstring alone, …), and MT-Bench's second turns of those categories, as a request
  without a benchmark template looks. Items in the suite are skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BARE_BBH_TASKS = ("multistep_arithmetic_two", "object_counting", "date_understanding", "navigate")


def default_shared_data() -> Path | None:
    """``../shared/data`` next to the repository, or /work/shared/data; None when neither exists."""
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (candidate / "humaneval").is_dir():
            return candidate
    return None


def _suite_builders() -> Any:
    folder = str(REPO / "datasets")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.dont_write_bytecode = True  # keep __pycache__ out of the bundled data folder
    import build_suites

    return build_suites


def held_out_items(shared: Path, suite_ids: set[str], per_source: int = 100) -> list[dict[str, Any]]:
    """Up to ``per_source`` items per source, built exactly as the suite's, none of them in the suite."""
    builders = _suite_builders()
    from _suite_common import BuildContext

    ctx = BuildContext(shared=shared, seed=builders.SEED)
    out = []
    for source, _task_type, count, builder in sorted(builders.PLAN, key=lambda s: s[0] not in builders.BUILD_FIRST):
        fresh = [item for item in builder(ctx, count + per_source) if item["id"] not in suite_ids]
        out.extend(fresh[:per_source])
    order = [source for source, *_ in builders.PLAN]
    return sorted(out, key=lambda item: order.index(item["metadata"]["source"]))


def bare_items(shared: Path, suite_ids: set[str], per_source: int = 60) -> list[dict[str, Any]]:
    """The stress set described above: ``{"id", "task_type", "source", "messages"}`` rows."""
    out: list[dict[str, Any]] = []

    def add(source: str, task_type: str, rows: list[tuple[str, str]]) -> None:
        fresh = [(item_id, text) for item_id, text in rows if item_id not in suite_ids][:per_source]
        out.extend({"id": f"bare-{item_id}", "task_type": task_type, "source": source,
                    "messages": [{"role": "user", "content": text}]} for item_id, text in fresh)

    humaneval = _jsonl(gzip.decompress((shared / "humaneval/HumanEval.jsonl.gz").read_bytes()).decode())
    add("humaneval", "code", [(f"humaneval-{r['task_id'].split('/')[1]}", r["prompt"].strip()) for r in humaneval])
    gsm8k = _jsonl((shared / "gsm8k/test.jsonl").read_text(encoding="utf-8"))
    add("gsm8k", "math", [(f"gsm8k-{i}", r["question"]) for i, r in enumerate(gsm8k)])
    bbh = []
    for task in BARE_BBH_TASKS:
        examples = json.loads((shared / f"bbh/{task}.json").read_text())["examples"]
        rows = [(f"bbh-{task}-{i}", e["input"]) for i, e in enumerate(examples)]
        bbh.extend([row for row in rows if row[0] not in suite_ids][:per_source // len(BARE_BBH_TASKS)])
    add("bbh", "math", bbh)
    nq = _jsonl((shared / "nq_open/NQ-open.dev.jsonl").read_text(encoding="utf-8"))
    add("nq_open", "factual_qa", [(f"nq_open-{i}", r["question"] + "?") for i, r in enumerate(nq)])
    mmlu = list(csv.DictReader(io.StringIO(gzip.decompress((shared / "mmlu/mmlu_test.csv.gz").read_bytes()).decode())))
    add("mmlu", "factual_qa", [(f"mmlu-{i}", r["question"].strip() + "\n" + "\n".join(
        f"{letter}. {r[letter].strip()}" for letter in "ABCD")) for i, r in enumerate(mmlu)][::97])
    questions = _jsonl((shared / "mt_bench/question.jsonl").read_text(encoding="utf-8"))
    add("mt_bench (2nd turns)", "creative", [(f"mt_bench-{q['question_id']}-turn2", q["turns"][1]) for q in questions
                                             if q["category"] in ("writing", "roleplay", "humanities")])
    return out


def _jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
