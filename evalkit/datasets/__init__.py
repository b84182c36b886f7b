"""Prompt datasets: the item schema, the validating loader and the bundled suites.

A dataset file (JSONL, CSV or Parquet) holds one item per row::

    {"id": "gsm8k-12", "task_type": "math",
     "prompt": "Solve ... Answer: <number>",        # or "messages": [{"role": ..., "content": ...}]
     "reference": 18,                                # gold answer; null only for judge-graded items
     "grader": "numeric",                            # or {"type": "label", "labels": [...]}
     "metadata": {"source": "gsm8k", "source_id": 12}}

``load_dataset("default")`` loads a bundled suite, ``load_dataset("my.csv")`` a
file. Loading is all or nothing: every problem in the file is reported in one
:class:`DatasetError` (a :class:`~evalkit.errors.ConfigError`).
"""

from ._bundled import bundled_suite_path, bundled_suites
from ._graders import GRADER_TYPES, JUDGE_MODES, parse_grader
from ._loader import load_dataset
from ._model import Dataset, Item
from ._problems import DatasetError, Problem
from ._rows import ITEM_FIELDS, MESSAGE_ROLES

__all__ = [
    "GRADER_TYPES",
    "ITEM_FIELDS",
    "JUDGE_MODES",
    "MESSAGE_ROLES",
    "Dataset",
    "DatasetError",
    "Item",
    "Problem",
    "bundled_suite_path",
    "bundled_suites",
    "load_dataset",
    "parse_grader",
]
