"""``build_report``: one self-contained HTML file for a recorded run.

The page carries its CSS, its JavaScript and its charts (inline SVG) so it
opens anywhere — mailed, attached to a ticket, offline — and fetches nothing.
Jinja2 autoescapes everything; only the SVG our own code produced is marked
safe, so prompts and model outputs always appear as text.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["build_report", "render_html"]

DEFAULT_MAX_DRILLDOWN = 2000


def build_report(run_dir: str | Path, output: str | Path | None = None, *, baseline: str | Path | None = None,
                 max_drilldown: int = DEFAULT_MAX_DRILLDOWN, classifier: bool = True,
                 prompt_router: bool = False) -> Path:
    """Write the HTML report of ``run_dir`` and return its path.

    ``output`` defaults to ``<run_dir>/report.html``. ``baseline`` (another run
    directory) adds a comparison section. ``max_drilldown`` caps the cells
    shown in the item drill-down (sampled by request when the run is larger).
    ``classifier`` trains the task classifier on the run's prompts for its
    section (about 3.5 s for 300 items); ``prompt_router`` adds the per-prompt
    router's cross-fitted curve against its baselines (about 5 s more). See
    :mod:`evalkit.report.learned`.
    """
    run_dir = Path(run_dir)
    out = Path(output) if output is not None else run_dir / "report.html"
    html = render_html(run_dir, baseline=baseline, max_drilldown=max_drilldown, classifier=classifier,
                       prompt_router=prompt_router)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def render_html(run_dir: str | Path, *, baseline: str | Path | None = None,
                max_drilldown: int = DEFAULT_MAX_DRILLDOWN, classifier: bool = True,
                prompt_router: bool = False) -> str:
    """The report as an HTML string (what :func:`build_report` writes)."""
    from markupsafe import Markup

    from ..analysis import pareto_frontier, summary_df
    from ..runner import results_df
    from . import charts, compare, drilldown, learned, sections

    run_dir = Path(run_dir)
    results = results_df(run_dir, exact_money=True)
    manifest = sections.read_manifest(run_dir)
    if not manifest and not results.height:
        from ..errors import ConfigError

        raise ConfigError("not a run directory (no manifest.json and no results)", file=str(run_dir),
                          field="run_dir")
    summary = summary_df(results)
    targets = sorted(results.get_column("target").unique().to_list())
    dataset, dataset_problem = drilldown.run_dataset(manifest)
    prompts, prompt_note = drilldown.prompts_of(dataset, dataset_problem)
    emulated = sections.emulated_targets_of(run_dir)  # priced and sized by the fleet the run used
    routing = sections.routing(results, emulated)
    ctx: dict[str, Any] = {
        "header": sections.header(manifest, results, run_dir),
        "leaderboard": sections.leaderboard(summary),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "routing": routing,
        "classifier": learned.task_classifier(dataset, dataset_problem, manifest, sections.routed_tasks(routing))
        if classifier else {"absent": learned.NOT_ASKED},
        "prompt_router": learned.prompt_router(run_dir, results, dict(emulated.windows))
        if prompt_router else None,
        "drill": drilldown.drilldown(results, prompts, max_drilldown),
        "prompt_note": prompt_note,
        "baseline": None,
    }
    if results.height:
        from .chart_style import target_colours

        # One target->colour mapping for the whole page: every chart colours a target the same way.
        colours = target_colours(targets)
        # Our own SVG, generated from numbers (target names are escaped by matplotlib's writer).
        ctx["cost_quality_svg"] = Markup(charts.cost_quality_svg(pareto_frontier(summary), colours))
        latency = sections.latency_stats(results)
        ctx["latency_svg"] = Markup(charts.latency_svg(latency, colours))
        ctx["streamed"] = charts.streamed_targets(latency)
        errors = sections.error_counts(results)
        ctx["errors"] = errors
        ctx["error_svg"] = Markup(charts.error_kinds_svg(errors, colours)) if errors else None
    if baseline is not None:
        base_dir = Path(baseline)
        base_results = results_df(base_dir, exact_money=True)
        ctx["baseline"] = {
            "run_id": sections.read_manifest(base_dir).get("run_id") or base_dir.name,
            **compare.collapse_identical(compare.comparison(results, base_results, summary,
                                                            summary_df(base_results))),
        }
    return _environment().get_template("report.html.j2").render(**ctx)


def _environment() -> Any:
    """Jinja2 with autoescape ON for every template, templates read from the package."""
    from importlib.resources import files

    import jinja2

    def load(name: str) -> str:
        return (files("evalkit.report") / "templates" / name).read_text(encoding="utf-8")

    env = jinja2.Environment(loader=jinja2.FunctionLoader(load), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, usd=_usd, ms=_ms, num=_num, sortkey=_sortkey, signed=_signed)
    return env


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct(value: Any, digits: int = 0) -> str:
    return "—" if _missing(value) else f"{float(value):.{digits}%}"


def _usd(value: Any) -> str:
    if _missing(value):
        return "—"
    value = float(value)
    sign, value = ("-" if value < 0 else ""), abs(value)
    if value >= 1 or value == 0:
        return f"{sign}${value:,.2f}"
    # Per-item costs are often fractions of a cent: 3 significant digits, written out ($0.0000425, not
    # $4.25e-05), because readers compare these by eye down a column.
    value = float(f"{value:.3g}")  # round first: 0.0009996 is $0.00100, not $0.001000
    if value >= 1:
        return f"{sign}${value:,.2f}"
    decimals = min(12, 2 - math.floor(math.log10(value)))
    return f"{sign}${value:.{decimals}f}"


def _ms(value: Any) -> str:
    return "—" if _missing(value) else f"{float(value):,.0f} ms"


def _num(value: Any, digits: int = 2) -> str:
    return "—" if _missing(value) else f"{float(value):.{digits}f}"


def _signed(value: Any, digits: int = 3) -> str:
    return "—" if _missing(value) else f"{float(value):+.{digits}f}"


def _sortkey(value: Any) -> str:
    """What the sortable table sorts on: the raw number (empty sorts last), or the text."""
    if _missing(value):
        return ""
    return repr(float(value)) if isinstance(value, (int, float)) or hasattr(value, "as_tuple") else str(value)
