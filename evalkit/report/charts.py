"""The report's charts: matplotlib ``Figure`` objects rendered to inline SVG strings.

Never pyplot: a report is built inside other programs (notebooks, servers,
tests) and must not touch pyplot's global figure registry or need a GUI
backend. ``Figure.savefig(format="svg")`` uses the SVG backend directly.
Text stays text in the SVG (``svg.fonttype = none``, set in a local rc_context
only) so the charts are small, searchable and crisp when printed.

Every chart that shows targets takes the report's one target->colour mapping
(:func:`evalkit.report.chart_style.target_colours`), so a target keeps its
colour from chart to chart; its artists carry the label ``_target:<name>``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

__all__ = ["confusion_figure", "confusion_svg", "cost_quality_figure", "cost_quality_svg", "error_kinds_figure",
           "error_kinds_svg", "figure_svg", "latency_figure", "latency_svg", "streamed_targets"]


def figure_svg(fig: Any, name: str) -> str:
    """The figure as an ``<svg>`` element: XML prolog, DOCTYPE and metadata dropped (inline use).

    ``name`` salts the SVG's internal ids: fixed, so the same run gives the same bytes (a
    regenerated report diffs cleanly), and distinct per chart, so ids never clash within a page.
    """
    import matplotlib

    from .chart_style import CHART_RC

    buf = io.StringIO()
    with matplotlib.rc_context({**CHART_RC, "svg.hashsalt": f"evalkit-{name}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _styled() -> Any:
    """The report's text style while a figure is built (text is measured then, for label placement)."""
    import matplotlib

    from .chart_style import CHART_RC

    return matplotlib.rc_context(CHART_RC)


def cost_quality_figure(points: Any, colours: Mapping[str, str]) -> Any:
    """One panel per task type: each target's (cost per item, quality), named, the Pareto frontier joined.

    ``points`` is ``pareto_frontier(summary_df(results))``; ``colours`` the
    report's :func:`~evalkit.report.chart_style.target_colours`. Unpriced
    targets (null cost) cannot be placed and are left out of their panel.
    """
    from .chart_style import short_labels

    tasks = sorted(points.get_column("task_type").unique().to_list())
    targets = sorted(colours)
    names = short_labels(targets)
    cols = min(3, max(1, len(tasks)))
    rows = (len(tasks) + cols - 1) // cols
    with _styled():
        fig = _figure(3.9 * cols, 3.1 * rows + 0.5)
        axes = fig.subplots(rows, cols, squeeze=False)
        pending = []
        for ax, task in zip(axes.flat, tasks):
            pending.append((ax, _cost_quality_panel(ax, points.filter(points["task_type"] == task), colours, names)))
            ax.set_title(task, fontsize=10)
        for ax in list(axes.flat)[len(tasks):]:
            ax.set_visible(False)
        handles = [_marker(colours[t], t) for t in targets]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(targets)), frameon=False)
        _label_panels(fig, pending)
    return fig


def cost_quality_svg(points: Any, colours: Mapping[str, str]) -> str:
    """:func:`cost_quality_figure` as inline SVG."""
    return figure_svg(cost_quality_figure(points, colours), "cost-quality")


def _label_panels(fig: Any, pending: list[tuple[Any, tuple[list[Any], list[Any]]]]) -> None:
    """Fix the layout once, then name every panel's points where they can be read."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .point_labels import place_labels

    canvas = FigureCanvasAgg(fig)  # measures text; savefig still writes SVG with its own backend
    fig.draw_without_rendering()
    renderer = canvas.get_renderer()
    for ax, (labelled, lines) in pending:
        place_labels(ax, labelled, renderer, lines=lines)
    # Labels are kept out of the layout; freeze it so writing the file does not move the axes under them.
    fig.set_layout_engine("none")


def _marker(colour: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", linestyle="", color=colour, label=label)


def _cost_quality_panel(ax: Any, panel: Any, colours: Mapping[str, str],
                        names: Mapping[str, str]) -> tuple[list[Any], list[list[tuple[float, float]]]]:
    """Draw one task type's points and frontier; return the points to be labelled and the lines to keep off."""
    from .chart_style import OTHER_TARGET, money_axis
    from .point_labels import LabelledPoint

    known = panel.drop_nulls(["cost_per_item", "quality"])
    labelled = []
    for row in known.iter_rows(named=True):
        size = 60 if row["on_frontier"] else 30
        ax.scatter([row["cost_per_item"]], [row["quality"]], s=size, color=colours.get(row["target"], OTHER_TARGET),
                   edgecolors="black" if row["on_frontier"] else "#555555",
                   linewidths=1.2 if row["on_frontier"] else 0.4, zorder=3,
                   label=f"_target:{row['target']}")  # "_": never in a legend; names the artist
        labelled.append(LabelledPoint(row["cost_per_item"], row["quality"], names.get(row["target"], row["target"]),
                                      radius_pt=size ** 0.5 / 2 + 1, rank=0 if row["on_frontier"] else 1))
    front = known.filter(known["on_frontier"]).sort("cost_per_item")
    steps: list[tuple[float, float]] = []
    if front.height:
        xs, ys = front["cost_per_item"].to_list(), front["quality"].to_list()
        ax.step(xs, ys, where="post", color="#333333", linewidth=1, linestyle="--", zorder=2, label="Pareto frontier")
        # The same path as the drawn steps ("post": across at the old height, then up), for labels to avoid.
        steps = [p for i, (x, y) in enumerate(zip(xs, ys)) for p in ([(x, ys[i - 1])] if i else []) + [(x, y)]]
    costs = known.get_column("cost_per_item")
    # Costs span orders of magnitude across models: a log axis keeps cheap models apart.
    if known.height and costs.min() > 0 and costs.max() / costs.min() > 20:
        ax.set_xscale("log")
    money_axis(ax.xaxis)
    ax.set_xlabel("USD per item")
    ax.set_ylabel("quality")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    return labelled, [steps] if len(steps) > 1 else []


