"""exact, normalized, alias, numeric, mcq and regex graders on real items and edge cases."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random

import pytest

from evalkit.errors import ConfigError
from evalkit.graders import grader_for

from .support import make_item, needs_shared, read_jsonl, shared_file, suite_items


async def grade(item, output):
    return await grader_for(item.grader).grade(item, output)


# --- numeric (GSM8K, LongChat lines) ---------------------------------------------------------


@pytest.mark.parametrize("source", ["gsm8k", "longchat_lines"])
async def test_numeric_gold_passes_and_off_by_one_fails_on_every_suite_item(source):
    for item in suite_items(source):
        right = await grade(item, f"Working through it step by step.\nAnswer: {item.reference}")
        wrong = await grade(item, f"Working through it step by step.\nAnswer: {item.reference + 1}")
        assert (right.passed, right.score) == (True, 1.0), (item.id, right.reason)
        assert (wrong.passed, wrong.score) == (False, 0.0), (item.id, wrong.reason)


@pytest.mark.parametrize(
    ("reference", "output"),
    [
        (1234.5, "The total comes to $1,234.50."),
        (1234.5, "Answer: $1,234.50"),
        (-3, "x was 7 earlier.\nThe answer is -3."),
        (-3, "Answer: \u22123"),
        (1000000, "#### 1,000,000"),
        (50, "So the answer is 50%."),
        (18, "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18"),
        (18, "The answer is 18. (I double-checked: 9 + 9 = 18.)"),
        (42, "**Answer:** 42"),
        (0.5, "Answer: 0.5"),
        (7, "Answer: 7 dollars"),
    ],
)
async def test_numeric_extracts_formatted_numbers(reference, output):
    item = make_item(reference, "numeric")
    result = await grade(item, output)
    assert result.passed, result.reason


async def test_numeric_prefers_the_marked_number_over_later_chatter():
    item = make_item(18, "numeric")
    assert (await grade(item, "The answer is 18.\nThat took me 3 tries.")).passed
    assert not (await grade(item, "Maybe 18?\nThe answer is 20, I think.")).passed


async def test_numeric_without_a_number_fails_with_reason():
    result = await grade(make_item(18, "numeric"), "I cannot solve this.")
    assert not result.passed and result.score == 0.0
    assert "no number" in result.reason


async def test_numeric_tolerance_is_absolute_with_float_slack_for_large_values():
    assert (await grade(make_item(1e15, "numeric"), "Answer: 1000000000000000.1")).passed
    assert not (await grade(make_item(1450000, "numeric"), "Answer: 1450001")).passed
    assert (await grade(make_item(1.5, "numeric"), "Answer: 1.5000001")).passed
    assert not (await grade(make_item(1.5, "numeric"), "Answer: 1.5001")).passed
    loose = make_item(1.5, {"type": "numeric", "tolerance": 0.01})
    assert (await grade(loose, "Answer: 1.5001")).passed


@needs_shared
async def test_numeric_agrees_with_every_gsm8k_example_solution_verdict():
    """5,276 real model solutions (4 GPT-3 systems x 1,319 questions) with their published is_correct."""
    gold = [row["answer"].split("####")[-1].strip() for row in read_jsonl(shared_file("gsm8k", "test.jsonl"))]
    rows = list(read_jsonl(shared_file("gsm8k", "example_model_solutions.jsonl.gz")))
    disagreements = []
    for reference, row in zip(gold, rows, strict=True):
        grader_item = make_item(float(reference.replace(",", "")), "numeric")
        for system in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            result = await grade(grader_item, row[system]["solution"])
            if result.passed != row[system]["is_correct"]:
                disagreements.append((row["question"][:40], system, result.reason))
    assert not disagreements, disagreements[:5]


@needs_shared
async def test_numeric_passes_gsm8k_reference_solutions_with_calculator_annotations():
    for row in read_jsonl(shared_file("gsm8k", "test.jsonl"), limit=200):
        reference = float(row["answer"].split("####")[-1].strip().replace(",", ""))
        assert (await grade(make_item(reference, "numeric"), row["answer"])).passed, row["answer"][-80:]


# --- exact / normalized (BBH) ----------------------------------------------------------------


async def test_exact_bbh_suite_items_pass_gold_and_fail_another_answer():
    targets = sorted({item.reference for item in suite_items("bbh")})
    for item in suite_items("bbh"):
        right = await grade(item, f"Let's think step by step.\nSo the answer is {item.reference}.")
        other = next(t for t in targets if t != item.reference)
        wrong = await grade(item, f"Let's think step by step.\nSo the answer is {other}.")
        assert right.passed, (item.id, right.reason)
        assert not wrong.passed, (item.id, other, wrong.reason)


@pytest.mark.parametrize(
    ("reference", "output", "passed"),
    [
        ("(B)", "So the answer is (B).", True),
        ("(B)", "So the answer is B.", True),
        ("(B)", "so the answer is **(B) 12/25/1937**.", True),
        ("(B)", "So the answer is (C).", False),
        ("(B)", "So the answer is:\n(B)", True),
        ("True", "So the answer is true", True),
        ("True", "So the answer is False.", False),
        ("-196", "So the answer is -196.", True),
        ("-196", "So the answer is 196.", False),
        ("No", "Reasoning...\nSo the answer is No. So the answer is Yes.", False),
        ("valid", "No marker here, but the last line is\nvalid", True),
    ],
)
async def test_exact_extraction_and_normalisation(reference, output, passed):
    item = make_item(reference, {"type": "exact", "answer_after": "So the answer is"})
    result = await grade(item, output)
    assert result.passed is passed, result.reason


async def test_exact_reports_a_missing_marker():
    item = make_item("True", {"type": "exact", "answer_after": "So the answer is"})
    result = await grade(item, "True")
    assert result.passed and result.details["marker_found"] is False
    assert result.details["marker_missing"] == "So the answer is"


@needs_shared
@pytest.mark.parametrize(
    "task",
    [
        "date_understanding",
        "boolean_expressions",
        "multistep_arithmetic_two",
        "dyck_languages",
        "word_sorting",
        "sports_understanding",
    ],
)
async def test_exact_on_bbh_source_examples(task):
    examples = json.loads(shared_file("bbh", f"{task}.json").read_text())["examples"][:25]
    targets = sorted({e["target"] for e in examples})
    for example in examples:
        item = make_item(
            example["target"], {"type": "exact", "answer_after": "So the answer is"}, prompt=example["input"]
        )
        assert (await grade(item, f"Step by step.\nSo the answer is {example['target']}.")).passed
        other = next((t for t in targets if t != example["target"]), example["target"] + " x")
        assert not (await grade(item, f"So the answer is {other}.")).passed, (example["target"], other)


async def test_normalized_ignores_punctuation_and_articles_but_not_words():
    item = make_item(["The Eiffel Tower"], "normalized")
    assert (await grade(item, "eiffel tower!")).passed
    assert not (await grade(item, "The Eiffel Tower in Paris")).passed


# --- alias (NQ-Open, lost-in-the-middle oracle) -------------------------------------------------


@pytest.mark.parametrize("source", ["nq_open", "nq_open_oracle"])
async def test_alias_gold_passes_and_another_items_answer_fails(source):
    items = suite_items(source)
    for index, item in enumerate(items):
        right = await grade(item, f"The answer is {item.reference[-1]}.")
        assert right.passed, (item.id, right.reason)
        other = items[(index + 1) % len(items)].reference[0]
        wrong = await grade(item, other)
        assert not wrong.passed, (item.id, other)


@pytest.mark.parametrize(
    ("aliases", "output", "passed"),
    [
        (["Rome"], "Rome", True),
        (["Rome"], "rome.", True),
        (["Rome"], "The Spanish Steps are in Rome, Italy.", True),
        (["Rome"], "Romeo", False),
        (["U.S."], "because of the weather", False),
        (["U.S."], "The US", True),
        (["14 December 1972 UTC", "December 1972"], "It was in December, 1972.", True),
        (["the Beatles"], "Beatles", True),
    ],
)
async def test_alias_normalisation_and_whole_word_containment(aliases, output, passed):
    result = await grade(make_item(aliases, "alias"), output)
    assert result.passed is passed, result.reason


async def test_alias_without_containment_needs_equality():
    item = make_item(["Rome"], {"type": "alias", "containment": False})
    assert (await grade(item, "Rome.")).passed
    assert (await grade(item, "Let me think.\nRome")).passed
    assert not (await grade(item, "The answer is Rome.")).passed


@needs_shared
async def test_alias_on_nq_open_dev_rows():
    rows = list(read_jsonl(shared_file("nq_open", "NQ-open.dev.jsonl"), limit=300))
    for index, row in enumerate(rows):
        item = make_item(row["answer"], "alias", prompt=row["question"])
        assert (await grade(item, row["answer"][0])).passed
        other = rows[(index + 7) % len(rows)]["answer"][0]
        if not any(
            alias.lower() in other.lower() or other.lower() in alias.lower() for alias in row["answer"]
        ):
            assert not (await grade(item, other)).passed, (row["answer"], other)


# --- mcq (MMLU) --------------------------------------------------------------------------------


async def test_mcq_suite_items_pass_gold_and_fail_other_letters():
    for item in suite_items("mmlu"):
        wrong_letter = next(c for c in "ABCD" if c != item.reference)
        for output in (item.reference, f"The answer is ({item.reference}).", f"Answer: {item.reference}"):
            assert (await grade(item, output)).passed, (item.id, output)
        assert not (await grade(item, f"The answer is ({wrong_letter}).")).passed


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("C", "C"),
        ("(C)", "C"),
        ("c)", "C"),
        ("(c)", "C"),
        ("**C**", "C"),
        ("C. Paris", "C"),
        ("I'm fairly sure: the correct answer is option C, because...", "C"),
        ("Not (A) - the answer is (C).", "C"),
        ("Between (A) and (C) I am unsure.", None),
        ("A vitamin deficiency.", None),
        ("The answer is a tricky one.", None),
        ("Answer: E", None),
    ],
)
async def test_mcq_extraction_rules(output, letter):
    item = make_item("C", {"type": "mcq", "choices": ["A", "B", "C", "D"]})
    result = await grade(item, output)
    assert result.passed is (letter == "C"), result.reason
    assert (result.details or {}).get("extracted") == letter


@needs_shared
async def test_mcq_on_mmlu_source_rows():
    with gzip.open(shared_file("mmlu", "mmlu_test.csv.gz"), "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    for row in random.Random(5).sample(rows, 100):
        item = make_item(
            row["answer"], {"type": "mcq", "choices": ["A", "B", "C", "D"]}, prompt=row["question"]
        )
        assert (await grade(item, f"{row['answer']}. {row[row['answer']]}")).passed
        wrong = next(c for c in "ABCD" if c != row["answer"])
        assert not (await grade(item, f"The answer is {wrong}.")).passed


# --- regex -------------------------------------------------------------------------------------


async def test_regex_search_with_flags():
    item = make_item("x", {"type": "regex", "pattern": r"^answer: \d+$", "flags": "im"})
    assert (await grade(item, "Thinking...\nANSWER: 42")).passed
    assert not (await grade(item, "Thinking...\nANSWER: forty-two")).passed
    named = make_item("x", {"type": "regex", "pattern": "hello.world", "flags": ["DOTALL"]})
    assert (await grade(named, "hello\nworld")).details["matched"] == "hello\nworld"


def test_regex_unknown_flag_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown regex flag"):
        grader_for({"type": "regex", "pattern": "x", "flags": "IGNORECASEQ"})
