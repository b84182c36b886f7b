"""Correct and wrong answers for a dataset item, in the format its grader expects.

The conventions (what graders parse):

=============  ================================================  =================================
grader         correct                                           wrong
=============  ================================================  =================================
numeric        a reasoning sentence, ``The answer is 42.``        a different number
exact etc.     ``<answer_after> X.``, else ``X`` alone             another option / perturbed
mcq            ``The answer is (C).``                             another letter
alias          ``The answer is <alias>.`` (strict grader: alone)  another item's alias
label          the label alone                                    another of ``grader.labels``
slot_f1        the reference slots as a JSON object               a slot dropped or altered
code_exec      the reference in a ```python block                the function returns None
json(_schema)  valid JSON                                         truncated, invalid JSON
judge          an on-topic answer built from the prompt          short, off-topic or truncated
=============  ================================================  =================================

Correct answers depend on the item only (never on model or seed), so an
emulated judge can recompute them to recognise a good answer.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._filler import off_topic_answer, on_topic_answer
from .answers import AnswerBook, BookItem

__all__ = ["correct_answer", "wrong_answer"]

_OPTION = re.compile(r"\(([A-R])\)")
_LETTER_LINE = re.compile(r"^\s*\(?([A-J])[).:]\s", re.MULTILINE)
_ARTICLES = frozenset({"a", "an", "the"})
_FLIPS = {"true": "False", "false": "True", "yes": "No", "no": "Yes", "valid": "invalid", "invalid": "valid"}


def correct_answer(item: BookItem) -> str:
    """The well-formatted right answer for ``item``."""
    return _RENDERERS.get(item.grader_type, (_exact_right, _exact_wrong))[0](item)


def wrong_answer(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    """A plausible wrong answer for ``item``; ``book`` supplies other items to borrow from."""
    return _RENDERERS.get(item.grader_type, (_exact_right, _exact_wrong))[1](item, rng, book)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value).replace(",", "").strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _fmt(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return str(number)


def _first(reference: Any) -> str:
    if isinstance(reference, list) and reference:
        return str(reference[0])
    return "" if reference is None else str(reference)


def _numeric_right(item: BookItem) -> str:
    value = _number(item.reference)
    shown = _first(item.reference) if value is None else _fmt(value)
    return f"Working through the quantities in the problem step by step gives the result.\nThe answer is {shown}."


def _numeric_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    value = _number(item.reference)
    if value is None:
        return "Working through the problem step by step gives the result.\nThe answer is 0."
    delta = rng.choice((1, 2, 3, 5, 10, 12))
    if isinstance(value, float):
        delta = delta * max(abs(value), 1.0) / 10
    wrong = value + delta if rng.random() < 0.5 else value - delta
    return f"Working through the quantities in the problem step by step gives the result.\nThe answer is {_fmt(wrong)}."


def _exact_right(item: BookItem) -> str:
    return _final_answer(item, _first(item.reference))


def _exact_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    return _final_answer(item, _perturb(_first(item.reference), item.prompt, rng))


def _final_answer(item: BookItem, answer: str) -> str:
    """``answer`` where the grader reads it: after its ``answer_after`` marker, else alone on the last line.

    (``exact``/``normalized`` take the last line when no marker is asked for; a regex is
    searched for anywhere, and the reference alone is what its pattern was written to match.)
    """
    marker = item.grader.get("answer_after")
    if isinstance(marker, str) and marker.strip():
        return f"{marker.strip()} {answer}."
    return answer


def _perturb(reference: str, prompt: str, rng: random.Random) -> str:
    """A different value of the same kind: another option, a flipped boolean, a shifted number."""
    ref = reference.strip()
    if _OPTION.fullmatch(ref):
        options = sorted({f"({m})" for m in _OPTION.findall(prompt)} - {ref}) or [
            "(A)" if ref != "(A)" else "(B)"
        ]
        return rng.choice(options)
    flipped = _FLIPS.get(ref.lower())
    if flipped:
        return flipped
    number = _number(ref)
    if number is not None:
        return _fmt(number + rng.choice((-2, -1, 1, 2)))
    words = ref.split()
    # Swap two neighbouring content words: articles are dropped by the normalized grader, so swapping
    # one ("the plumbing" -> "plumbing the") would still be graded right.
    content = [i for i, w in enumerate(words) if w.casefold() not in _ARTICLES]
    if len(content) > 1:
        k = rng.randrange(len(content) - 1)
        i, j = content[k], content[k + 1]
        words[i], words[j] = words[j], words[i]
        swapped = " ".join(words)
        return swapped if swapped.casefold() != ref.casefold() else " ".join(w for n, w in enumerate(words) if n != j)
    if content and len(words) > 1:
        i = content[0]
        words[i] = _perturb(words[i], prompt, rng)
        return " ".join(words)
    return ref[::-1] if ref[::-1] != ref else ref + "s"


def _mcq_right(item: BookItem) -> str:
    return f"The answer is ({_first(item.reference).strip('() ')})."


def _mcq_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    right = _first(item.reference).strip("() ")
    letters = (
        list(item.grader.get("choices") or [])
        or sorted(set(_LETTER_LINE.findall(item.prompt)))
        or list("ABCD")
    )
    others = [c for c in letters if c != right] or [c for c in "ABCD" if c != right]
    return f"The answer is ({rng.choice(others)})."


def _alias_right(item: BookItem) -> str:
    return _alias_sentence(item, _first(item.reference))


def _alias_sentence(item: BookItem, alias: str) -> str:
    """A sentence naming ``alias``; the alias alone when the grader is strict (``containment: false``)."""
    return alias if item.grader.get("containment") is False else f"The answer is {alias}."


def _alias_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    mine = {
        a.casefold()
        for a in (item.reference if isinstance(item.reference, list) else [_first(item.reference)])
    }
    peers = [p for p in book.peers(item.grader_type) if _first(p.reference).casefold() not in mine]
    if peers:
        return _alias_sentence(item, _first(rng.choice(peers).reference))
    return _alias_sentence(item, _perturb(_first(item.reference), item.prompt, rng))


def _label_right(item: BookItem) -> str:
    return _first(item.reference)


def _label_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    right = _first(item.reference)
    labels = [str(x) for x in item.grader.get("labels") or [] if str(x) != right]
    if not labels:
        labels = sorted({_first(p.reference) for p in book.peers("label")} - {right})
    return rng.choice(labels) if labels else _perturb(right, item.prompt, rng)


def _slots_right(item: BookItem) -> str:
    return json.dumps(_slots(item.reference), ensure_ascii=False)


def _slots_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    slots = _slots(item.reference)
    if len(slots) >= 2:
        slots.pop(rng.choice(sorted(slots)))
    elif slots:
        key = next(iter(slots))
        slots[key] = _perturb(str(slots[key]), item.prompt, rng)
    else:
        slots = {"time": "7 pm"}
    return json.dumps(slots, ensure_ascii=False)


def _slots(reference: Any) -> dict[str, Any]:
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except ValueError:
            return {}
    return dict(reference) if isinstance(reference, Mapping) else {}


def _code_right(item: BookItem) -> str:
    return f"Here is the complete implementation:\n\n```python\n{str(item.reference).strip(chr(10))}\n```"


def _code_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    broken = _break_function(str(item.reference), str(item.grader.get("entry_point") or ""))
    return f"Here is the complete implementation:\n\n```python\n{broken}\n```"


def _break_function(code: str, entry_point: str) -> str:
    """``code`` with the tested function's body replaced by ``return None`` (docstring kept)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "def solution(*args, **kwargs):\n    return None"
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    target = next((f for f in functions if f.name == entry_point), functions[-1] if functions else None)
    if target is None:
        return "def solution(*args, **kwargs):\n    return None"
    doc = (
        target.body[:1]
        if target.body
        and isinstance(target.body[0], ast.Expr)
        and isinstance(getattr(target.body[0], "value", None), ast.Constant)
        else []
    )
    target.body = doc + [ast.Return(value=ast.Constant(value=None))]
    return ast.unparse(tree)


