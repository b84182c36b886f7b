"""What every chart of a report shares: one colour per target, the money axis, the text style.

A report's target colours are built once (:func:`target_colours`, from the
sorted target list) and passed to every chart, so a target is the same colour
in the cost–quality panels, the latency boxes and the error bars. Colours that
are not targets' (error kinds) come from a separate grey ramp, so no colour
means two things on one page.

This module imports matplotlib: only the chart code imports it, when a report is built.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from matplotlib import rcParams
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import Formatter, LogLocator, MaxNLocator, NullFormatter

__all__ = ["CHART_RC", "KIND_STYLES", "OTHER_TARGET", "PALETTE", "money_axis", "money_label", "short_labels",
           "target_colours", "target_swatches"]

# Applied while a chart is built AND while it is written: text measured for label placement must be
# the size it is drawn at. Text stays text in the SVG (small, searchable, crisp in print).
CHART_RC = {"svg.fonttype": "none", "font.size": 9}

# Okabe-Ito (colour-blind safe) first; Tol's wine and olive extend it to ten, enough for the usual
# 6-10 targets. Past ten, colours repeat (each cost-quality point still carries its name).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#882255", "#999933")
OTHER_TARGET = "#777777"  # a target outside the report's mapping (should not happen; never a palette colour)

# Error kinds stack inside one target's bar: greys and hatches, never a target's colour.
KIND_STYLES = (("#4a4a4a", ""), ("#9a9a9a", ""), ("#cfcfcf", ""), ("#4a4a4a", "///"), ("#9a9a9a", "///"),
               ("#cfcfcf", "\\\\\\"), ("#4a4a4a", "..."), ("#9a9a9a", "xx"))


def target_colours(targets: Iterable[str]) -> dict[str, str]:
    """One colour per target, assigned in sorted order: the same run gives the same colours in every chart."""
    return {target: PALETTE[i % len(PALETTE)] for i, target in enumerate(sorted(set(targets)))}


def short_labels(targets: Iterable[str]) -> dict[str, str]:
    """Point labels: the model part (``openai:gpt-4o`` -> ``gpt-4o``) where that alone tells targets apart.

    Labels sit inside a small panel; a target keeps its full name whenever its
    short one would read the same as another target's label, so a label always
    names exactly one target.
    """
    labels = {t: t.split(":", 1)[-1] or t for t in set(targets)}
    while True:
        counts = Counter(labels.values())
        clashing = [t for t, label in labels.items() if counts[label] > 1 and label != t]
        if not clashing:
            return labels
        for target in clashing:  # full names are unique: each pass settles at least one label
            labels[target] = target


def money_label(value: float, tolerance: float = 0.0) -> str:
    """``$0.00002``, ``$0.5``, ``$1,250``: the fewest decimals that keep ``value`` (within ``tolerance``)."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    tolerance = max(tolerance, value * 1e-9)
    for decimals in range(13):
        if abs(round(value, decimals) - value) <= tolerance:
            break
    text = f"{value:,.{decimals}f}"
    return f"{sign if float(text.replace(',', '')) else ''}${text}"


def money_axis(axis: Any) -> None:
    """Dollar tick labels written out, as few ticks as keep the labels apart (linear or log scale)."""
    axis.set_major_locator(_FittingLog() if axis.get_scale() == "log" else _FittingLinear())
    axis.set_major_formatter(_MoneyFormatter())
    if axis.get_scale() == "log":
        axis.set_minor_formatter(NullFormatter())  # minor log ticks stay unlabelled


def target_swatches(ax: Any, targets: Sequence[str], colours: Mapping[str, str]) -> None:
    """A square of each target's colour between its y tick label and the axes (row ``i`` is target ``i``)."""
    from matplotlib.transforms import blended_transform_factory, offset_copy

    ax.tick_params(axis="y", pad=14)  # room for the square between the label and the axis line
    where = offset_copy(blended_transform_factory(ax.transAxes, ax.transData), fig=ax.figure, x=-8,
                        units="points")
    for row, target in enumerate(targets):
        ax.scatter([0], [row], marker="s", s=40, clip_on=False, transform=where, label=f"_target:{target}",
                   color=colours.get(target, OTHER_TARGET), edgecolors="#333333", linewidths=0.4)


def _tick_space_ok(axis: Any, locs: Sequence[float]) -> bool:
    """Whether labels of ``locs`` fit between their neighbours on ``axis`` (estimated from their length)."""
    vmin, vmax = sorted(axis.get_view_interval())
    slack = 1e-9 * max(abs(vmin), abs(vmax))
    shown = [x for x in locs if vmin - slack <= x <= vmax + slack]
    if len(shown) < 2:
        return True
    transform = axis.get_transform()
    ends = transform.transform([vmin, vmax])
    span = ends[1] - ends[0]
    if not span or not math.isfinite(span):
        return True
    bbox = axis.axes.bbox
    length_pt = (bbox.width if axis.axis_name == "x" else bbox.height) * 72 / axis.axes.figure.dpi
    positions = transform.transform(shown)
    gap_pt = min(b - a for a, b in pairwise(positions)) / span * length_pt
    size = FontProperties(size=rcParams[f"{axis.axis_name}tick.labelsize"]).get_size_in_points()
    step = min(b - a for a, b in pairwise(shown))
    # ~0.62 em per character of DejaVu Sans digits, and at least one em between neighbours.
    widest = max(len(money_label(x, step * 1e-6)) for x in shown) * 0.62 * size
    return gap_pt >= widest + size


class _FittingLinear(MaxNLocator):
    """MaxNLocator with nice steps, asking for fewer ticks until the dollar labels fit the axis."""

    def __init__(self) -> None:
        super().__init__(nbins=5, steps=[1, 2, 2.5, 5, 10], min_n_ticks=2)

    def tick_values(self, vmin: float, vmax: float) -> Any:
        for nbins in (5, 4, 3, 2, 1):
            self.set_params(nbins=nbins)
            locs = super().tick_values(vmin, vmax)
            if self.axis is None or _tick_space_ok(self.axis, locs):
                break
        return locs


class _FittingLog(LogLocator):
    """Decades only, skipping every other one (and more) until the dollar labels fit the axis."""

    def __init__(self) -> None:
        super().__init__(base=10.0, subs=(1.0,), numticks=6)

    def tick_values(self, vmin: float, vmax: float) -> Any:
        for numticks in (6, 5, 4, 3, 2):
            self.set_params(numticks=numticks)
            locs = super().tick_values(vmin, vmax)
            if self.axis is None or _tick_space_ok(self.axis, locs):
                break
        return locs


class _MoneyFormatter(Formatter):
    """Each tick in dollars with the decimals it needs (float noise under a millionth of a step ignored)."""

    _step: float | None = None

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        ordered = sorted(values)
        self._step = min((b - a for a, b in pairwise(ordered) if b > a), default=None)
        try:
            return super().format_ticks(values)
        finally:
            self._step = None

    def __call__(self, x: float, pos: int | None = None) -> str:
        return money_label(x, (self._step or abs(x) or 1.0) * 1e-6)
