"""Field types are read as each server's type system reads them.

The lax reading (Anthropic, FastAPI servers) must be pydantic v2's, error type and message included:
it is checked against pydantic itself on generated values.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.emulator._field_types import OPENAI_CHAT, Field, check_fields


class _Typed(pydantic.BaseModel):
    integer: Optional[int] = None  # noqa: UP045 - as FastAPI servers declare their fields
    number: Optional[float] = None  # noqa: UP045
    boolean: Optional[bool] = None  # noqa: UP045
    string: Optional[str] = None  # noqa: UP045
    strings: Optional[list[str]] = None  # noqa: UP045
    stop: Optional[Union[str, list[str]]] = None  # noqa: UP007, UP045


SCHEMA = {"integer": Field("integer"), "number": Field("number"), "boolean": Field("boolean"),
          "string": Field("string"), "strings": Field("array", items=Field("string")), "stop": OPENAI_CHAT["stop"]}

NUMERIC_TEXT = st.sampled_from(["1", " 7 ", "-3", "+5", "1.0", "1.", "1.00", "1.5", "1e3", "1_000", "inf", "nan",
                                "0x10", "", "true", "yes", "off", "T", "On", "abc", "2"])
SCALARS = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), NUMERIC_TEXT, st.text(max_size=5))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMA)), value=VALUES)
def test_the_lax_reading_is_pydantics(name: str, value: Any) -> None:
    try:
        expected_value, expected = getattr(_Typed(**{name: value}), name), []
    except pydantic.ValidationError as exc:
        expected_value = None
        expected = [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    body, problems = check_fields({name: value}, SCHEMA, "pydantic")
    assert [(p.error, p.path, p.message) for p in problems] == expected
    if not expected:
        assert body[name] == expected_value or body[name] != body[name] and expected_value != expected_value  # NaN


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(3, True), ("3", True), (3.0, True), (3.5, False), ("abc", False), (True, False), (2**31, False), ([3], False)],
)
def test_protobuf_json_reads_int32_from_numbers_and_numeric_strings(value: Any, accepted: bool) -> None:
    body, problems = check_fields({"generationConfig": {"maxOutputTokens": value}},
                                  {"generationConfig": Field("object", members={"maxOutputTokens": Field("integer")})},
                                  "proto3")
    assert (not problems) is accepted
    if accepted:
        assert body["generationConfig"]["maxOutputTokens"] == 3
    else:
        assert problems[0].path == ("generation_config", "max_output_tokens")


def test_the_strict_reading_takes_no_conversions() -> None:
    _, problems = check_fields({"max_tokens": "5", "temperature": 1, "stream": 1, "model": None}, OPENAI_CHAT,
                               "strict", required=("model",))
    assert [(p.path, p.error) for p in problems] == [(("model",), "missing"), (("max_tokens",), "int_type"),
                                                      (("stream",), "bool_type")]
