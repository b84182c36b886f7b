#!/usr/bin/env python3
"""Build evalkit's bundled suites from the source data in ``shared/data``.

Writes ``default.jsonl`` (about 300 items, six task types), ``smoke.jsonl`` (a
stratified, short-prompt subset of it) and ``default.sources.json`` (the
chosen source ids, input hashes, seed and script version). The output is
byte-identical for the same inputs, seed and script version.

    python datasets/build_suites.py                       # shared data at <repo>/../shared/data
    python datasets/build_suites.py --shared ../shared/data --out /tmp/suites

To extend a source, raise its count in ``PLAN``: selection takes a prefix of a
seeded shuffle, so every item chosen before stays chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the builder modules sit next to this script
sys.dont_write_bytecode = True  # keep __pycache__ out of the bundled data folder

from _suite_common import SOURCES, BuildContext, round_robin
from _suite_long import build_longchat_lines, build_nq_open_oracle, build_squality
from _suite_short import (
    build_banking77,
    build_bbh,
    build_gsm8k,
    build_humaneval,
    build_mmlu,
    build_mt_bench,
    build_nq_open,
    build_restaurant8k,
)

SEED = 20261126
SCRIPT_VERSION = "1"
TASK_TYPES = ("code", "math", "factual_qa", "classification", "long_document", "creative")

Builder = Callable[[BuildContext, int], list[dict[str, Any]]]
# (source, task type, count, builder) in output order.
PLAN: list[tuple[str, str, int, Builder]] = [
    ("humaneval", "code", 50, build_humaneval),
    ("gsm8k", "math", 31, build_gsm8k),
    ("bbh", "math", 24, build_bbh),
    ("nq_open", "factual_qa", 30, build_nq_open),
    ("mmlu", "factual_qa", 30, build_mmlu),
    ("banking77", "classification", 30, build_banking77),
    ("restaurant8k", "classification", 30, build_restaurant8k),
    ("longchat_lines", "long_document", 15, build_longchat_lines),
    ("nq_open_oracle", "long_document", 18, build_nq_open_oracle),
    ("squality", "long_document", 12, build_squality),
    ("mt_bench", "creative", 30, build_mt_bench),
]
# nq_open_oracle claims its NQ questions first so closed-book nq_open does not repeat them.
BUILD_FIRST = ("nq_open_oracle",)
SMOKE_PER_TASK_TYPE = {"long_document": 6}
SMOKE_DEFAULT_PER_TASK_TYPE = 7


def build_sources(ctx: BuildContext) -> dict[str, dict[str, Any]]:
    """Run every builder; per source: its items and the input files it read."""
    order = sorted(PLAN, key=lambda step: step[0] not in BUILD_FIRST)
    built: dict[str, dict[str, Any]] = {}
    for source, task_type, count, builder in order:
        inputs_before = set(ctx.inputs_used)
        items = builder(ctx, count)
        if len(items) != count or any(item["task_type"] != task_type for item in items):
            raise RuntimeError(
                f"{source}: built {len(items)} items, expected {count} of task type {task_type}"
            )
        inputs = {name: ctx.inputs_used[name] for name in sorted(set(ctx.inputs_used) - inputs_before)}
        built[source] = {"items": items, "inputs": inputs}
    return built


def prompt_chars(item: dict[str, Any]) -> int:
    """Characters across all of an item's messages (a proxy for its cost)."""
    return sum(len(message["content"]) for message in item["messages"])