def _json_right(item: BookItem) -> str:
    value = item.reference
    if value is None:
        value = _instance_for(item.grader.get("schema") or {})
    elif isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


def _json_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    text = _json_right(item)
    return text[: max(len(text) - rng.randint(1, 3), 1)] if len(text) > 1 else "{"


def _instance_for(schema: Mapping[str, Any]) -> Any:
    """A minimal value that satisfies a simple JSON schema (types and required properties)."""
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: _instance_for(v) for k, v in props.items() if k in (schema.get("required") or props)}
    if kind == "array":
        return [_instance_for(schema.get("items") or {})] * int(schema.get("minItems", 0) or 0)
    return {"string": "example", "integer": 1, "number": 1, "boolean": True, "null": None}.get(
        kind, "example"
    )


def _judge_right(item: BookItem) -> str:
    return on_topic_answer(item.prompt)


def _judge_wrong(item: BookItem, rng: random.Random, book: AnswerBook) -> str:
    return off_topic_answer(item.prompt, rng)


_Right = Callable[[BookItem], str]
_Wrong = Callable[[BookItem, random.Random, AnswerBook], str]
_RENDERERS: dict[str, tuple[_Right, _Wrong]] = {
    "numeric": (_numeric_right, _numeric_wrong),
    "exact": (_exact_right, _exact_wrong),
    "normalized": (_exact_right, _exact_wrong),
    "regex": (_exact_right, _exact_wrong),
    "mcq": (_mcq_right, _mcq_wrong),
    "alias": (_alias_right, _alias_wrong),
    "label": (_label_right, _label_wrong),
    "slot_f1": (_slots_right, _slots_wrong),
    "code_exec": (_code_right, _code_wrong),
    "json": (_json_right, _json_wrong),
    "json_schema": (_json_right, _json_wrong),
    "judge": (_judge_right, _judge_wrong),
}
