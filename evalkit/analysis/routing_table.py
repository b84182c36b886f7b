"""``RoutingTable``: what :func:`~evalkit.analysis.recommend` decided, with the evidence for every row.

It prints (:meth:`RoutingTable.render`), becomes a polars frame
(:meth:`RoutingTable.to_frame`) and becomes the YAML routing config that
``evalkit.Router.from_config`` loads unchanged (:meth:`RoutingTable.to_config`,
:meth:`RoutingTable.to_yaml`): a ``task`` router whose routes are ``fallback``
nodes of the recommended chains, the best overall chain as its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ALL_TASKS", "Constraints", "RoutingRow", "RoutingTable"]

ALL_TASKS = "*"
"""The task type of the default row: every task type pooled."""


@dataclass(frozen=True)
class Constraints:
    """The bar a target must meet: quality lower bound, SLOs and budget."""

    min_quality: float = 0.8
    max_p95_latency_ms: float | None = None
    min_success: float = 0.95
    budget_per_1k_requests: Decimal | None = None
    metric: str = "passed"
    confidence: float = 0.95
    fallback_length: int = 2

    def describe(self) -> str:
        """One line, as printed above the table and in the YAML header."""
        parts = [f"quality LCB ({self.confidence:.0%}, {self.metric}) >= {self.min_quality:.2f}",
                 f"success >= {self.min_success:.0%}"]
        if self.max_p95_latency_ms is not None:
            parts.append(f"p95 <= {_ms(self.max_p95_latency_ms)}")
        if self.budget_per_1k_requests is not None:
            parts.append(f"<= ${self.budget_per_1k_requests:.2f} per 1k requests")
        return "; ".join(parts)


@dataclass(frozen=True)
class RoutingRow:
    """One task type's recommendation and the evidence behind it (numbers are the primary's)."""

    task_type: str
    target: str
    fallbacks: tuple[str, ...]
    meets_bar: bool
    n: int
    quality: float | None
    quality_low: float | None
    quality_high: float | None
    success_rate: float
    p95_latency_ms: float | None
    cost_per_success: Decimal | None
    """USD per passing cell; ``None`` when unpriced or nothing passed."""
    cost_per_1k_requests: Decimal | None
    max_input_tokens: int | None
    """The task's largest prompt, which every target in the chain must hold."""
    rejected: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Every other target → why it is not the primary."""
    warning: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def chain(self) -> tuple[str, ...]:
        """The primary followed by its fallbacks."""
        return (self.target, *self.fallbacks)


@dataclass(frozen=True)
class RoutingTable:
    """Per task type, the recommended chain; ``default`` serves task types with no row."""

    rows: tuple[RoutingRow, ...]
    default: RoutingRow
    constraints: Constraints
    run_id: str | None = None
    context_windows: Mapping[str, int] = field(default_factory=dict, hash=False)
    classifier: Any = field(default=None, hash=False, compare=False)
    """The learned task classifier (:class:`~evalkit.router.classifier.LearnedClassifier`) for
    requests without a task type; ``None``: the seed's keyword rules (``classifier_note`` says why)."""
    classifier_report: Any = field(default=None, hash=False, compare=False)
    """Its cross-validated :class:`~evalkit.analysis.classifier_training.ClassifierReport`."""
    classifier_note: str | None = None

    def row(self, task_type: str) -> RoutingRow:
        """The row of ``task_type`` (``"*"``: the default row)."""
        if task_type == ALL_TASKS:
            return self.default
        for row in self.rows:
            if row.task_type == task_type:
                return row
        raise KeyError(task_type)

    @property
    def warnings(self) -> tuple[str, ...]:
        """One warning per task type where no target meets the bar."""
        return tuple(r.warning for r in (*self.rows, self.default) if r.warning)

    def to_frame(self) -> Any:
        """A polars DataFrame, one row per task type and the default row (``task_type == "*"``) last."""
        import polars as pl

        money = pl.Decimal(38, 12)
        records = [{
            **{k: getattr(row, k) for k in ("task_type", "target", "meets_bar", "n", "quality", "quality_low",
                                            "quality_high", "success_rate", "p95_latency_ms", "cost_per_success",
                                            "cost_per_1k_requests", "max_input_tokens", "warning")},
            "fallbacks": list(row.fallbacks),
            "rejected": [{"target": t, "reason": r} for t, r in row.rejected.items()],
            "notes": list(row.notes),
        } for row in (*self.rows, self.default)]
        schema = {
            "task_type": pl.String, "target": pl.String, "fallbacks": pl.List(pl.String),
            "meets_bar": pl.Boolean, "n": pl.Int64, "quality": pl.Float64, "quality_low": pl.Float64,
            "quality_high": pl.Float64, "success_rate": pl.Float64, "p95_latency_ms": pl.Float64,
            "cost_per_success": money, "cost_per_1k_requests": money, "max_input_tokens": pl.Int64,
            "rejected": pl.List(pl.Struct({"target": pl.String, "reason": pl.String})),
            "warning": pl.String, "notes": pl.List(pl.String),
        }
        return pl.DataFrame(records, schema=schema)

    def render(self) -> Any:
        """A rich Table: the chain, its evidence and why the other targets were not chosen."""
        from rich.table import Table

        title = "Recommended routing" + (f" (run {self.run_id})" if self.run_id else "")
        out = Table(title=title, caption=f"bar: {self.constraints.describe()}", show_lines=True)
        for name, justify in (("task type", "left"), ("route", "left"), ("n", "right"),
                              ("quality [CI]", "right"), ("success", "right"), ("p95", "right"),
                              ("$ / success", "right"), ("why not the others", "left")):
            out.add_column(name, justify=justify, overflow="fold")
        for row in (*self.rows, self.default):
            route = " → ".join(row.chain)
            if row.warning:
                route = f"[yellow]⚠ {route}\nbelow the bar[/yellow]"
            out.add_row("(default)" if row.task_type == ALL_TASKS else row.task_type, route, str(row.n),
                        _quality(row), f"{row.success_rate:.0%}", _ms(row.p95_latency_ms), _usd(row),
                        "\n".join(f"{t}: {r}" for t, r in row.rejected.items()))
        return out

    def to_config(self, targets: Mapping[str, Mapping[str, Any]] | None = None, *,
                  retry: Mapping[str, Any] | None = None, classifier_file: str | None = None) -> dict[str, Any]:
        """The YAML routing config (as a dict) that ``Router.from_config`` loads unchanged.

        ``targets`` says how to reach each target: fields of a config target
        (``model``, ``base_url``, ``base_url_env``, ``api_key_env``, ``limits``…).
        Real providers need nothing (``model: <target>``, key from the vendor's
        usual environment variable); ``emulator:`` targets and routers must be
        given a ``model``. Known context windows are written in. Keys are never
        inlined: an ``api_key`` field is refused. ``retry`` goes on every chain.
        ``classifier_file`` names the learned classifier's file (relative to the
        YAML; :meth:`write` puts it there); without one the keyword rules classify.
        """
        given = dict(targets or {})
        names = dict.fromkeys(t for row in (*self.rows, self.default) for t in row.chain)
        specs = {name: _target_spec(name, given.get(name), self.context_windows.get(name)) for name in names}

        def chain(row: RoutingRow) -> dict[str, Any]:
            node: dict[str, Any] = {"type": "fallback", "targets": list(row.chain)}
            if retry:
                node["retry"] = dict(retry)
            return node

        classifier: Any = {"file": classifier_file} if classifier_file else "keywords"
        return {
            "version": 1,
            "targets": specs,
            "router": {"type": "task", "classifier": classifier,
                       "routes": {row.task_type: chain(row) for row in self.rows}, "default": chain(self.default)},
        }

    def to_yaml(self, targets: Mapping[str, Mapping[str, Any]] | None = None, *,
                retry: Mapping[str, Any] | None = None, classifier_file: str | None = None) -> str:
        """:meth:`to_config` as YAML text, headed by a comment that summarises the evidence."""
        import yaml

        config = self.to_config(targets, retry=retry, classifier_file=classifier_file)
        body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        return self._header(learned=classifier_file is not None) + body

    def write(self, path: str | Path, targets: Mapping[str, Mapping[str, Any]] | None = None, *,
              retry: Mapping[str, Any] | None = None, preface: str = "") -> tuple[Path, ...]:
        """Write the routing YAML to ``path`` and the learned classifier beside it; the paths written.

        The classifier goes to ``<stem>.classifier.json`` and ``.npz`` next to
        the YAML, which names it relatively, so the three files move together.
        The config is rendered (and checked) before anything is written;
        ``preface`` (comment lines) goes above the YAML's own header.
        """
        path = Path(path)
        name = f"{path.stem}.classifier.json" if self.classifier is not None else None
        text = preface + self.to_yaml(targets, retry=retry, classifier_file=name)
        written: list[Path] = []
        if name is not None:
            json_path = self.classifier.save(path.with_name(name))
            written += [json_path, json_path.with_suffix(".npz")]
        path.write_text(text, encoding="utf-8")
        return (path, *written)

    def _header(self, *, learned: bool = False) -> str:
        source = f" from run {self.run_id}" if self.run_id else ""
        lines = [f"evalkit routing config, recommended{source}",
                 f"bar: {self.constraints.describe()}",
                 "task type: chain | n | quality [CI] | success | p95 | $/success"]
        for row in (*self.rows, self.default):
            name = "(default)" if row.task_type == ALL_TASKS else row.task_type
            lines.append(f"  {name}: {' -> '.join(row.chain)} | {row.n} | {_quality(row)} | "
                         f"{row.success_rate:.0%} | {_ms(row.p95_latency_ms)} | {_usd(row)}")
        lines += _classifier_lines(self.classifier_report if learned else None, self.classifier_note)
        lines += [f"WARNING: {w}" for w in self.warnings]
        lines.append("load: evalkit.Router.from_config(path); API keys come from environment variables only")
        return "".join(f"# {line}\n" for line in lines)


