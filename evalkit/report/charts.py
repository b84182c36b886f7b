"""The report's charts: matplotlib ``Figure`` objects rendered to inline SVG strings.

Never pyplot: a report is built inside other programs (notebooks, servers,
tests) and must not touch pyplot's global figure registry or need a GUI
backend. ``Figure.savefig(format="svg")`` uses the SVG backend directly.
Text stays text in the SVG (``svg.fonttype = none``, set in a local rc_context
only) so the charts are small, searchable and crisp when printed.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["confusion_figure", "confusion_svg", "cost_quality_svg", "error_kinds_svg", "figure_svg",
           "latency_svg"]

# Colour-blind-safe palette (Okabe-Ito) so targets read the same in every chart.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def figure_svg(fig: Any, name: str) -> str:
    """The figure as an ``<svg>`` element: XML prolog, DOCTYPE and metadata dropped (inline use).

    ``name`` salts the SVG's internal ids: fixed, so the same run gives the same bytes (a
    regenerated report diffs cleanly), and distinct per chart, so ids never clash within a page.
    """
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": f"evalkit-{name}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def cost_quality_svg(points: Any, targets: list[str]) -> str:
    """One panel per task type: each target's (cost per item, quality), the Pareto frontier joined.

    ``points`` is ``pareto_frontier(summary_df(results))``; unpriced targets
    (null cost) cannot be placed and are left out of their panel.
    """
    tasks = sorted(points.get_column("task_type").unique().to_list())
    cols = min(3, max(1, len(tasks)))
    rows = (len(tasks) + cols - 1) // cols
    fig = _figure(3.4 * cols, 2.8 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        _cost_quality_panel(ax, points.filter(points["task_type"] == task), targets)
        ax.set_title(task, fontsize=10)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles = [_marker(fig, _colour(i), t) for i, t in enumerate(targets)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(targets)), frameon=False)
    return figure_svg(fig, "cost-quality")


def _marker(fig: Any, colour: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", linestyle="", color=colour, label=label)


def _cost_quality_panel(ax: Any, panel: Any, targets: list[str]) -> None:
    known = panel.drop_nulls(["cost_per_item", "quality"])
    for row in known.iter_rows(named=True):
        colour = _colour(targets.index(row["target"])) if row["target"] in targets else "#777777"
        edge = "black" if row["on_frontier"] else "none"
        ax.scatter([row["cost_per_item"]], [row["quality"]], s=60 if row["on_frontier"] else 30,
                   color=colour, edgecolors=edge, linewidths=1.2, zorder=3)
    front = known.filter(known["on_frontier"]).sort("cost_per_item")
    if front.height:
        ax.step(front["cost_per_item"].to_list(), front["quality"].to_list(), where="post",
                color="#333333", linewidth=1, linestyle="--", zorder=2, label="Pareto frontier")
    costs = known.get_column("cost_per_item")
    # Costs span orders of magnitude across models: a log axis keeps cheap models apart.
    if known.height and costs.min() > 0 and costs.max() / costs.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("USD per item")
    ax.set_ylabel("quality")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)


def latency_svg(stats: list[dict[str, Any]], targets: list[str]) -> str:
    """Box plots of latency and TTFT per target from precomputed quantiles (p5/p25/p50/p75/p95).

    Quantiles come from polars, not the raw rows: a 100k-row run must not
    turn into 100k SVG points or a slow matplotlib pass.
    """
    fig = _figure(9, 0.45 * len(targets) + 1.4)
    axes = fig.subplots(1, 2, sharey=True, squeeze=False)[0]
    for ax, metric, title in ((axes[0], "latency", "latency (ms)"), (axes[1], "ttft", "TTFT (ms)")):
        boxes, positions = [], []
        for i, target in enumerate(targets):
            row = next((s for s in stats if s["target"] == target and s["metric"] == metric), None)
            if row is None or row["p50"] is None:
                continue
            boxes.append({"label": target, "whislo": row["p5"], "q1": row["p25"], "med": row["p50"],
                          "q3": row["p75"], "whishi": row["p95"], "fliers": []})
            positions.append(i)
        if boxes:
            ax.bxp(boxes, positions=positions, orientation="horizontal", showfliers=False, widths=0.6)
        else:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center")
        ax.set_yticks(range(len(targets)), targets)
        ax.set_title(title + " — whiskers p5/p95", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # shared y: the first target on top, as in the tables
    return figure_svg(fig, "latency")


def error_kinds_svg(counts: dict[str, dict[str, int]], targets: list[str]) -> str:
    """Horizontal stacked bars: per target, its errored cells split by error kind."""
    kinds = sorted({k for per in counts.values() for k in per})
    fig = _figure(9, 0.45 * len(targets) + 1.4)
    ax = fig.subplots()
    left = [0] * len(targets)
    for j, kind in enumerate(kinds):
        widths = [counts.get(t, {}).get(kind, 0) for t in targets]
        ax.barh(range(len(targets)), widths, left=left, color=_colour(j), label=kind)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(targets)), targets)
    ax.invert_yaxis()  # the first target on top, as in the tables
    ax.set_xlabel("errored cells")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return figure_svg(fig, "errors")


def confusion_figure(labels: list[str] | tuple[str, ...], confusion: Any) -> Any:
    """A confusion matrix as a heatmap ``Figure``: rows the true task type, columns the predicted one.

    Each cell is shaded by its share of the row (a row is every item of one
    task type, so the diagonal is that type's recall) and labelled with its
    count. Drawn with ``pcolormesh`` (vector quads, not an embedded bitmap),
    on a bare ``Figure``: no pyplot state, usable in a notebook as it is.
    """
    import numpy as np

    counts = np.asarray(confusion, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    n = len(labels)
    fig = _figure(0.8 * n + 2.6, 0.55 * n + 1.6)
    ax = fig.subplots()
    ax.pcolormesh(share, cmap="Blues", vmin=0.0, vmax=1.0, edgecolors="white", linewidth=0.5)
    for i in range(n):
        for j in range(n):
            ax.text(j + 0.5, i + 0.5, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else ("#1d2330" if counts[i, j] else "#9aa1ad"))
    ax.set_xticks([k + 0.5 for k in range(n)], labels, rotation=30, ha="right")
    ax.set_yticks([k + 0.5 for k in range(n)], labels)
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)  # the first task type on top, as in the table
    ax.set_xlabel("predicted task type")
    ax.set_ylabel("true task type")
    ax.set_aspect("equal")
    return fig


def confusion_svg(labels: list[str] | tuple[str, ...], confusion: Any) -> str:
    """:func:`confusion_figure` as inline SVG."""
    return figure_svg(confusion_figure(labels, confusion), "confusion")
