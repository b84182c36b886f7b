"""The per-prompt router's cost–quality curve against its baselines, as a matplotlib ``Figure`` (no pyplot)."""

from __future__ import annotations

from typing import Any

__all__ = ["curve_figure"]

_MARKERS = {"best": "s", "cheapest": "v", "random": "x", "oracle": "*", "task_table": "D", "router": "o"}


def curve_figure(report: Any, *, title: str | None = None) -> Any:
    """Cost per request (or the share sent to the best target, when unpriced) against quality.

    The router's curve is its cross-fitted quality at each rule value, with its
    bootstrap band; baselines are points; the calibrated router is the ringed
    point. A ``Figure`` built directly, so it never touches pyplot's global state.
    """
    from matplotlib.figure import Figure

    curve = report.curve.sort("value")
    priced = curve.get_column("cost_per_request_usd").null_count() == 0 and \
        report.rows.get_column("cost_per_request_usd").null_count() == 0
    x_name, label = ("cost_per_request_usd", "USD per request") if priced else \
        ("share_best", "share of requests sent to the best single target")
    order = curve.sort(x_name)
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    xs = order.get_column(x_name).to_numpy()
    ax.plot(xs, order.get_column("quality").to_numpy(), "-", color="#1f77b4", lw=1.5,
            label="per-prompt router (cross-fitted, rule swept)")
    low, high = order.get_column("quality_low").to_numpy(), order.get_column("quality_high").to_numpy()
    ax.fill_between(xs, low, high, color="#1f77b4", alpha=0.15, lw=0)
    for row in report.rows.iter_rows(named=True):
        x = row["cost_per_request_usd"] if priced else row["share_best"]
        if x is None:
            continue
        is_router = row["role"] == "router"
        ax.scatter([x], [row["quality"]], marker=_MARKERS.get(row["role"], "o"), s=70 if is_router else 45,
                   facecolors="none" if is_router else None, edgecolors="black" if is_router else None,
                   zorder=4, label=f"{row['role']}: {row['policy'][:40]}")
    ends = {r["role"]: r for r in report.rows.iter_rows(named=True) if r["role"] in ("cheapest", "best")}
    if len(ends) == 2:  # RouteLLM's random router: every mix of the two ends lies on this chord
        import numpy as np

        xs = [ends[k]["cost_per_request_usd" if priced else "share_best"] for k in ("cheapest", "best")]
        if None not in xs:
            mix = np.linspace(0.0, 1.0, 64)  # sampled: the chord is straight in cost, not on a log axis
            ax.plot(xs[0] + mix * (xs[1] - xs[0]),
                    ends["cheapest"]["quality"] + mix * (ends["best"]["quality"] - ends["cheapest"]["quality"]),
                    "--", color="#888888", lw=1, label="random router (cheapest ↔ best)")
    if priced:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("quality (mean score)")
    m = report.metrics
    apgr = "—" if m.get("apgr") is None else f"{m['apgr']:.3f}"
    ax.set_title(title or f"APGR {apgr} (random 0.5), {report.n_items} items, {report.folds}-fold cross-fitted",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.legend(fontsize=7, loc="outside lower center", ncols=2, frameon=False)
    return fig
