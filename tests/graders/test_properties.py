"""Property tests: extractors give back what was written; scores stay in [0, 1] whatever the output."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evalkit.graders import extract_choice, extract_number, grader_for, squad_normalize

from .support import make_item

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

chatter = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


def no_marker(text: str) -> bool:
    lowered = text.casefold()
    return "answer" not in lowered and "####" not in text


numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(Decimal),
    st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
)


def render(number: Decimal, style: str) -> str:
    if style == "commas":
        return f"{number:,}"
    if style == "dollars":
        return f"-${abs(number):,}" if number < 0 else f"${number:,}"
    return str(number)


@PROPERTY_SETTINGS
@given(number=numbers, style=st.sampled_from(["plain", "commas", "dollars"]), before=chatter, after=chatter)
def test_a_number_after_the_answer_is_extracted_exactly(number, style, before, after):
    assume(no_marker(after))
    text = f"{before}\nThe answer is {render(number, style)}. {after}"
    value, rule = extract_number(text)
    assert value == float(str(number)), (text, rule)
    assert rule == "after 'answer is'"


@PROPERTY_SETTINGS
@given(number=numbers, before=chatter)
def test_a_number_on_the_final_answer_line_is_extracted(number, before):
    assert extract_number(f"{before}\nAnswer: {number}")[0] == float(str(number))


letters = st.sampled_from("ABCD")


@PROPERTY_SETTINGS
@given(
    letter=letters,
    form=st.sampled_from(["The answer is ({}).", "Answer: {}", "the answer is {}"]),
    before=chatter,
    after=chatter,
)
def test_a_marked_letter_is_extracted(letter, form, before, after):
    assume(no_marker(after))
    text = f"{before}\n{form.format(letter)}\n{after}"
    assert extract_choice(text, "ABCD") == (letter, "marker")


@PROPERTY_SETTINGS
@given(text=st.text(max_size=60))
def test_squad_normalisation_is_idempotent(text):
    once = squad_normalize(text)
    assert squad_normalize(once) == once


@PROPERTY_SETTINGS
@given(alias=st.text(st.characters(codec="ascii", categories=("L", "N", "P", "Zs")), min_size=1, max_size=30))
def test_an_alias_stated_in_a_sentence_passes(alias):
    assume(squad_normalize(alias))
    result = asyncio.run(grader_for("alias").grade(make_item([alias], "alias"), f"The answer is {alias}."))
    assert result.passed, (alias, result.reason)


SPECS = [
    ("numeric", 18),
    ("mcq", "B"),
    ("alias", ["Rome", "Roma"]),
    ({"type": "exact", "answer_after": "So the answer is"}, "(B)"),
    (
        {"type": "label", "labels": ["card_arrival", "exchange_rate", "card_payment_wrong_exchange_rate"]},
        "exchange_rate",
    ),
    ("slot_f1", {"people": "4", "time": "7 pm"}),
    ("json", {"a": 1}),
    ({"type": "regex", "pattern": r"\d+"}, "x"),
]


@PROPERTY_SETTINGS
@given(
    output=st.one_of(
        chatter,
        st.builds(json.dumps, st.dictionaries(st.sampled_from(["people", "time", "a"]), st.text(max_size=8))),
    )
)
def test_every_score_is_in_the_unit_interval_and_pass_means_full_marks(output):
    async def grade_all():
        return [await grader_for(spec).grade(make_item(ref, spec), output) for spec, ref in SPECS]

    for result in asyncio.run(grade_all()):
        assert 0.0 <= result.score <= 1.0
        assert not result.passed or result.score == 1.0
        assert result.reason and "\n" not in result.reason
