"""The report's charts read as a user needs them: named points, one colour per target, money ticks apart.

Each test reproduces what a screenshot of the report showed (issue 15): points
that said nothing about which target they were, a target blue in one chart and
an error kind blue in the next, an empty TTFT panel for a run that never
streamed, tick labels running into each other on a linear cost axis, and a
baseline identical to the run drawn as a table of zeros.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evalkit.report import build_report, charts
from evalkit.report.chart_style import PALETTE, money_label, short_labels, target_colours
from evalkit.runner import RunOptions
from evalkit.runner.schema import result_schema
from tests.report.test_report import Page
from tests.runner.test_run import run, small_suite

TEN = [f"{vendor}:model-{size}" for vendor, size in
       zip(["openai", "anthropic", "gemini", "openai", "anthropic", "gemini", "openai", "mistral", "groq", "openai"],
           ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])]


def frontier_points(costs: dict[str, dict[str, float]], quality: dict[str, dict[str, float]]) -> pl.DataFrame:
    """The frame ``cost_quality_figure`` draws: per task type and target, cost per item, quality, frontier."""
    rows = []
    for task, per_target in costs.items():
        for target, cost in per_target.items():
            q = quality[task][target]
            dominated = any(c <= cost and quality[task][o] >= q and (c, quality[task][o]) != (cost, q)
                            for o, c in per_target.items())
            rows.append({"task_type": task, "target": target, "cost_per_item": cost, "quality": q,
                         "on_frontier": not dominated})
    return pl.DataFrame(rows)


def drawn(fig: Any) -> Any:
    """Lay the figure out and draw it as writing it would; return the renderer that measured the text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def overlaps(a: Any, b: Any, gap: float = 0.0) -> bool:
    return a.x0 < b.x1 + gap and b.x0 < a.x1 + gap and a.y0 < b.y1 + gap and b.y0 < a.y1 + gap


def target_colour_of(fig: Any) -> dict[str, set[str]]:
    """Every colour each target's artists are drawn in (artists are labelled ``_target:<name>``)."""
    from matplotlib.colors import to_hex

    found: dict[str, set[str]] = {}
    for artist in fig.findobj(lambda a: str(a.get_label()).startswith("_target:")):
        face = artist.get_facecolor()
        colours = [face] if isinstance(face, tuple) else list(face)
        found.setdefault(artist.get_label().split(":", 1)[1], set()).update(to_hex(c) for c in colours)
    return found


# --- 1. every point is named, and the names do not sit on each other -----------------------------------------

def crowded_points() -> pl.DataFrame:
    """Ten targets in three panels: spread out, bunched in one corner, and four of them on one spot."""
    spread = {t: 10 ** (-5 + 3 * i / 9) for i, t in enumerate(TEN)}
    bunched = {t: 0.002 + 0.0001 * i for i, t in enumerate(TEN)}
    same_spot = {t: (0.0004 if i < 4 else 0.0001 * (i + 1)) for i, t in enumerate(TEN)}
    costs = {"code": spread, "math": bunched, "creative": same_spot}
    quality = {"code": {t: 0.3 + 0.07 * i for i, t in enumerate(TEN)},
               "math": {t: 0.9 + 0.01 * (i % 3) for i, t in enumerate(TEN)},
               "creative": {t: (0.8 if i < 4 else 0.2 + 0.05 * i) for i, t in enumerate(TEN)}}
    return frontier_points(costs, quality)


def test_every_target_is_named_on_the_cost_quality_chart_without_labels_piling_up() -> None:
    from matplotlib.text import Text

    points = crowded_points()
    colours = target_colours(TEN)
    fig = charts.cost_quality_figure(points, colours)
    renderer = drawn(fig)
    names = short_labels(TEN)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 3
    for ax in panels:
        labels = [t for t in ax.texts if t.get_text() in names.values()]
        assert sorted(t.get_text() for t in labels) == sorted(names.values()), f"{ax.get_title()}: every target named"
        boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text, not its leader line
        for (a, ta), (b, tb) in itertools.combinations(zip(boxes, labels), 2):
            assert not overlaps(a, b), f"{ax.get_title()}: {ta.get_text()!r} sits on {tb.get_text()!r}"
        frame = ax.bbox
        for box, text in zip(boxes, labels):
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 \
                and box.y1 <= frame.y1 + 1, f"{ax.get_title()}: {text.get_text()!r} leaves its panel"
    svg = charts.figure_svg(fig, "test")
    for name in names.values():
        assert svg.count(f">{name}</text>") == 3, f"{name} is named in each of the three panels of the SVG"


def test_point_labels_drop_the_vendor_only_when_the_name_stays_unique() -> None:
    assert short_labels(["openai:gpt-4o", "anthropic:claude", "azure:gpt-4o", "local"]) == {
        "openai:gpt-4o": "openai:gpt-4o", "anthropic:claude": "claude", "azure:gpt-4o": "azure:gpt-4o",
        "local": "local"}
    # A short label that would read as another target's full name is not used either.
    clash = short_labels(["x:a:b", "a:b", "c:b"])
    assert clash == {"x:a:b": "x:a:b", "a:b": "a:b", "c:b": "c:b"}
    assert len(set(short_labels(["claude", "anthropic:claude", "openai:gpt"]).values())) == 3


