"""label (BANKING77) and slot_f1 (Restaurant-8k) graders on real items and edge cases."""

from __future__ import annotations

import csv
import gzip
import json
import random

import pytest

from evalkit.graders import grader_for, slot_f1

from .support import make_item, needs_shared, shared_file, suite_items


async def grade(item, output):
    return await grader_for(item.grader).grade(item, output)


# --- label -------------------------------------------------------------------------------------


async def test_label_suite_items_pass_gold_and_fail_another_label():
    for item in suite_items("banking77"):
        labels = list(item.grader["labels"])
        other = labels[(labels.index(item.reference) + 1) % len(labels)]
        assert (await grade(item, item.reference)).passed, item.id
        assert (await grade(item, f"Intent: `{item.reference}`.")).passed, item.id
        result = await grade(item, other)
        assert not result.passed and result.details["extracted"] == other


@pytest.mark.parametrize(
    ("output", "passed", "reason_part"),
    [
        ("card_payment_wrong_exchange_rate", True, "whole output"),
        ("Card payment wrong exchange rate.", True, "whole output"),
        ("The customer is asking about card_payment_wrong_exchange_rate, I believe.", True, "mentioned"),
        ("Label: **card_payment_wrong_exchange_rate**", True, "mentioned"),
        ("exchange_rate", False, "is not"),
        ("Either exchange_rate or card_payment_wrong_exchange_rate.", False, "ambiguous"),
        ("I am not sure what this is about.", False, "no label found"),
    ],
)
async def test_label_longest_mention_wins_and_two_labels_are_ambiguous(output, passed, reason_part):
    labels = ["exchange_rate", "card_payment_wrong_exchange_rate", "card_arrival"]
    item = make_item("card_payment_wrong_exchange_rate", {"type": "label", "labels": labels})
    result = await grade(item, output)
    assert result.passed is passed
    assert reason_part in result.reason


@needs_shared
async def test_label_on_banking77_test_rows():
    labels = json.loads(shared_file("banking77", "categories.json").read_text())
    with shared_file("banking77", "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = random.Random(77).sample(list(csv.DictReader(handle)), 200)
    for row in rows:
        item = make_item(row["category"], {"type": "label", "labels": labels}, prompt=row["text"])
        assert (await grade(item, f"The intent is {row['category']}.")).passed, row["category"]
        wrong = random.Random(row["text"]).choice([label for label in labels if label != row["category"]])
        assert not (await grade(item, wrong)).passed


# --- slot_f1 -----------------------------------------------------------------------------------


async def test_slot_f1_suite_items_pass_gold_and_score_a_dropped_slot_below_one():
    for item in suite_items("restaurant8k"):
        gold = json.dumps(item.reference)
        assert (await grade(item, gold)).passed, item.id
        assert (await grade(item, f"Sure! Here you go:\n```json\n{gold}\n```\nAnything else?")).passed
        reduced = dict(list(item.reference.items())[1:]) if len(item.reference) > 1 else {"time": "7 pm"}
        result = await grade(item, json.dumps(reduced))
        assert not result.passed and 0.0 <= result.score < 1.0, item.id


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ('{"time": "7 PM", "people": "4 adults and 2 children"}', 1.0),
        ('{"people": "4 Adults and 2 children.", "time": "7 pm"} -- hope that helps', 1.0),
        ('{"time": "7 PM"}', 2 / 3),
        ('{"time": "7 PM", "people": "6", "date": "today"}', 0.4),
        ('{"time": "7 PM", "people": "4 adults and 2 children", "date": null}', 1.0),
        ("{}", 0.0),
        ("no idea", 0.0),
    ],
)
async def test_slot_f1_scores(output, score):
    item = make_item({"people": "4 adults and 2 children", "time": "7 PM"}, "slot_f1")
    result = await grade(item, output)
    assert result.score == pytest.approx(score)
    assert result.passed is (score == 1.0)


async def test_slot_f1_empty_reference_and_empty_object_is_perfect():
    item = make_item({}, "slot_f1")
    assert (await grade(item, "{}")).passed
    assert not (await grade(item, '{"time": "8"}')).passed
    assert slot_f1({}, {}) == (1.0, 1.0, 1.0)


@needs_shared
async def test_slot_f1_on_restaurant8k_test_rows():
    with gzip.open(shared_file("restaurant8k", "test.json.gz"), "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    for row in rows[:300]:
        text = row["userInput"]["text"]
        slots = {}
        for label in row.get("labels", []):
            span = label["valueSpan"]
            slots[label["slot"]] = text[span.get("startIndex", 0) : span["endIndex"]]
        item = make_item(slots, "slot_f1", prompt=text)
        assert (await grade(item, json.dumps(slots))).passed, (text, slots)
        if slots:
            assert not (await grade(item, "{}")).passed
