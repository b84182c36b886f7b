"""A ledger of reproduction checks, kept in honest categories, with tolerances from the printed digits.

"N of N published numbers reproduced" says little unless each number was
published, and computed rather than assumed. :class:`Reproduction` keeps each
check in one of four categories:

* ``published`` — a number its publisher printed (a paper table, a README
  line, a leaderboard file), recomputed by evalkit from the raw per-item data;
* ``curator`` — a reference value someone other than the publisher recomputed
  (e.g. the data curator's README), recomputed again by evalkit: it checks the
  code against a second computation, not against the publication;
* ``by construction`` — a property that holds whatever the data (the random
  router's APGR is 0.5 because its curve is a straight line): it proves almost
  nothing about the code, and is counted apart so it cannot pad the others;
* ``sanity`` — an inequality or consistency that must hold between computed
  numbers (the oracle never below the random router, ...).

A reference number is passed as the text it was printed as, and is matched
within half a unit of its last printed digit (:func:`printed_tolerance`:
"0.562" → 0.0005). A number a program wrote as a float64 in full (``repr``:
"76.91979180386511", "50.0") is not rounded: it stands for that double
exactly, and is matched within a stated ``bound`` with its reason — what the
raw data's own rounding can move the result, or, when nothing was rounded, a
few units in the last place for the order of operations (:func:`float64_bound`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = ["CATEGORIES", "FLOAT64_REASON", "Check", "Reproduction", "cite", "float64_bound",
           "printed_tolerance"]

CATEGORIES = ("published", "curator", "by construction", "sanity")

_SUMMARY = {
    "published": "{held} of {total} published numbers reproduced",
    "curator": "{held} of {total} curator references reproduced",
    "by construction": "{held} of {total} by construction (prove nothing about the code)",
    "sanity": "{held} of {total} sanity checks hold",
}


def _printed_number(printed: str) -> Decimal:
    try:
        return Decimal(printed.strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        raise ValueError(f"not a printed number: {printed!r}") from None


def printed_tolerance(printed: str) -> float:
    """Half a unit in the last digit of a number as printed: "0.562" → 0.0005, "14,042" → 0.5.

    Trailing zeros count ("0.50" → 0.005): they were printed. Thousands
    separators and exponent notation work ("1.5e-3" → 5e-05).
    """
    number = _printed_number(printed)
    exponent = number.as_tuple().exponent
    if not number.is_finite() or not isinstance(exponent, int):
        raise ValueError(f"not a finite printed number: {printed!r}")
    return float(Decimal(5).scaleb(exponent - 1))


FLOAT64_REASON = ("printed as a float64 in full (~17 digits): the last bits depend on the order of "
                  "operations, so within 4 units in the last place")


def float64_bound(printed: str, ulps: int = 4) -> float:
    """``ulps`` units in the last place of the float64 ``printed`` is: the bound for a number printed in full.

    A leaderboard written by ``repr(float)`` prints every digit of the double;
    a recomputation that adds the same numbers in another order can differ
    in the last bit or two. Use with :data:`FLOAT64_REASON`.
    """
    return ulps * math.ulp(float(_printed_number(printed)))


def cite(root: str | Path, relpath: str, *needles: str) -> str:
    """``"relpath:line"`` of the line holding the last of ``needles``, each found after the one before.

    A citation that names the line a number is printed on, and fails (ValueError)
    when that text is not there: e.g. ``cite(shared, "wildbench/all_stat_wildbench.-1.json",
    '"reka-edge": {', '"WB_score": 23.186705767350926')``.
    """
    if not needles:
        raise ValueError("cite needs at least one piece of text to find")
    lines = (Path(root) / relpath).read_text().splitlines()
    start = 0
    for needle in needles:
        found = next((i for i in range(start, len(lines)) if needle in lines[i]), None)
        if found is None:
            raise ValueError(f"{relpath}: {needle!r} not found" + (f" after line {start}" if start else ""))
        start = found
    return f"{relpath}:{start + 1}"


@dataclass(frozen=True)
class Check:
    """One check: what was compared with what, within what, and whether it held."""

    category: str
    dataset: str
    """The data set the check is about (e.g. "routellm", "alpaca_eval")."""
    source: str
    """Where the reference was printed (file and line), or why the property holds."""
    quantity: str
    printed: str | None
    """The reference as printed (None for sanity checks, which have no reference number)."""
    computed: float | None
    tolerance: float | None
    basis: str
    """Why this tolerance (or, for a sanity check, the condition that was tested)."""
    holds: bool


class Reproduction:
    """The ledger: add checks by category, then :meth:`to_frame`, :meth:`counts` and :meth:`summary`."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def _compare(self, category: str, dataset: str, source: str, quantity: str, printed: str,
                 computed: float, bound: float | None, reason: str) -> Check:
        if bound is None:
            tolerance, basis = printed_tolerance(printed), "half the last printed digit"
        else:
            _printed_number(printed)  # still a number
            if not bound > 0 or not reason:
                raise ValueError("a float64 printed in full needs a positive bound, with its reason")
            tolerance, basis = bound, reason
        value = float(computed)
        check = Check(category, dataset, source, quantity, printed, value, tolerance, basis,
                      abs(value - float(_printed_number(printed))) <= tolerance)
        self.checks.append(check)
        return check

    def published(self, dataset: str, source: str, quantity: str, printed: str, computed: float, *,
                  bound: float | None = None, reason: str = "") -> Check:
        """A number the publisher printed (``source``: where), recomputed by evalkit from the raw data.

        Matched within half its last printed digit; or, for a float64 printed
        in full, within ``bound`` (required then, with its ``reason``): the
        most the raw data's own rounding can move the result, or
        :func:`float64_bound` when nothing was rounded.
        """
        return self._compare("published", dataset, source, quantity, printed, computed, bound, reason)

    def curator(self, dataset: str, source: str, quantity: str, printed: str, computed: float) -> Check:
        """A reference recomputed by someone other than the publisher (``source``: where it is printed)."""
        return self._compare("curator", dataset, source, quantity, printed, computed, None, "")

    def by_construction(self, dataset: str, reason: str, quantity: str, expected: float,
                        computed: float, *, tolerance: float = 1e-9) -> Check:
        """A value the definitions fix whatever the data (``reason``: why); counted apart, proves little."""
        value = float(computed)
        check = Check("by construction", dataset, reason, quantity, repr(float(expected)), value,
                      tolerance, "floating-point rounding only", abs(value - expected) <= tolerance)
        self.checks.append(check)
        return check

    def sanity(self, dataset: str, quantity: str, condition: str, holds: bool,
               computed: float | None = None) -> Check:
        """An inequality or consistency between computed numbers (``condition``: what was tested)."""
        check = Check("sanity", dataset, "evalkit (internal consistency)", quantity, None,
                      None if computed is None else float(computed), None, condition, bool(holds))
        self.checks.append(check)
        return check

    def to_frame(self) -> Any:
        """Every check as a polars DataFrame, with ``abs_diff`` (null for sanity checks)."""
        import polars as pl

        schema = {"category": pl.String, "dataset": pl.String, "source": pl.String, "quantity": pl.String,
                  "printed": pl.String, "computed": pl.Float64, "tolerance": pl.Float64, "basis": pl.String,
                  "holds": pl.Boolean}
        frame = pl.DataFrame([asdict(c) for c in self.checks], schema=schema)
        diff = (pl.col("computed") - pl.col("printed").str.replace_all(",", "").cast(pl.Float64)).abs()
        return frame.with_columns(diff.alias("abs_diff"))

    def counts(self) -> dict[str, tuple[int, int]]:
        """Category → (checks that held, checks), for every category (zeros included)."""
        return {category: (sum(c.holds for c in self.checks if c.category == category),
                           sum(c.category == category for c in self.checks)) for category in CATEGORIES}

    def summary(self) -> str:
        """One line: the counts per category, e.g. "12 of 12 published numbers reproduced; 15 of 15 ..."."""
        return "; ".join(_SUMMARY[category].format(held=held, total=total)
                         for category, (held, total) in self.counts().items())

    def by_dataset(self, category: str) -> dict[str, int]:
        """Data set → how many checks of ``category`` it has, in the order they were added."""
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
        out: dict[str, int] = {}
        for check in self.checks:
            if check.category == category:
                out[check.dataset] = out.get(check.dataset, 0) + 1
        return out
