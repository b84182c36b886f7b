"""Name each point of a scatter panel with a label that sits on no other label and no other point.

Greedy placement in display space, after the figure's layout is fixed: each
point, most important first, takes the first candidate spot around it (right,
left, the diagonals, above, below; then the same further out) whose text box
stays inside the axes and overlaps no marker and no label placed before it.
Labels pushed away from their point get a thin leader line. When nothing is
free (many targets on one spot), the spot with the least overlap is taken, so
every point is still named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

__all__ = ["LabelledPoint", "place_labels"]

# Directions (x, y) tried in order: beside the point reads best, then diagonals, then above/below.
_DIRECTIONS = ((1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1))
_DISTANCES_PT = (2.0, 7.0, 13.0, 20.0, 28.0, 38.0)  # beyond the marker's edge
_LEADER_FROM_PT = 7.0  # from this distance on, a line joins the label to its point
_AIR_PT = 1.0  # labels keep this far from each other, from markers and lines
_OUTSIDE_PENALTY = 50.0  # an area outside the axes costs this many times an overlap with a label


@dataclass(frozen=True)
class LabelledPoint:
    """A drawn point (data coordinates), its label, the marker's radius in points, and its rank (0 first)."""

    x: float
    y: float
    text: str
    radius_pt: float
    rank: int = 0


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def place_labels(ax: Any, points: Sequence[LabelledPoint], renderer: Any, *,
                 lines: Sequence[Sequence[tuple[float, float]]] = (), fontsize: float = 7.0,
                 colour: str = "#1d2330") -> list[Any]:
    """Annotate every point of ``ax``; return the annotations (kept out of the layout, inside the axes).

    ``renderer`` measures text: the figure's layout must already be done
    (``fig.draw_without_rendering()``) so data and display coordinates stay fixed.
    ``lines`` are polylines in data coordinates that labels keep off too (a
    frontier drawn as steps: each segment is horizontal or vertical, so its box is exact).
    """
    from matplotlib.text import Text

    px_per_pt = ax.figure.dpi / 72.0
    frame = ax.bbox.extents
    anchors = ax.transData.transform([(p.x, p.y) for p in points]) if points else []
    markers = [_square(a, p.radius_pt * px_per_pt) for a, p in zip(anchors, points)]
    segments = [box for line in lines for box in _segment_boxes(ax.transData.transform(line), px_per_pt)]
    probe = Text(0, 0, "", fontsize=fontsize, parse_math=False)
    probe.set_figure(ax.figure)
    placed: list[Box] = []
    annotations = []
    for i in sorted(range(len(points)), key=lambda k: (points[k].rank, -anchors[k][1], anchors[k][0])):
        point, anchor = points[i], anchors[i]
        probe.set_text(point.text)
        extent = probe.get_window_extent(renderer)  # the box the drawn label will have, line height included
        others = markers[:i] + markers[i + 1:] + segments + placed
        air = _AIR_PT * px_per_pt
        best = min(_candidates(anchor, point.radius_pt * px_per_pt, extent.width, extent.height, px_per_pt),
                   key=lambda c: (_cost(_grown(c[0], air), others, frame), c[1]))
        box, _, (dx_pt, dy_pt), (ha, va), far = best
        placed.append(box)
        # A far label gets a thin line to its point, stopping at the marker's edge.
        leader = {"arrowstyle": "-", "color": "#8a8f99", "lw": 0.6, "shrinkA": 0, "shrinkB": point.radius_pt}
        annotations.append(ax.annotate(
            point.text, xy=(point.x, point.y), xytext=(dx_pt, dy_pt), textcoords="offset points", ha=ha,
            va=va, fontsize=fontsize, color=colour, annotation_clip=False, parse_math=False, in_layout=False,
            arrowprops=leader if far else None, zorder=5))
    return annotations


def _candidates(anchor: Sequence[float], radius: float, width: float, height: float,
                px_per_pt: float) -> list[tuple[Box, int, tuple[float, float], tuple[str, str], bool]]:
    """Every spot tried around one point, in order of preference: (box, order, offset in pt, alignment, far)."""
    out = []
    for distance_pt in _DISTANCES_PT:
        for ux, uy in _DIRECTIONS:
            diagonal = 0.7071 if ux and uy else 1.0
            reach = (radius + distance_pt * px_per_pt) * diagonal
            ox, oy = anchor[0] + ux * reach, anchor[1] + uy * reach
            x0 = ox if ux > 0 else (ox - width if ux < 0 else ox - width / 2)
            y0 = oy if uy > 0 else (oy - height if uy < 0 else oy - height / 2)
            alignment = ({1: "left", -1: "right", 0: "center"}[ux], {1: "bottom", -1: "top", 0: "center"}[uy])
            offset = ((ox - anchor[0]) / px_per_pt, (oy - anchor[1]) / px_per_pt)
            out.append(((x0, y0, x0 + width, y0 + height), len(out), offset, alignment,
                        distance_pt >= _LEADER_FROM_PT))
    return out


def _cost(box: Box, others: list[Box], frame: Sequence[float]) -> float:
    """Overlap (px²) with markers and placed labels, plus a heavy price for any part outside the axes."""
    inside = _overlap(box, tuple(frame))
    outside = (box[2] - box[0]) * (box[3] - box[1]) - inside
    return sum(_overlap(box, other) for other in others) + _OUTSIDE_PENALTY * outside


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _grown(box: Box, by: float) -> Box:
    return (box[0] - by, box[1] - by, box[2] + by, box[3] + by)


def _segment_boxes(vertices: Any, px_per_pt: float) -> list[Box]:
    half = 1.0 * px_per_pt  # the line's width and a little air
    return [(min(a[0], b[0]) - half, min(a[1], b[1]) - half, max(a[0], b[0]) + half, max(a[1], b[1]) + half)
            for a, b in pairwise(vertices)]


def _square(centre: Sequence[float], half: float) -> Box:
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
