"""Classification graders: one intent label (BANKING77) and slot filling (Restaurant-8k)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import Grade, short
from ._text import first_json_object, squad_normalize, token_key

if TYPE_CHECKING:
    from ..datasets import Item

__all__ = ["LabelGrader", "SlotF1Grader", "find_label", "slot_f1"]


def find_label(output: str, labels: Sequence[str]) -> tuple[str | None, str]:
    """The label an output names, and how it was found (or why none was).

    Labels and output are compared as :func:`token_key` (case-folded words, so
    ``card_arrival``, ``Card arrival.`` and ``"card-arrival"`` agree). The whole
    output naming one label wins; otherwise the labels mentioned in it as
    whole words, ignoring a mention that lies inside a longer label's mention
    (``exchange_rate`` inside ``card_payment_wrong_exchange_rate``). Exactly
    one such label is the answer; several are ambiguous.
    """
    keyed = {token_key(label): label for label in labels}
    said = token_key(output)
    if said in keyed:
        return keyed[said], "whole output"
    spans: list[tuple[int, int, str]] = []
    for key, label in keyed.items():
        if key:
            pattern = re.compile(r"(?<!\S)" + re.escape(key) + r"(?!\S)")
            spans.extend((m.start(), m.end(), label) for m in pattern.finditer(said))
    mentioned = {
        label
        for start, end, label in spans
        if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in spans)
    }
    if len(mentioned) == 1:
        return mentioned.pop(), "mentioned"
    if mentioned:
        return None, "ambiguous: mentions " + ", ".join(sorted(mentioned))
    return None, "no label found"


class LabelGrader:
    """One label from a fixed set (intent classification).

    Extraction is :func:`find_label`: the whole output, else the unique label
    mentioned in it (longest mention wins); an output naming two labels fails.
    """

    name = "label"

    def __init__(self, labels: Sequence[str]) -> None:
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ConfigError("must be a non-empty list of labels", field="grader.labels")
        self.labels = tuple(labels)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LabelGrader:
        """The grader a dataset spec describes (``labels`` required)."""
        return cls(labels=spec.get("labels") or ())

    async def grade(self, item: Item, output: str) -> Grade:
        """Pass when the label found is the reference label."""
        expected = str(item.reference)
        label, rule = find_label(output, self.labels)
        if label is None:
            return Grade.wrong(short(rule), rule=rule)
        ok = token_key(label) == token_key(expected)
        return Grade.of(
            ok, f"{label} ({rule}) {'is' if ok else 'is not'} {expected}", extracted=label, rule=rule
        )


def _slot_pairs(slots: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(slot, value)`` pairs, both normalised; empty values mean the slot is absent."""
    pairs = set()
    for key, value in slots.items():
        if value is None or isinstance(value, (dict, list, bool)):
            continue
        text = squad_normalize(str(value))
        if text:
            pairs.add((token_key(str(key)), text))
    return pairs


def slot_f1(predicted: Mapping[str, Any], reference: Mapping[str, Any]) -> tuple[float, float, float]:
    """Precision, recall and F1 over normalised ``(slot, value)`` pairs; both empty is perfect."""
    got, want = _slot_pairs(predicted), _slot_pairs(reference)
    if not got and not want:
        return 1.0, 1.0, 1.0
    hits = len(got & want)
    precision = hits / len(got) if got else 0.0
    recall = hits / len(want) if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


class SlotF1Grader:
    """Slot filling: the first JSON object in the output against the reference slots.

    The object may sit in a ```json fence or among chatter. Slot names are
    compared as :func:`token_key`, values SQuAD-normalised; null or empty
    values count as absent. Score is F1 over ``(slot, value)`` pairs; pass
    only at F1 = 1. An empty reference and ``{}`` score 1.
    """

    name = "slot_f1"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SlotF1Grader:
        """The grader a dataset spec describes (no fields)."""
        return cls()

    async def grade(self, item: Item, output: str) -> Grade:
        """Score the output's slots by F1 against the reference slots."""
        predicted = first_json_object(output)
        if predicted is None:
            return Grade.wrong("no JSON object in the output")
        reference = item.reference if isinstance(item.reference, Mapping) else {}
        precision, recall, f1 = slot_f1(predicted, reference)
        missing = sorted(_slot_pairs(reference) - _slot_pairs(predicted))
        extra = sorted(_slot_pairs(predicted) - _slot_pairs(reference))
        details = {"precision": precision, "recall": recall, "missing": missing, "extra": extra}
        if f1 == 1.0:
            return Grade(1.0, True, "all slots match", details)
        reason = f"slot F1 {f1:.2f}: missing {_pairs_text(missing)}; extra {_pairs_text(extra)}"
        return Grade(f1, False, short(reason), details)


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{slot}={value!r}" for slot, value in pairs) or "none"
