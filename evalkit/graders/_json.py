"""JSON graders: the output is valid JSON (optionally equal to the reference), or valid against a schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import Grade, short
from ._text import json_document

if TYPE_CHECKING:
    from ..datasets import Item

__all__ = ["JSONGrader", "JSONSchemaGrader", "parse_json_output"]


def parse_json_output(output: str, strict: bool = True) -> tuple[Any, str | None]:
    """The JSON value of an output and ``None``, or ``(None, why it is not JSON)``.

    A surrounding code fence (```json ... ```) and whitespace are allowed. With
    ``strict`` the rest must be exactly one JSON value; without it, the first
    JSON value is taken and any text after it ignored.
    """
    text = json_document(output)
    if not text:
        return None, "empty output"
    try:
        if strict:
            return json.loads(text), None
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=0)
        return json.JSONDecoder().raw_decode(text, start)[0], None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


class JSONGrader:
    """The output is JSON; when the item has a reference, it must also equal it.

    ``strict`` (default true) rejects text after the JSON value; ``compare``
    (default true) compares with the reference as parsed values (key order
    and spacing do not matter, ``1`` equals ``1.0``).
    """

    name = "json"

    def __init__(self, strict: bool = True, compare: bool = True) -> None:
        self.strict, self.compare = bool(strict), bool(compare)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> JSONGrader:
        """The grader a dataset spec describes (``strict``, ``compare`` optional)."""
        return cls(strict=spec.get("strict", True), compare=spec.get("compare", True))

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when the output parses (and equals the reference when compared)."""
        value, problem = parse_json_output(output, self.strict)
        if problem:
            return Grade.wrong(problem)
        if not self.compare or item.reference is None:
            return Grade.correct("valid JSON")
        reference = item.reference
        if isinstance(reference, str):
            # The loader decodes JSON text references; a hand-built item may still hold text.
            try:
                reference = json.loads(reference)
            except ValueError:
                pass
        if value == reference:
            return Grade.correct("valid JSON equal to the reference")
        return Grade.wrong(
            "valid JSON but not equal to the reference", got=short(json.dumps(value, ensure_ascii=False), 200)
        )


class JSONSchemaGrader:
    """The output is JSON that validates against ``schema`` (needs the ``jsonschema`` package).

    The validator class follows the schema's ``$schema`` (Draft 2020-12 when
    absent). A schema that is itself invalid is a :class:`~evalkit.ConfigError`
    when the grader is built.
    """

    name = "json_schema"

    def __init__(self, schema: Mapping[str, Any], strict: bool = True) -> None:
        jsonschema = _import_jsonschema()
        if not isinstance(schema, Mapping):
            raise ConfigError("must be a JSON schema object", field="grader.schema")
        validator_class = jsonschema.validators.validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"is not a valid JSON schema: {exc.message}", field="grader.schema") from None
        self.validator = validator_class(schema)
        self.strict = bool(strict)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> JSONSchemaGrader:
        """The grader a dataset spec describes (``schema`` required, ``strict`` optional)."""
        return cls(schema=spec.get("schema"), strict=spec.get("strict", True))

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when the output parses and has no schema violations."""
        value, problem = parse_json_output(output, self.strict)
        if problem:
            return Grade.wrong(problem)
        errors = sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if not errors:
            return Grade.correct("valid against the schema")
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        messages = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:10]
        ]
        return Grade.wrong(f"schema violation at {where}: {first.message}", errors=messages)


def _import_jsonschema() -> Any:
    try:
        import jsonschema  # heavy-ish and optional: only json_schema graders load it
    except ImportError:
        raise ConfigError(
            "grader 'json_schema' needs the jsonschema package: pip install jsonschema", field="grader.type"
        ) from None
    return jsonschema
