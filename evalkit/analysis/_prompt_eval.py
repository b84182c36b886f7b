"""The numbers of a cross-fitted replay: rows with paired intervals, the cost–quality curve, APGR/CPT/AIQ.

Every row (the router, its baselines) and every point of the router's curve is
a per-item vector of recorded scores and costs. One paired bootstrap over items
(:func:`evalkit.analysis._replay_stats.paired_bootstrap_means`) resamples all
of them with the same counts, so differences are paired, and the curve metrics
are recomputed on each resample for their intervals.

The curve metrics are RouteLLM's and RouterBench's (:mod:`evalkit.analysis.frontier`):
the weak end is the cheapest single target, the strong end the best single
target, and the x axis either the share of requests sent to the best target
(``axis="share"``, RouteLLM's "% calls to the strong model") or the cost
normalised between the two (``axis="cost"``). The random router (RouteLLM's:
the best target with probability x, else the cheapest) has PGR(x) = x on
either axis, so its APGR is 0.5 and its CPT(50 %) is 0.5 exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .frontier import aiq, apgr, cpt

__all__ = ["Line", "curve_metrics", "tabulate"]


@dataclass(frozen=True)
class Line:
    """One row of the comparison: per-item scores and costs (NaN: unpriced) and the share sent to the best."""

    role: str
    policy: str
    score: np.ndarray
    cost: np.ndarray
    share_best: float


def curve_metrics(x: np.ndarray, quality: np.ndarray, cost: np.ndarray, weak: tuple[float, float],
                  strong: tuple[float, float]) -> tuple[float | None, float | None, float | None]:
    """(APGR, CPT(50 %), AIQ) of curve points ``(x, quality, cost)``; ``weak``/``strong`` are (quality, cost)."""
    q_weak, c_weak = weak
    q_strong, c_strong = strong
    gap = q_strong - q_weak
    a = c = None
    if math.isfinite(gap) and gap > 0 and np.isfinite(x).all():
        keep = (x >= -1e-9) & (x <= 1 + 1e-9)  # points dearer than the best single target are outside the range
        xs, qs = np.clip(x[keep], 0.0, 1.0), quality[keep]
        a = apgr(xs, qs, q_weak, q_strong)
        c = cpt(xs, qs, q_weak, q_strong, 0.5)
    area = None
    if np.isfinite(cost).all() and math.isfinite(c_weak) and math.isfinite(c_strong) and c_strong > c_weak:
        area = aiq(cost, quality, (c_weak, c_strong))
    return a, c, area


def tabulate(lines: list[Line], choices: np.ndarray, values: np.ndarray, scores: np.ndarray, costs: np.ndarray,
             best: int, weak: str | None, strong: str, axis: str, n_boot: int, confidence: float,
             seed: int) -> tuple[Any, Any, dict[str, Any]]:
    """(rows frame, curve frame, metrics) for ``lines`` (the router first) and the curve ``choices`` (G × n)."""
    from ._replay_stats import paired_bootstrap_means

    items = np.arange(scores.shape[0])
    columns = [v for line in lines for v in (line.score, line.cost)]
    columns += [*scores[items, choices], *costs[items, choices], *(choices == best).astype(float)]
    samples, _ = paired_bootstrap_means(np.column_stack(columns), n_boot, seed)
    point = np.array([c.mean() for c in columns])
    layout = _Layout(len(lines), len(values), {line.role: i for i, line in enumerate(lines)}, weak is not None, axis)
    frame = _rows_frame(lines, point, samples, confidence)
    metrics = {"axis": axis, "weak": weak, "strong": strong, **_metrics(layout, point, samples, confidence)}
    return frame, _curve_frame(layout, values, point, samples, confidence), metrics


@dataclass(frozen=True)
class _Layout:
    """Where each number sits in the bootstrap's columns: two per line (score, cost), then the curve's
    qualities, costs and shares."""

    lines: int
    points: int
    roles: dict[str, int]
    has_weak: bool
    axis: str

    def curve(self, part: int) -> np.ndarray:
        return 2 * self.lines + part * self.points + np.arange(self.points)

    def end_index(self, role: str) -> int:
        return 2 * self.roles[role]

    def end(self, vector: np.ndarray, role: str) -> tuple[float, float]:
        if role not in self.roles:
            return np.nan, np.nan
        i = self.roles[role]
        return float(vector[2 * i]), float(vector[2 * i + 1])

    def metrics_of(self, vector: np.ndarray) -> tuple[float | None, float | None, float | None]:
        q_w, c_w = self.end(vector, "cheapest")
        q_s, c_s = self.end(vector, "best")
        quality, cost = vector[self.curve(0)], vector[self.curve(1)]
        if self.axis == "share":
            x = vector[self.curve(2)]
        else:
            x = (cost - c_w) / (c_s - c_w) if c_s != c_w else np.full(self.points, np.nan)
        return curve_metrics(np.asarray(x, float), quality, cost, (q_w, c_w), (q_s, c_s))


def _rows_frame(lines: list[Line], point: np.ndarray, samples: np.ndarray, confidence: float) -> Any:
    import polars as pl

    from ._replay_stats import interval

    rows = []
    for i, line in enumerate(lines):
        q, c = 2 * i, 2 * i + 1
        dq = interval(samples[:, 0] - samples[:, q], confidence) if i else (None, None)
        dc = interval(samples[:, 1] - samples[:, c], confidence) if i else (None, None)
        rows.append({
            "role": line.role, "policy": line.policy, "quality": float(point[q]),
            "quality_low": interval(samples[:, q], confidence)[0], "quality_high": interval(samples[:, q],
                                                                                            confidence)[1],
            "cost_per_request_usd": _finite(point[c]), "cost_low_usd": interval(samples[:, c], confidence)[0],
            "cost_high_usd": interval(samples[:, c], confidence)[1], "share_best": line.share_best,
            "quality_delta": float(point[0] - point[q]) if i else None, "quality_delta_low": dq[0],
            "quality_delta_high": dq[1], "cost_delta_usd": _finite(point[1] - point[c]) if i else None,
            "cost_delta_low_usd": dc[0], "cost_delta_high_usd": dc[1]})
    return pl.DataFrame(rows, schema={k: (pl.String if k in ("role", "policy") else pl.Float64) for k in rows[0]})


def _curve_frame(layout: _Layout, values: np.ndarray, point: np.ndarray, samples: np.ndarray,
                 confidence: float) -> Any:
    import polars as pl

    from ._replay_stats import interval

    bounds = [interval(samples[:, i], confidence) for i in layout.curve(0)]
    return pl.DataFrame({
        "value": values.astype(float), "quality": point[layout.curve(0)],
        "cost_per_request_usd": point[layout.curve(1)], "share_best": point[layout.curve(2)],
        "quality_low": [b[0] for b in bounds], "quality_high": [b[1] for b in bounds],
    }).with_columns(pl.col("cost_per_request_usd").fill_nan(None))


def _metrics(layout: _Layout, point: np.ndarray, samples: np.ndarray, confidence: float) -> dict[str, Any]:
    """APGR, CPT(50 %), AIQ at the point estimate and their bootstrap intervals, next to the random router's.

    A resample in which the best target is not better than the cheapest has no
    gap to recover: its APGR and CPT are undefined and left out (counted in
    ``undefined_resamples``). A resample whose curve never reaches 50 % PGR has
    CPT above 1: when that reaches the upper quantile, the upper bound is None.
    """
    from ._replay_stats import interval

    apgr_point, cpt_point, aiq_point = layout.metrics_of(point)
    per_sample = [layout.metrics_of(row) for row in samples]
    q_w, c_w = layout.end(point, "cheapest")
    q_s, c_s = layout.end(point, "best")
    aiq_random = _two_point_aiq(q_w, c_w, q_s, c_s)
    no_gap = np.array([row[layout.end_index("cheapest")] >= row[layout.end_index("best")] for row in samples]) \
        if layout.has_weak else np.ones(len(samples), bool)
    out: dict[str, Any] = {"apgr": apgr_point, "cpt50": cpt_point, "aiq": aiq_point, "apgr_random": 0.5,
                           "cpt50_random": 0.5, "aiq_random": aiq_random,
                           "undefined_resamples": int(no_gap.sum())}
    apgr_s = np.array([np.nan if s[0] is None else s[0] for s in per_sample], float)[~no_gap]
    cpt_s = np.array([np.inf if s[1] is None else s[1] for s in per_sample], float)[~no_gap]
    aiq_s = np.array([np.nan if s[2] is None else s[2] for s in per_sample], float)
    out["apgr_low"], out["apgr_high"] = interval(apgr_s, confidence) if apgr_s.size else (None, None)
    if cpt_s.size:
        alpha = (1 - confidence) / 2
        low, high = np.quantile(cpt_s, [alpha, 1 - alpha])
        out["cpt50_low"] = None if not np.isfinite(low) else float(low)
        out["cpt50_high"] = None if not np.isfinite(high) else float(high)
    else:
        out["cpt50_low"] = out["cpt50_high"] = None
    out["aiq_low"], out["aiq_high"] = interval(aiq_s, confidence)
    out["aiq_delta_low"] = out["aiq_delta_high"] = None
    if aiq_random is not None and not np.isnan(aiq_s).any():
        randoms = np.array([_two_point_aiq(*layout.end(r, "cheapest"), *layout.end(r, "best")) for r in samples])
        out["aiq_delta_low"], out["aiq_delta_high"] = interval(aiq_s - randoms, confidence)
    out["beats_random"] = None if out["apgr_low"] is None else bool(out["apgr_low"] > 0.5)
    return out


def _two_point_aiq(q_w: float, c_w: float, q_s: float, c_s: float) -> float | None:
    """AIQ of the random router: the chord from the cheapest to the best target."""
    if not np.isfinite([q_w, c_w, q_s, c_s]).all() or c_s <= c_w:
        return None
    return aiq([c_w, c_s], [q_w, q_s], (c_w, c_s))


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
