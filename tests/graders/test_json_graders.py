"""json and json_schema graders: fences, trailing text, reference equality, schema violations."""

from __future__ import annotations

import json
import sys

import pytest

from evalkit.errors import ConfigError
from evalkit.graders import grader_for

from .support import make_item, suite_items

SCHEMA = {
    "type": "object",
    "properties": {"people": {"type": "integer", "minimum": 1}, "time": {"type": "string"}},
    "required": ["people"],
    "additionalProperties": False,
}


async def grade(item, output):
    return await grader_for(item.grader).grade(item, output)


@pytest.mark.parametrize(
    ("output", "passed", "reason_part"),
    [
        ('{"a": [1, 2], "b": null}', True, "equal"),
        ('```json\n{"b": null, "a": [1, 2.0]}\n```', True, "equal"),
        ('  {"a": [1, 2], "b": null}\n', True, "equal"),
        ('{"a": [1, 2], "b": null} I hope this helps!', False, "not valid JSON"),
        ('{"a": [1, 2]', False, "not valid JSON"),
        ('{"a": [1, 3], "b": null}', False, "not equal"),
        ("", False, "empty"),
    ],
)
async def test_json_validity_and_reference_equality(output, passed, reason_part):
    result = await grade(make_item({"a": [1, 2], "b": None}, "json"), output)
    assert result.passed is passed
    assert reason_part in result.reason


async def test_json_lenient_mode_takes_the_first_value_and_ignores_trailing_text():
    item = make_item({"a": 1}, {"type": "json", "strict": False})
    assert (await grade(item, 'Here it is: {"a": 1} -- done')).passed
    validity_only = make_item({"a": 1}, {"type": "json", "compare": False})
    assert (await grade(validity_only, '{"something": "else"}')).passed


async def test_json_on_real_slot_references():
    for item in suite_items("restaurant8k")[:10]:
        as_json = make_item(item.reference, "json")
        assert (await grade(as_json, json.dumps(item.reference, indent=2))).passed
        assert not (await grade(as_json, json.dumps(item.reference)[:-1])).passed


async def test_json_schema_valid_and_invalid_outputs():
    pytest.importorskip("jsonschema")
    item = make_item(None, {"type": "json_schema", "schema": SCHEMA})
    assert (await grade(item, '```json\n{"people": 4, "time": "7 pm"}\n```')).passed
    missing = await grade(item, '{"time": "7 pm"}')
    assert not missing.passed and "'people' is a required property" in missing.reason
    wrong_type = await grade(item, '{"people": "four"}')
    assert not wrong_type.passed and "people" in wrong_type.reason
    extra = await grade(item, '{"people": 2, "date": "today"}')
    assert not extra.passed and extra.details["errors"]
    assert "not valid JSON" in (await grade(item, "people: 4")).reason


def test_json_schema_rejects_an_invalid_schema_when_built():
    pytest.importorskip("jsonschema")
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        grader_for({"type": "json_schema", "schema": {"type": "no-such-type"}})


def test_json_schema_without_jsonschema_installed_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes `import jsonschema` fail
    with pytest.raises(ConfigError, match="pip install jsonschema"):
        grader_for({"type": "json_schema", "schema": SCHEMA})
