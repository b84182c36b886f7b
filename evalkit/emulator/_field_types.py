"""Field types of request bodies, checked the way each kind of server checks them.

One schema per request format (:data:`OPENAI_CHAT`, :data:`ANTHROPIC_MESSAGES`,
:data:`GEMINI_GENERATE`) says which JSON type each known field has; a
:class:`TypeSystem` says what a server accepts for that type. Servers disagree:

* ``strict`` (OpenAI, and Go's ``encoding/json`` in Ollama): the JSON type must
  match; ``"100"`` is not an integer and ``1.5`` is not one either.
* ``pydantic`` (Anthropic's messages, and FastAPI servers: llama-cpp-python, vLLM):
  pydantic v2's lax mode, so ``"100"`` and ``100.0`` are the integer 100,
  ``"abc"`` is ``int_parsing`` and ``1.5`` is ``int_from_float``.
* ``proto3`` (Gemini): the protobuf JSON mapping, where numbers may also be
  written as strings (``"100"``), but booleans and strings may not change type.

:func:`check_fields` returns the body as the server reads it (lax coercions
applied) and every :class:`Problem`, each with pydantic's error type
(``int_parsing``, ``list_type``...) and message; each server words them its own
way (see ``_request_checks`` and ``_compat``). Fields a schema does not list,
and ``null`` values, pass unchecked (every server here treats them as absent).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ANTHROPIC_MESSAGES",
    "GEMINI_GENERATE",
    "OPENAI_CHAT",
    "PYDANTIC_MESSAGES",
    "Field",
    "Problem",
    "TypeSystem",
    "check_fields",
    "json_type",
]

Kind = Literal["string", "integer", "number", "boolean", "array", "object", "any"]
TypeSystem = Literal["strict", "pydantic", "proto3"]

PYDANTIC_MESSAGES = {
    "missing": "Field required",
    "string_type": "Input should be a valid string",
    "int_type": "Input should be a valid integer",
    "int_parsing": "Input should be a valid integer, unable to parse string as an integer",
    "int_from_float": "Input should be a valid integer, got a number with a fractional part",
    "int_parsing_size": "Unable to parse input string as an integer, exceeded maximum size",
    "float_type": "Input should be a valid number",
    "float_parsing": "Input should be a valid number, unable to parse string as a number",
    "bool_type": "Input should be a valid boolean",
    "bool_parsing": "Input should be a valid boolean, unable to interpret input",
    "list_type": "Input should be a valid list",
    "dict_type": "Input should be a valid dictionary",
    "model_attributes_type": "Input should be a valid dictionary or object to extract fields from",
}
"""pydantic v2's messages for the error types the checks produce (pydantic-core's wording)."""

_TYPE_ERRORS = {"string": "string_type", "integer": "int_type", "number": "float_type",
                "boolean": "bool_type", "array": "list_type", "object": "dict_type"}
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_INT32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_WHOLE_DECIMAL = re.compile(r"([+-]?\d+)\.0+")
_PROTO_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})


@dataclass(frozen=True, slots=True)
class Field:
    """The type of one body field: a JSON kind, an array's items, an object's known members."""

    kind: Kind
    items: Field | None = None
    members: Mapping[str, Field] = field(default_factory=dict)
    one_of: tuple[Field, ...] = ()
    """For a union (OpenAI's ``stop``: a string or an array of strings); ``kind`` is then ``any``."""
    label: str = ""
    """What the server calls the type: pydantic's union branch tag (``list[str]``) or the protobuf
    message (``type.googleapis.com/...Content``)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One field a server refuses: where, what it holds, and pydantic's name for the failure."""

    path: tuple[str | int, ...]
    value: Any
    error: str
    expected: Field

    @property
    def message(self) -> str:
        """pydantic's message for ``error``."""
        return PYDANTIC_MESSAGES[self.error]


def _s(label: str = "") -> Field:
    return Field("string", label=label)


_I, _N, _B, _ANY = Field("integer"), Field("number"), Field("boolean"), Field("any")
_OBJ = Field("object")
_STR_LIST = Field("array", items=_s(), label="list[str]")

OPENAI_CHAT: Mapping[str, Field] = {
    "model": _s(),
    "messages": Field("array", items=Field("object", members={"role": _s(), "content": _ANY, "name": _s()})),
    "max_tokens": _I,
    "max_completion_tokens": _I,
    "temperature": _N,
    "top_p": _N,
    "n": _I,
    "seed": _I,
    "presence_penalty": _N,
    "frequency_penalty": _N,
    "stream": _B,
    "stop": Field("any", one_of=(_s("str"), _STR_LIST)),
    "stream_options": Field("object", members={"include_usage": _B}),
    "response_format": Field("object", members={"type": _s()}),
    "logprobs": _B,
    "top_logprobs": _I,
    "user": _s(),
}
"""Chat Completions fields whose type every OpenAI-compatible server checks."""

ANTHROPIC_MESSAGES: Mapping[str, Field] = {
    "model": _s(),
    "messages": Field("array", items=Field("object", members={"role": _s(), "content": _ANY})),
    "max_tokens": _I,
    "system": _ANY,
    "temperature": _N,
    "top_p": _N,
    "top_k": _I,
    "stop_sequences": Field("array", items=_s()),
    "stream": _B,
    "metadata": _OBJ,
    "thinking": Field("object", members={"type": _s(), "budget_tokens": _I}),
}
"""Messages API fields and their types."""

_GEMINI = "type.googleapis.com/google.ai.generativelanguage.v1beta."
_PART = Field("object", members={"text": _s()}, label=_GEMINI + "Part")
_CONTENT = Field("object", members={"role": _s(), "parts": Field("array", items=_PART, label=_PART.label)},
                 label=_GEMINI + "Content")
GEMINI_GENERATE: Mapping[str, Field] = {
    "contents": Field("array", items=_CONTENT, label=_CONTENT.label),
    "systemInstruction": _CONTENT,
    "generationConfig": Field(
        "object",
        label=_GEMINI + "GenerationConfig",
        members={
            "maxOutputTokens": _I,
            "temperature": _N,
            "topP": _N,
            "topK": _I,
            "candidateCount": _I,
            "seed": _I,
            "presencePenalty": _N,
            "frequencyPenalty": _N,
            "stopSequences": Field("array", items=_s(), label="TYPE_STRING"),
            "responseMimeType": _s(),
            "thinkingConfig": Field("object", label=_GEMINI + "ThinkingConfig",
                                    members={"thinkingBudget": _I, "includeThoughts": _B}),
        },
    ),
}
"""generateContent fields (camelCase; the snake_case spellings are the same fields)."""


def json_type(value: Any) -> str:
    """The JSON type of a decoded value: ``string``, ``integer``, ``number``, ``boolean``, ``array``,
    ``object`` or ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def check_fields(
    body: Mapping[str, Any],
    schema: Mapping[str, Field],
    system: TypeSystem,
    *,
    required: tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[Problem]]:
    """``body`` as ``system`` reads it against ``schema``, and every field it refuses.

    ``required`` fields that are absent (or ``null``) come first, as ``missing``;
    the rest follow in the schema's order, as pydantic reports them.
    """
    problems = [Problem((name,), None, "missing", schema[name]) for name in required
                if _get(body, name, system) is None]
    return _members(body, schema, system, (), problems), problems


def _members(obj: Mapping[str, Any], members: Mapping[str, Field], system: TypeSystem,
             path: tuple[str | int, ...], problems: list[Problem]) -> dict[str, Any]:
    out = dict(obj)
    for name, member in members.items():
        key = _key(obj, name, system)
        if key is not None:  # protobuf names a field by its proto (snake_case) name in errors
            out[key] = _check(obj[key], member, system, (*path, _snake(name) if system == "proto3" else name),
                              problems)
    return out


def _check(value: Any, spec: Field, system: TypeSystem, path: tuple[str | int, ...],
           problems: list[Problem]) -> Any:
    if value is None or (spec.kind == "any" and not spec.one_of):
        return value
    if spec.one_of:
        return _check_union(value, spec, system, path, problems)
    ok, coerced, error = _ACCEPT[system](spec.kind, value)
    if not ok:
        problems.append(Problem(path, value, error, spec))
        return value
    if spec.kind == "array" and spec.items is not None:
        return [_check(item, spec.items, system, (*path, i), problems) for i, item in enumerate(coerced)]
    if spec.kind == "object" and spec.members:
        return _members(coerced, spec.members, system, path, problems)
    return coerced


def _check_union(value: Any, spec: Field, system: TypeSystem, path: tuple[str | int, ...],
                 problems: list[Problem]) -> Any:
    for branch in spec.one_of:
        tried: list[Problem] = []
        coerced = _check(value, branch, system, path, tried)
        if not tried:
            return coerced
    if system == "pydantic":  # pydantic reports each branch's failure, its tag appended to the location
        for branch in spec.one_of:
            _check(value, branch, system, (*path, branch.label), problems)
    else:
        problems.append(Problem(path, value, _TYPE_ERRORS[spec.one_of[0].kind], spec))
    return value


def _key(body: Mapping[str, Any], name: str, system: TypeSystem) -> str | None:
    if name in body:
        return name
    if system == "proto3" and (snake := _snake(name)) in body:
        return snake
    return None


def _get(body: Mapping[str, Any], name: str, system: TypeSystem) -> Any:
    key = _key(body, name, system)
    return body[key] if key is not None else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _strict(kind: Kind, value: Any) -> tuple[bool, Any, str]:
    actual = json_type(value)
    ok = actual == kind or (kind == "number" and actual == "integer")
    return ok, value, "" if ok else _TYPE_ERRORS[kind]


def _pydantic(kind: Kind, value: Any) -> tuple[bool, Any, str]:
    """pydantic v2 lax (Python-mode) validation of a value decoded from JSON."""
    actual = json_type(value)
    if kind == "string":
        return (True, value, "") if actual == "string" else (False, value, "string_type")
    if kind == "integer":
        if actual in ("integer", "boolean"):
            return True, int(value), ""
        if actual == "number":
            if not value.is_integer():
                return False, value, "int_from_float"
            return (True, int(value), "") if _whole_i64(value) else (False, value, "int_parsing_size")
        if actual == "string":
            return _pydantic_int_text(value)
        return False, value, "int_type"
    if kind == "number":
        if actual in ("integer", "number", "boolean"):
            return True, float(value), ""
        if actual == "string":
            try:
                return True, float(value.strip()), ""
            except ValueError:
                return False, value, "float_parsing"
        return False, value, "float_type"
    if kind == "boolean":
        return _pydantic_bool(value, actual)
    expected = "array" if kind == "array" else "object"
    return (True, value, "") if actual == expected else (False, value, _TYPE_ERRORS[kind])


def _whole_i64(value: float) -> bool:
    """A float pydantic-core reads as a whole i64 (its bounds are exclusive for floats)."""
    return value.is_integer() and -(2.0**63) < value < 2.0**63


def _pydantic_int_text(value: str) -> tuple[bool, Any, str]:
    text = value.strip()
    try:
        return True, int(text), ""
    except ValueError:
        pass
    whole = _WHOLE_DECIMAL.fullmatch(text)  # "100.0" is 100; "1e3" and "1.5" are not integers
    return (True, int(whole.group(1)), "") if whole else (False, value, "int_parsing")


def _pydantic_bool(value: Any, actual: str) -> tuple[bool, Any, str]:
    if actual == "boolean":
        return True, value, ""
    if actual in ("integer", "number"):
        if value in (0, 1):
            return True, bool(value), ""
        # a whole number (2, 2.0) is read and refused; a fraction is not a boolean at all
        whole = _I64[0] <= value <= _I64[1] if actual == "integer" else _whole_i64(value)
        return False, value, "bool_parsing" if whole else "bool_type"
    if actual == "string":
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return True, word in _TRUE, ""
        return False, value, "bool_parsing"
    return False, value, "bool_type"


def _proto3(kind: Kind, value: Any) -> tuple[bool, Any, str]:
    """The protobuf JSON mapping: numbers may be strings; int32 must be whole and in range."""
    actual = json_type(value)
    if kind == "integer":
        number: Any = value
        if actual == "string":
            try:
                number = int(value)
            except ValueError:
                return False, value, "int_parsing"
        elif actual == "number" and value.is_integer():
            number = int(value)
        elif actual != "integer":
            return False, value, "int_type"
        return (True, number, "") if _INT32[0] <= number <= _INT32[1] else (False, value, "int_type")
    if kind == "number":
        if actual in ("integer", "number"):
            return True, float(value), ""
        if actual == "string" and value in _PROTO_FLOAT_WORDS:
            return True, float(value.replace("Infinity", "inf")), ""
        if actual == "string":
            try:
                number = float(value)
            except ValueError:
                return False, value, "float_parsing"
            return (True, number, "") if math.isfinite(number) else (False, value, "float_parsing")
        return False, value, "float_type"
    return _strict(kind, value)


_ACCEPT = {"strict": _strict, "pydantic": _pydantic, "proto3": _proto3}