# --- 2. one colour per target, the same in every chart -------------------------------------------------------

def synthetic_run(dest: Path, targets: list[str], *, streamed: set[str] | frozenset[str] = frozenset(),
                  error_every: int = 7) -> Path:
    """A hand-made run (results part and a sparse manifest): every target answers 12 items, some fail."""
    tasks = ["code", "math", "creative"]
    rows = []
    for item, target in itertools.product(range(12), targets):
        k = targets.index(target)
        failed = (item + k) % error_every == 0
        rows.append({
            "run_id": "synthetic", "item_id": f"item-{item:03d}", "task_type": tasks[item % 3], "target": target,
            "repeat": 0, "status": "error" if failed else "ok",
            "error_kind": ["timeout", "rate_limit", "server"][(item + k) % 3] if failed else None,
            "latency_ms": 100.0 + 20 * k + item, "ttft_ms": 30.0 + k + item if target in streamed else None,
            "score": None if failed else ((item * 7 + k * 3) % 10) / 10, "output": "answer",
            "cost_usd": f"{0.00001 * (k + 1) * (1 + item % 4):.9f}", "input_tokens": 10, "output_tokens": 5,
            "tokens_exact": True, "n_attempts": 1})
    frame = pl.DataFrame(rows).with_columns((pl.col("score") >= 0.5).alias("passed"))
    schema = result_schema()
    frame = frame.with_columns(pl.lit(None).cast(t).alias(c) for c, t in schema.items() if c not in frame.columns)
    (dest / "results").mkdir(parents=True)
    frame.select(list(schema)).cast(schema).write_parquet(dest / "results" / "part-0000.parquet")
    (dest / "manifest.json").write_text(json.dumps({"run_id": dest.name}))
    return dest


def test_a_target_has_one_colour_in_every_chart_of_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = sorted(TEN)
    run_dir = synthetic_run(tmp_path / "ten", targets, streamed=set(targets[:5]))
    figures: dict[str, Any] = {}
    real = charts.figure_svg

    def keep(fig: Any, name: str) -> str:
        figures[name] = fig
        return real(fig, name)

    monkeypatch.setattr(charts, "figure_svg", keep)
    build_report(run_dir, tmp_path / "r.html", classifier=False)
    shown = {name: target_colour_of(fig) for name, fig in figures.items()}
    assert {"cost-quality", "latency", "errors"} <= {name for name, found in shown.items() if found}
    for target in targets:
        colours = {c for found in shown.values() for c in found.get(target, set())}
        charts_with_it = [name for name, found in shown.items() if target in found]
        assert len(charts_with_it) == 3, f"{target} is drawn in every target chart"
        assert len(colours) == 1, f"{target} is drawn in {colours} across {charts_with_it}"
    per_target = {target: next(iter(shown["latency"][target])) for target in targets}
    assert len(set(per_target.values())) == len(targets), "ten targets, ten colours"
    # Error kinds stack inside the bars: their colours must not be any target's.
    from matplotlib.colors import to_hex

    kinds = {to_hex(p.get_facecolor()) for p in figures["errors"].axes[0].patches}
    assert kinds and not kinds & set(per_target.values())


def test_target_colours_are_distinct_up_to_the_palette_and_do_not_depend_on_order() -> None:
    names = [f"vendor:m{i:02d}" for i in range(len(PALETTE))]
    colours = target_colours(names)
    assert len(set(colours.values())) == len(PALETTE)
    assert target_colours(reversed(names)) == colours == target_colours(names + names)


# --- 3. no empty TTFT panel when nothing streamed --------------------------------------------------------------

NO_TTFT = "No streamed calls in this run: time to first token is measured only with --stream."


@pytest.mark.parametrize("stream", [False, True])
def test_the_ttft_panel_is_drawn_only_when_calls_streamed(stream: bool, tmp_path: Path) -> None:
    result = run(tmp_path, small_suite(tmp_path, 1), options=RunOptions(concurrency=8, stream=stream))
    html = build_report(result.run_dir, tmp_path / "r.html", classifier=False).read_text()
    latency = html[html.index('<section id="latency">'):html.index('<section id="errors">')]
    text = " ".join("".join(Page(latency).text).split())
    if stream:
        assert NO_TTFT not in text and "TTFT (ms)" in latency
    else:
        assert NO_TTFT in text
        assert "TTFT" not in latency.split('class="chart"', 1)[1], "no TTFT panel, empty or not"
        assert "latency (ms)" in latency