def streamed_targets(stats: list[dict[str, Any]]) -> list[str]:
    """The targets with a time to first token recorded (their calls were streamed)."""
    return sorted({s["target"] for s in stats if s["metric"] == "ttft" and s["p50"] is not None})


def latency_figure(stats: list[dict[str, Any]], colours: Mapping[str, str]) -> Any:
    """Box plots of latency (and TTFT, when any call streamed) per target from quantiles (p5/p25/p50/p75/p95).

    Quantiles come from polars, not the raw rows: a 100k-row run must not
    turn into 100k SVG points or a slow matplotlib pass. With nothing streamed
    there is no TTFT panel at all (the report says why in words).
    """
    targets = sorted(colours)
    streamed = streamed_targets(stats)
    panels = [("latency", "latency (ms)")] + ([("ttft", "TTFT (ms)")] if streamed else [])
    with _styled():
        fig = _figure(4.5 * len(panels), 0.45 * len(targets) + 1.4)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, (metric, title) in zip(axes, panels):
            _box_panel(ax, metric, stats, targets, colours)
            ax.set_title(title + " — whiskers p5/p95", fontsize=10)
        axes[0].set_yticks(range(len(targets)), targets)
        from .chart_style import target_swatches

        target_swatches(axes[0], targets, colours)
        axes[0].invert_yaxis()  # shared y: the first target on top, as in the tables
    return fig


def latency_svg(stats: list[dict[str, Any]], colours: Mapping[str, str]) -> str:
    """:func:`latency_figure` as inline SVG."""
    return figure_svg(latency_figure(stats, colours), "latency")


def _box_panel(ax: Any, metric: str, stats: list[dict[str, Any]], targets: list[str],
               colours: Mapping[str, str]) -> None:
    boxes, positions = [], []
    for i, target in enumerate(targets):
        row = next((s for s in stats if s["target"] == target and s["metric"] == metric), None)
        if row is None or row["p50"] is None:
            # Some targets streamed, this one did not: say so on its row rather than leave a gap.
            ax.text(0.02, i, "not streamed" if metric == "ttft" else "no calls", transform=ax.get_yaxis_transform(),
                    va="center", fontsize=8, color="#5b6475")
            continue
        boxes.append({"label": target, "whislo": row["p5"], "q1": row["p25"], "med": row["p50"],
                      "q3": row["p75"], "whishi": row["p95"], "fliers": []})
        positions.append(i)
    if boxes:
        drawn = ax.bxp(boxes, positions=positions, orientation="horizontal", showfliers=False, widths=0.6,
                       patch_artist=True, medianprops={"color": "#1d2330", "linewidth": 1.5})
        for box, item in zip(drawn["boxes"], boxes):
            box.set_facecolor(colours[item["label"]])
            box.set_alpha(0.75)
            box.set_label(f"_target:{item['label']}")
    ax.grid(axis="x", alpha=0.3)


def error_kinds_figure(counts: dict[str, dict[str, int]], colours: Mapping[str, str]) -> Any:
    """Horizontal stacked bars: per target (its colour beside its name), its errored cells split by error kind.

    Kinds are greys and hatches, never a target's colour: on one page a colour names one target.
    """
    from .chart_style import KIND_STYLES, target_swatches

    targets = sorted(colours)
    kinds = sorted({k for per in counts.values() for k in per})
    with _styled():
        fig = _figure(9, 0.45 * len(targets) + 1.4)
        ax = fig.subplots()
        left = [0] * len(targets)
        for j, kind in enumerate(kinds):
            fill, hatch = KIND_STYLES[j % len(KIND_STYLES)]
            widths = [counts.get(t, {}).get(kind, 0) for t in targets]
            ax.barh(range(len(targets)), widths, left=left, color=fill, hatch=hatch, edgecolor="white",
                    linewidth=0.5, label=kind)
            left = [a + b for a, b in zip(left, widths)]
        ax.set_yticks(range(len(targets)), targets)
        target_swatches(ax, targets, colours)
        ax.invert_yaxis()  # the first target on top, as in the tables
        ax.set_xlabel("errored cells")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # never over a bar
        ax.grid(axis="x", alpha=0.3)
    return fig


def error_kinds_svg(counts: dict[str, dict[str, int]], colours: Mapping[str, str]) -> str:
    """:func:`error_kinds_figure` as inline SVG."""
    return figure_svg(error_kinds_figure(counts, colours), "errors")


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