def _classifier_lines(report: Any, note: str | None) -> list[str]:
    """The header's account of how unlabelled requests are classified, with the classifier's evidence."""
    if report is None:
        return [f"unlabelled requests: the keyword rules classify them{f' ({note})' if note else ''}"]
    lines = ["unlabelled requests: the learned classifier classifies them (" + report.to_dict()["method"] + "):",
             f"  accuracy {report.accuracy:.1%}, macro accuracy {report.macro_accuracy:.1%}; below confidence "
             f"{report.abstain_below:.2f} a request takes the default route ({1 - report.coverage:.1%} of items)"]
    lines += [f"  {label}: precision {'—' if s.precision is None else f'{s.precision:.1%}'}, recall {s.recall:.1%}, "
              f"n {s.support}" for label, s in report.per_label.items()]
    lines.append("  confusion (rows true, columns predicted, order as above): "
                 + " / ".join(" ".join(str(v) for v in row) for row in report.confusion))
    return lines


def _target_spec(name: str, given: Mapping[str, Any] | None, window: int | None) -> dict[str, Any]:
    from ..providers.vendors import VENDORS

    spec = dict(given or {})
    if "api_key" in spec:
        raise ValueError(f"{name}: keys never go in configs; name an environment variable in api_key_env")
    spec.setdefault("model", name)
    provider, sep, _ = str(spec["model"]).partition(":")
    if not sep or provider not in VENDORS:
        raise ValueError(f"{name} is not provider:model; say how to reach it, e.g. "
                         f"targets={{{name!r}: {{'model': 'openai:<model>', 'base_url': ..., 'api_key_env': ...}}}}")
    if window is not None:
        spec.setdefault("context_window", int(window))
    return {"model": spec.pop("model"), **spec}


def _quality(row: RoutingRow) -> str:
    if row.quality is None:
        return "—"
    if row.quality_low is None or row.quality_high is None:
        return f"{row.quality:.2f}"
    return f"{row.quality:.2f} [{row.quality_low:.2f}, {row.quality_high:.2f}]"


def _usd(row: RoutingRow) -> str:
    if row.cost_per_success is not None:
        return f"${Decimal(f'{float(row.cost_per_success):.3g}'):f}"
    return "unpriced" if row.cost_per_1k_requests is None else "— (no passes)"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.3g} s" if value >= 1000 else f"{value:,.0f} ms"
