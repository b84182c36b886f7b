"""default_fleet.yaml's numbers, recomputed from the data FLEET.md says they come from.

FLEET.md ("Where the default numbers come from") derives every skill, price and answer length of
the built-in fleet from published data: RouteLLM, FrugalGPT and WildBench in ``shared/data``,
list prices in the ``genai-prices`` package, recorded headers and usage in ``shared/wire``. This
test reads those sources (read-only, from ``../shared`` via :func:`tests.shared.shared_path`;
nothing is copied into the package), recomputes each number the way FLEET.md describes, and
compares it with the number *as printed* in the YAML: equal within half a unit of its last printed
digit (0.0005 for a skill printed as 0.857), so editing any number by one unit in its last place
fails. The printed precision itself is pinned (a skill has three decimals), so a number cannot
escape the check by being written coarser.

The chain FLEET.md documents is followed literally: a WildBench-ratio skill is sim-large's skill
*as printed in the YAML* times the WildBench ratio (exact scores from the JSON); ``default`` is the
mean of the model's six printed skills; sim-reasoner's non-oracle skills are sim-large's.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalkit.emulator import default_fleet
from tests.shared import REPO, shared_path

from .helpers import WIRE_DIR, recorded

FLEET_FILE = REPO / "evalkit" / "emulator" / "default_fleet.yaml"
DATA = shared_path("data", must_contain=("routellm", "frugalgpt", "wildbench", "mt_bench"))

pytestmark = pytest.mark.skipif(DATA is None, reason="shared/data (RouteLLM, FrugalGPT, WildBench) not found")

GPT4 = "gpt-4-1106-preview"                     # RouteLLM's strong model (sim-large's anchor)
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"  # RouteLLM's weak model (sim-medium's anchor)
WB_REFERENCE = "gpt-4-turbo-2024-04-09"          # the WildBench ratio's denominator
CLASSIFICATION_TASKS = ("AGNEWS", "HEADLINES", "OVERRULING")
SIX = ("factual_qa", "math", "code", "creative", "long_document", "classification")
WB_CATEGORY = {  # FLEET.md: the WildBench category each task type borrows
    "math": "Math & Data Analysis", "code": "Coding & Debugging", "creative": "Creative Tasks",
    "long_document": "Information/Advice seeking", "factual_qa": "Information/Advice seeking",
    "classification": "Planning & Reasoning",
}
WB_CAP = Fraction("0.99")
SKILL_DECIMALS = 3
STRINGS = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar as printed; libyaml's is 20x faster
# The anchor of each simulated model in WildBench (answer lengths, ratios) and in genai-prices.
WB_ANCHOR = {"sim-large": WB_REFERENCE, "sim-medium": "Mixtral-8x7B-Instruct-v0.1",
             "sim-small": "claude-3-haiku-20240307", "sim-fast": "gemini-1.5-flash",
             "sim-long": "gemini-1.5-pro", "sim-reasoner": WB_REFERENCE}  # o3-mini has no WildBench row
PRICE_ANCHOR = {"sim-large": ("openai", "gpt-4-turbo"), "sim-medium": ("mistral", "mixtral-8x7b"),
                "sim-small": ("anthropic", "claude-3-haiku"), "sim-fast": ("google", "gemini-1.5-flash"),
                "sim-reasoner": ("openai", "o3-mini"), "sim-long": ("google", "gemini-1.5-pro")}


# ---- the sources, read once ---------------------------------------------------------------------

def _data(*parts: str) -> Path:
    assert DATA is not None
    return DATA.joinpath(*parts)


@cache
def routellm_accuracy(benchmark: str) -> dict[str, Any]:
    """Share right of GPT-4, Mixtral and the oracle, all rows (not decontaminated, as RouteLLM's README)."""
    files = sorted(_data("routellm", "mmlu", "responses").glob("*.csv.gz")) if benchmark == "mmlu" \
        else [_data("routellm", "gsm8k", "gsm8k_responses.csv.gz")]
    rows = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            rows += [(row[GPT4] == "True", row[MIXTRAL] == "True") for row in csv.DictReader(handle)]
    return {GPT4: share(g for g, _ in rows), MIXTRAL: share(m for _, m in rows),
            "oracle": share(g or m for g, m in rows), "rows": len(rows)}


@cache
def mt_bench_means() -> dict[tuple[str, str], Fraction]:
    """GPT-4's 1-10 judge score per (model, MT-Bench category), mean over 10 questions x 2 turns."""
    category = {}
    for line in _data("mt_bench", "question.jsonl").read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        category[question["question_id"]] = question["category"]
    scores: dict[tuple[str, str], list[Fraction]] = {}
    with gzip.open(_data("routellm", "mt_bench", "judgements.jsonl.gz"), "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            scores.setdefault((row["model"], category[row["question_id"]]), []).append(Fraction(row["score"]))
    assert all(len(s) == 20 and min(s) >= 1 for s in scores.values())  # no -1 (failed) judgments here
    return {key: mean(values) for key, values in scores.items()}


@cache
def frugalgpt_accuracy(task: str, model: str) -> Fraction:
    """FrugalGPT's published test accuracy of one model on one task (its summary CSV)."""
    (path,) = _data("frugalgpt", "summary").glob(f"summary_{task}_*_full_2024.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        (row,) = [r for r in csv.DictReader(handle) if r["Method"] == model]
    return Fraction(row["Test_acc"])  # the printed decimal, exactly


@cache
def wildbench() -> dict[str, dict[str, Any]]:
    return json.loads(_data("wildbench", "all_stat_wildbench.-1.json").read_text(encoding="utf-8"))


def share(flags: Iterator[bool]) -> Fraction:
    values = list(flags)
    return Fraction(sum(values), len(values))


def mean(values: Iterator[Fraction]) -> Fraction:
    numbers = list(values)
    return sum(numbers, Fraction(0)) / len(numbers)


def mt(model: str, category: str) -> Fraction:
    return mt_bench_means()[(model, category)]


def classification_mean(model: str) -> Fraction:
    return mean(frugalgpt_accuracy(task, model) for task in CLASSIFICATION_TASKS)


# ---- FLEET.md's derivations ---------------------------------------------------------------------

@dataclass(frozen=True)
class Derived:
    """A number FLEET.md derives, and how (for the failure message)."""

    value: Fraction
    how: str


@cache
def anchored_skills() -> dict[str, dict[str, Derived]]:
    """sim-large and sim-medium: RouteLLM accuracies, MT-Bench judge scores / 10, FrugalGPT."""
    mmlu, gsm8k = routellm_accuracy("mmlu"), routellm_accuracy("gsm8k")
    out = {}
    for name, model, frugal in (("sim-large", GPT4, "gpt-4-turbo"),
                                ("sim-medium", MIXTRAL, "Meta-Llama-3-70B-Instruct-Turbo")):
        out[name] = {
            "factual_qa": Derived(mmlu[model], f"RouteLLM MMLU accuracy of {model}"),
            "math": Derived(gsm8k[model], f"RouteLLM GSM8K accuracy of {model}"),
            "code": Derived(mt(model, "coding") / 10, "MT-Bench coding judge score / 10"),
            "creative": Derived((mt(model, "writing") + mt(model, "roleplay")) / 20,
                                "MT-Bench (writing + roleplay) judge scores / 20"),
            "long_document": Derived(mt(model, "extraction") / 10, "MT-Bench extraction judge score / 10"),
            "classification": Derived(classification_mean(frugal), f"FrugalGPT {frugal}: mean of "
                                      + ", ".join(CLASSIFICATION_TASKS)),
        }
    return out


def ratio_skill(printed: dict[str, Any], model: str, task: str) -> Derived:
    """sim-large's printed skill times the anchor's WildBench category score over gpt-4-turbo's, capped."""
    category = WB_CATEGORY[task]
    key = f"WB_score.{category}"
    ratio = Fraction(wildbench()[WB_ANCHOR[model]][key]) / Fraction(wildbench()[WB_REFERENCE][key])
    large = printed["sim-large"]["skills"][task]
    how = f"sim-large {large} x WildBench '{category}' ratio {float(ratio):.4f}"
    return Derived(min(WB_CAP, Fraction(large) * ratio), how)


def skill_derivations(printed: dict[str, Any]) -> dict[str, dict[str, Derived]]:
    """Every model's six skills as FLEET.md derives them (sim-large's printed values feed the ratios)."""
    out = dict(anchored_skills())  # a copy: the cached one stays as derived
    out["sim-small"] = {task: ratio_skill(printed, "sim-small", task) for task in SIX}
    for name, frugal in (("sim-fast", "gemini-1.5-flash"), ("sim-long", "gemini-1.5-pro")):
        out[name] = {task: ratio_skill(printed, name, task) for task in SIX}
        out[name]["factual_qa"] = Derived(frugalgpt_accuracy("SCIQ", frugal), f"FrugalGPT SCIQ of {frugal}")
        out[name]["classification"] = Derived(classification_mean(frugal), f"FrugalGPT {frugal}: mean of "
                                              + ", ".join(CLASSIFICATION_TASKS))
    large = printed["sim-large"]["skills"]
    out["sim-reasoner"] = {task: Derived(Fraction(large[task]), "sim-large's skill") for task in SIX}
    for task, benchmark in (("factual_qa", "mmlu"), ("math", "gsm8k")):
        oracle = routellm_accuracy(benchmark)["oracle"]
        out["sim-reasoner"][task] = Derived(oracle, f"RouteLLM {benchmark} two-model oracle")
    return out


@cache
def price_derivations() -> dict[str, dict[str, Decimal]]:
    """List prices (USD per 1M tokens, base tier) of each anchor in genai-prices; no cache price: input."""
    from genai_prices import data as prices_data

    def base(price: Any) -> Decimal:
        return getattr(price, "base", price)  # a tiered price's first tier (Gemini: prompts up to 128k)

    listed = {(p.id, m.id): m.prices for p in prices_data.providers for m in p.models}
    out = {}
    for name, anchor in PRICE_ANCHOR.items():
        price = listed[anchor]
        out[name] = {"input": base(price.input_mtok), "output": base(price.output_mtok),
                     "cached_input": base(price.cache_read_mtok or price.input_mtok)}
    return out


# ---- the check ----------------------------------------------------------------------------------

def printed_fleet(text: str) -> dict[str, dict[str, Any]]:
    """The fleet's models by name with every scalar as the string printed in the file."""
    document = yaml.load(text, Loader=STRINGS)  # a BaseLoader: strings only, no objects
    return {model["name"]: model for model in document["models"]}


def decimals(printed: str) -> int:
    return len(printed.partition(".")[2])


def close(printed: str, value: Fraction) -> bool:
    """Equal within half a unit of the last printed digit (an exact tie may round either way)."""
    return abs(Fraction(printed) - value) <= Fraction(1, 2 * 10 ** decimals(printed))


def mismatches(text: str) -> list[str]:
    """Every number of the fleet text that differs from its derivation, as ``model.field: why``."""
    fleet, problems = printed_fleet(text), []
    derived = skill_derivations(fleet)
    for name, skills in derived.items():
        printed = fleet[name]["skills"]
        six = {task: printed[task] for task in SIX}
        average = Derived(mean(Fraction(s) for s in six.values()), "mean of the six printed skills")
        expected = {**skills, "default": average}
        for task, want in expected.items():
            got = printed[task]
            if decimals(got) != SKILL_DECIMALS:
                problems.append(f"{name}.skills.{task}: printed {got}, not with {SKILL_DECIMALS} decimals")
            elif not close(got, want.value):
                problems.append(f"{name}.skills.{task}: {got} != {float(want.value):.5f} ({want.how})")
    for name, price in price_derivations().items():
        for field, want in price.items():
            if Decimal(fleet[name]["price"][field]) != want:
                problems.append(f"{name}.price.{field}: {fleet[name]['price'][field]} != genai-prices {want}")
    for name, anchor in WB_ANCHOR.items():
        got, chars = fleet[name]["output_tokens"]["median"], wildbench()[anchor]["Length"]
        if not close(got, Fraction(chars) / 4):
            problems.append(f"{name}.output_tokens.median: {got} != WildBench {anchor} {chars:.0f} chars / 4")
    return problems


NUMBER_LINES = (  # where FLEET.md's traced numbers sit in the YAML, by (?P<field name>value)
    r"^\s+(?P<skills_task>" + "|".join((*SIX, "default")) + r"): (?P<skill>[0-9.]+)",
    (r"^\s+price: \{input: (?P<input>[0-9.]+), cached_input: (?P<cached_input>[0-9.]+), "
     r"output: (?P<output>[0-9.]+)\}"),
    r"^\s+output_tokens: \{median: (?P<output_tokens>[0-9]+)",
)


def number_sites(text: str) -> Iterator[tuple[str, int, int]]:
    """``(model.field, start, end)`` of each traced number in the text: skills, prices, answer lengths."""
    model = None
    for line in re.finditer(r"^.*$", text, flags=re.MULTILINE):
        if name := re.match(r"\s*- name: (\S+)", line.group(0)):
            model = name.group(1)
        for pattern in NUMBER_LINES:
            if found := re.match(pattern, line.group(0)):
                for field in found.groupdict():
                    if field != "skills_task":
                        label = found["skills_task"] if field == "skill" else field
                        offset = line.start()
                        yield f"{model}.{label}", offset + found.start(field), offset + found.end(field)


def bump(number: str, step: int) -> str:
    """``number`` moved by ``step`` units of its last printed digit, printed the same way."""
    places = decimals(number)
    value = Decimal(number) + Decimal(step).scaleb(-places)
    return f"{value:.{places}f}"


# ---- the tests ----------------------------------------------------------------------------------

def test_the_data_readers_reproduce_the_figures_the_data_readmes_print() -> None:
    # routellm/README.md: MMLU 80.58 / 68.08 %, oracle 85.86 % (14,042 rows); GSM8K 85.67 / 63.84 %.
    # Without this, a reader that silently read nothing useful could make every comparison below vacuous.
    mmlu, gsm8k = routellm_accuracy("mmlu"), routellm_accuracy("gsm8k")
    assert (mmlu["rows"], gsm8k["rows"]) == (14_042, 1_319)
    assert [round(float(100 * mmlu[k]), 2) for k in (GPT4, MIXTRAL, "oracle")] == [80.58, 68.08, 85.86]
    assert [round(float(100 * gsm8k[k]), 2) for k in (GPT4, MIXTRAL)] == [85.67, 63.84]
    # routellm/README.md: MT-Bench mean of the 160 turn scores, GPT-4-1106 9.228, Mixtral 8.341.
    for model, overall in ((GPT4, 9.228), (MIXTRAL, 8.341)):
        assert round(float(mean(v for (m, _), v in mt_bench_means().items() if m == model)), 3) == overall


def test_every_number_of_the_default_fleet_matches_its_derivation() -> None:
    assert mismatches(FLEET_FILE.read_text(encoding="utf-8")) == []


def test_every_skill_price_and_answer_length_has_a_derivation() -> None:
    # A model or task type added to the YAML without a derivation here (and in FLEET.md) fails.
    fleet = printed_fleet(FLEET_FILE.read_text(encoding="utf-8"))
    derived = skill_derivations(fleet)
    assert set(fleet) == set(derived) == set(PRICE_ANCHOR) == set(WB_ANCHOR)
    for name, model in fleet.items():
        assert set(model["skills"]) == set(derived[name]) | {"default"}, name


def test_a_one_unit_edit_of_any_traced_number_is_caught() -> None:
    text = FLEET_FILE.read_text(encoding="utf-8")
    assert mismatches(text) == []  # else every edit "fails" and this test proves nothing
    sites = list(number_sites(text))
    assert len(sites) == 6 * 7 + 6 * 3 + 6  # skills, prices and answer lengths of six models
    missed = []
    for label, start, end in sites:
        for step in (-1, 1):
            edited = text[:start] + bump(text[start:end], step) + text[end:]
            if not mismatches(edited):
                missed.append(f"{label} -> {bump(text[start:end], step)}")
    # The only edits within half a unit are the other rounding of an exact tie (FLEET.md names them):
    # sim-medium creative (9.55 + 9.50) / 20 = 0.9525, sim-medium default 4.617 / 6 = 0.7695,
    # sim-reasoner default 5.475 / 6 = 0.9125.
    assert missed == ["sim-medium.creative -> 0.952", "sim-medium.default -> 0.770",
                      "sim-reasoner.default -> 0.913"]


def test_a_skill_written_coarser_is_caught() -> None:
    # 0.857 -> 0.86 is within half a unit of the *new* last digit; the pinned precision still catches it.
    text = FLEET_FILE.read_text(encoding="utf-8").replace("      math: 0.857 ", "      math: 0.86  ", 1)
    assert any(p.startswith("sim-large.skills.math: printed 0.86") for p in mismatches(text))


def test_the_emulator_serves_the_numbers_checked_here() -> None:
    printed = printed_fleet(FLEET_FILE.read_text(encoding="utf-8"))
    for spec in default_fleet():
        model = printed[spec.name]
        assert dict(spec.skills) == {task: float(p) for task, p in model["skills"].items()}, spec.name
        assert (spec.price.input, spec.price.cached_input, spec.price.output) == tuple(
            Decimal(model["price"][field]) for field in ("input", "cached_input", "output")), spec.name
        assert spec.output_tokens.median == float(model["output_tokens"]["median"]), spec.name


@pytest.mark.skipif(not WIRE_DIR.is_dir(), reason=f"recorded traffic not found at {WIRE_DIR}")
def test_request_budget_and_reasoning_tokens_come_from_the_recordings() -> None:
    text = FLEET_FILE.read_text(encoding="utf-8")
    limits = yaml.load(text, Loader=STRINGS)["defaults"]["rate_limits"]
    ((_, _, headers, _),) = recorded("openai/test_chat.yaml")
    assert limits["requests_per_minute"] == headers["x-ratelimit-limit-requests"][0] == "10000"
    # tokens_per_minute is not traced, and FLEET.md says so (this recording's token budget is 200,000).

    def reasoning(cassette: str) -> int:
        """The reasoning tokens of the cassette's one successful call (the others are recorded 4xx)."""
        ((body,),) = [(body,) for _, status, _, body in recorded(cassette) if status == 200]
        return int(json.loads(body)["usage"]["completion_tokens_details"]["reasoning_tokens"])

    o3_mini = reasoning("openai/test_max_completion_tokens[o3-mini].yaml")
    gpt5_nano = reasoning("azure-openai/test_chat_reasoning.yaml")
    assert (o3_mini, gpt5_nano) == (64, 192)
    median = printed_fleet(text)["sim-reasoner"]["reasoning_tokens"]["median"]
    assert float(median) == (o3_mini + gpt5_nano) / 2