def smoke_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shortest prompts first, but one per sub-task (BBH task, MT-Bench category) before repeats."""
    firsts, rest, seen = [], [], set()
    for item in sorted(items, key=lambda item: (prompt_chars(item), item["id"])):
        group = item["metadata"].get("bbh_task") or item["metadata"].get("category")
        (rest if group in seen else firsts).append(item)
        seen.add(group)
    return firsts + rest


def select_smoke(built: dict[str, dict[str, Any]]) -> set[str]:
    """Per task type, round-robin over its sources, short prompts preferred."""
    chosen: set[str] = set()
    for task_type in TASK_TYPES:
        groups = [
            smoke_order(built[source]["items"])
            for source, source_type, _, _ in PLAN
            if source_type == task_type
        ]
        quota = SMOKE_PER_TASK_TYPE.get(task_type, SMOKE_DEFAULT_PER_TASK_TYPE)
        chosen.update(item["id"] for item in round_robin(groups, quota))
    return chosen


def jsonl_bytes(items: list[dict[str, Any]]) -> bytes:
    """One JSON object per line, UTF-8, with line separators that some tools split on escaped."""
    lines = []
    for item in items:
        text = json.dumps(item, ensure_ascii=False)
        for char in ("\u2028", "\u2029", "\x85"):
            text = text.replace(char, f"\\u{ord(char):04x}")
        lines.append(text + "\n")
    return "".join(lines).encode("utf-8")


def sources_manifest(
    built: dict[str, dict[str, Any]], suites: dict[str, tuple[list[dict[str, Any]], bytes]]
) -> bytes:
    """``default.sources.json``: enough to rebuild the suites and check a rebuild."""
    manifest: dict[str, Any] = {
        "script": "datasets/build_suites.py",
        "script_version": SCRIPT_VERSION,
        "seed": SEED,
        "suites": {},
        "sources": {},
    }
    for name, (items, data) in suites.items():
        per_type = {t: sum(1 for item in items if item["task_type"] == t) for t in TASK_TYPES}
        entry = {"file": f"{name}.jsonl", "sha256": hashlib.sha256(data).hexdigest(), "items": len(items)}
        entry["task_types"] = per_type
        if name != "default":
            entry["ids"] = [item["id"] for item in items]
        manifest["suites"][name] = entry
    for source, task_type, count, _ in PLAN:
        manifest["sources"][source] = {
            "task_type": task_type,
            "count": count,
            "license": SOURCES[source].license,
            "origin": SOURCES[source].origin,
            "inputs": built[source]["inputs"],
            "source_ids": [item["metadata"]["source_id"] for item in built[source]["items"]],
        }
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def build(shared: Path, out: Path) -> dict[str, Path]:
    """Build and write the suite files into ``out``; returns their paths."""
    built = build_sources(BuildContext(shared=shared, seed=SEED))
    default = [item for source, *_ in PLAN for item in built[source]["items"]]
    smoke_ids = select_smoke(built)
    smoke = [item for item in default if item["id"] in smoke_ids]
    suites = {"default": (default, jsonl_bytes(default)), "smoke": (smoke, jsonl_bytes(smoke))}
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (_, data) in suites.items():
        written[name] = out / f"{name}.jsonl"
        written[name].write_bytes(data)
    written["sources"] = out / "default.sources.json"
    written["sources"].write_bytes(sources_manifest(built, suites))
    return written


def validate(paths: dict[str, Path]) -> None:
    """Load the written suites with evalkit's own loader; raises on any problem."""
    sys.path.insert(0, str(HERE.parent))
    from evalkit.datasets import load_dataset

    for name in ("default", "smoke"):
        dataset = load_dataset(paths[name])
        counts = {t: sum(1 for item in dataset if item.task_type == t) for t in dataset.task_types}
        size = paths[name].stat().st_size
        print(f"{paths[name]}: {len(dataset)} items, {size / 1e6:.2f} MB, {counts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=HERE.parent.parent / "shared" / "data",
        help="folder holding the source data (default: <repo>/../shared/data)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where to write the suites (default: this folder)"
    )
    parser.add_argument("--no-validate", action="store_true", help="skip loading the output with evalkit")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        parser.error(f"source data folder not found: {args.shared}")
    paths = build(args.shared, args.out)
    if not args.no_validate:
        validate(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