def test_a_target_that_did_not_stream_says_so_on_its_row(tmp_path: Path) -> None:
    from evalkit.report import sections
    from evalkit.runner import results_df

    targets = ["openai:a", "openai:b", "openai:c"]
    run_dir = synthetic_run(tmp_path / "mixed", targets, streamed={"openai:b"})
    fig = charts.latency_figure(sections.latency_stats(results_df(run_dir)), target_colours(targets))
    latency, ttft = fig.axes[0], fig.axes[1]
    assert ttft.get_title().startswith("TTFT")
    assert sorted(t.get_text() for t in ttft.texts) == ["not streamed", "not streamed"]
    assert not latency.texts


# --- 4. tick labels on the cost axis stay apart --------------------------------------------------------------

COST_SCALES = {
    "tiny, linear": [0.00001, 0.000012, 0.000015, 0.00002, 0.000031],
    "tiny and close": [0.00001, 0.0000101, 0.0000103],
    "cents, linear": [0.0012, 0.004, 0.009, 0.019],
    "dollars, linear": [0.5, 1.25, 3.0, 8.0],
    "thousands, linear": [1200.0, 4000.0, 15000.0],
    "wide, log": [0.000001, 0.00003, 0.002, 0.09, 0.8],
    "one price": [0.0004],
}


@pytest.mark.parametrize("scale", list(COST_SCALES))
def test_cost_tick_labels_are_few_distinct_dollars_that_do_not_overlap(scale: str) -> None:
    costs = COST_SCALES[scale]
    targets = [f"openai:m{i}" for i in range(len(costs))]
    points = frontier_points({"code": dict(zip(targets, costs))},
                             {"code": {t: 0.2 + 0.15 * i for i, t in enumerate(targets)}})
    fig = charts.cost_quality_figure(points, target_colours(targets))
    renderer = drawn(fig)
    ax = fig.axes[0]
    low, high = sorted(ax.get_xlim())
    ticks = [(x, t) for x, t in zip(ax.get_xticks(), ax.get_xticklabels())
             if low <= x <= high and t.get_text()]
    labels = [t.get_text() for _, t in ticks]
    assert 1 <= len(labels) <= 6, labels
    assert len(set(labels)) == len(labels), f"labels are distinct: {labels}"
    assert all(re.fullmatch(r"\$[\d,]+(\.\d+)?", label) for label in labels), f"written-out dollars: {labels}"
    assert not ax.xaxis.get_offset_text().get_text(), "no '1e-5' offset beside the axis"
    boxes = [t.get_window_extent(renderer) for _, t in ticks]
    for (a, la), (b, lb) in itertools.combinations(zip(boxes, labels), 2):
        assert not overlaps(a, b, gap=2.0), f"{la} runs into {lb}"


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "$0"), (0.00001, "$0.00001"), (0.000025, "$0.000025"), (0.5, "$0.5"), (1.0, "$1"),
    (2.5, "$2.5"), (15000.0, "$15,000"), (-0.002, "-$0.002"), (0.30000000000000004, "$0.3"),
])
def test_money_tick_labels_are_compact_and_exact(value: float, text: str) -> None:
    assert money_label(value, 1e-12) == text


# --- 5. an identical baseline is one line, not a table of zeros ------------------------------------------------

def comparison_of(html: str) -> tuple[str, int]:
    section = html[html.index('<section id="comparison">'):]
    section = section[:section.index("</section>")]
    return " ".join("".join(Page(section).text).split()), section.count("<tbody>") and \
        section.split("<tbody>", 1)[1].count("<tr")


def test_a_baseline_identical_to_the_run_is_one_line(tmp_path: Path) -> None:
    targets = ["openai:a", "openai:b", "gemini:c"]
    current = synthetic_run(tmp_path / "current", targets)
    baseline = tmp_path / "baseline"
    shutil.copytree(current, baseline)
    (baseline / "manifest.json").write_text(json.dumps({"run_id": "baseline"}))
    text, rows = comparison_of(build_report(current, tmp_path / "r.html", baseline=baseline,
                                            classifier=False).read_text())
    assert rows == 0, "no table of +0.000 rows"
    assert "Baseline run baseline is identical to this run: all 9 task type × target rows have the same" in text


def test_identical_rows_collapse_into_one_line_and_the_changed_ones_stay(tmp_path: Path) -> None:
    targets = ["openai:a", "openai:b", "gemini:c"]
    current = synthetic_run(tmp_path / "current", targets)
    baseline = tmp_path / "baseline"
    shutil.copytree(current, baseline)
    part = baseline / "results" / "part-0000.parquet"
    frame = pl.read_parquet(part)
    # In the baseline, openai:b answered the math items worse: only those rows changed.
    worse = (pl.col("target") == "openai:b") & (pl.col("task_type") == "math")
    frame.with_columns(pl.when(worse).then(pl.col("score") / 2).otherwise(pl.col("score")).alias("score")
                       ).write_parquet(part)
    text, rows = comparison_of(build_report(current, tmp_path / "r.html", baseline=baseline,
                                            classifier=False).read_text())
    assert rows == 1, "only the row that changed is in the table"
    assert ("Identical in both runs (same quality, success, cost per item and p50 latency), left out of the table: "
            "gemini:c (all task types); openai:a (all task types); openai:b (code, creative).") in text
    assert "is identical to this run" not in text
