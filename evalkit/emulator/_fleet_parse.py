"""Fleet files to :class:`Fleet` values, with errors that name file, line and field.

Every problem raises :class:`~evalkit.errors.ConfigError` with ``field`` set to
the path of the bad value (``models[2].price.input``) and, for YAML, ``line``
set to where that value is written. Unknown keys are errors too, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NoReturn

from .._yaml import config_text, line_of, load_yaml
from ..errors import ConfigError
from ._specs import TASK_TYPES, WIRES, FaultPlan, Fleet, Latency, ModelSpec, Price, RateLimits, Spread
from .faults import MAX_SCRIPT_TIMES, PREFILL_MODES, canonical_kind, parse_steps

__all__ = ["parse_fleet", "parse_fleet_text"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MODEL_KEYS = {
    "name",
    "wires",
    "price",
    "context_window",
    "max_output_tokens",
    "latency",
    "output_tokens",
    "reasoning_tokens",
    "skills",
    "rate_limits",
    "faults",
    "script",
    "prefill",
}
_FAULT_PARAMETERS = frozenset({"retry_after_s", "stall_s", "ttft_s", "after_tokens"})
"""Keys of a model's ``faults:`` mapping that are parameters, not kinds with a rate."""
_REQUIRED_MODEL_KEYS = {"name", "wires", "price", "context_window", "latency", "skills"}


def parse_fleet_text(text: str | bytes, source: str | None = None, *, toml: bool = False) -> Fleet:
    """A fleet from YAML (default) or TOML text; ``source`` names the file in errors.

    YAML goes through evalkit's safe loader (:mod:`evalkit._yaml`: no alias
    bombs, recursion, absurd nesting or integers); TOML is refused past the
    same nesting. Bytes must be UTF-8.
    """
    if toml:
        return parse_fleet(_toml(text, source), source)
    doc = load_yaml(text, file=source)
    return parse_fleet(doc.data, source, doc.lines)


def _toml(text: str | bytes, source: str | None) -> Any:
    if isinstance(text, bytes):
        text = config_text(text, source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from None
    except RecursionError:
        raise ConfigError("not valid TOML: nested too deeply", file=source) from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise ConfigError(f"not valid TOML: {exc}".split("; use sys.")[0], file=source) from None


class _Fields:
    """Typed reads of raw values that fail with the value's path and line."""

    def __init__(self, source: str | None, lines: Mapping[str, int]) -> None:
        self.source, self.lines = source, lines

    def fail(self, path: str, message: str) -> NoReturn:
        # A missing key, or one below an alias: the line of the nearest ancestor written in the file.
        raise ConfigError(message, file=self.source, line=line_of(self.lines, path), field=path or None)

    def mapping(
        self, raw: Any, path: str, allowed: set[str], required: set[str] = frozenset()
    ) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            self.fail(path, f"must be a mapping, got {_type_name(raw)}")
        for key in raw:
            if str(key) not in allowed:
                self.fail(
                    _join(path, key), f"unknown key {str(key)!r}; allowed: {', '.join(sorted(allowed))}"
                )
        for key in sorted(required - set(map(str, raw))):
            self.fail(_join(path, key), "is required")
        return raw

    def number(
        self,
        raw: Any,
        path: str,
        *,
        low: float = 0.0,
        high: float | None = None,
        integer: bool = False,
        positive: bool = False,
    ) -> float:
        ok = isinstance(raw, int) if integer else isinstance(raw, (int, float))
        if isinstance(raw, bool) or not ok:
            self.fail(
                path, f"must be {'an integer' if integer else 'a number'}, got {_type_name(raw)} {raw!r}"
            )
        try:
            finite = math.isfinite(float(raw))
        except OverflowError:
            finite = False
        if not finite:
            self.fail(path, f"must be a finite number, got {raw!r}")
        if raw < low or (positive and raw <= 0) or (high is not None and raw > high):
            bound = (
                f"between {low:g} and {high:g}"
                if high is not None
                else ("> 0" if positive else f">= {low:g}")
            )
            self.fail(path, f"must be {bound}, got {raw!r}")
        return raw

    def decimal(self, raw: Any, path: str) -> Decimal:
        if isinstance(raw, str):
            try:
                raw = Decimal(raw.strip())
            except ArithmeticError:
                self.fail(path, f"must be a number of USD per 1M tokens, got {raw!r}")
            if not raw.is_finite() or raw < 0 or raw.adjusted() > 15:  # no price is 10^16 USD
                self.fail(path, f"must be a non-negative number below 10^16, got {raw}")
            return raw
        return Decimal(str(self.number(raw, path)))

    def spread(self, raw: Any, path: str, *, allow_zero: bool = False) -> Spread:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = {"median": raw}
        raw = self.mapping(raw, path, {"median", "spread"}, {"median"})
        median = self.number(raw["median"], f"{path}.median", positive=not allow_zero)
        spread = self.number(raw.get("spread", 0.0), f"{path}.spread", high=3.0)
        return Spread(float(median), float(spread))


def parse_fleet(data: Any, source: str | None = None, lines: Mapping[str, int] | None = None) -> Fleet:
    """A fleet from decoded YAML/TOML data (``{"version": 1, "models": [...]}``)."""
    f = _Fields(source, lines or {})
    root = f.mapping(data if data is not None else {}, "", {"version", "defaults", "models"}, {"models"})
    if root.get("version", 1) != 1:
        f.fail("version", f"must be 1 (the only fleet format so far), got {root.get('version')!r}")
    defaults = f.mapping(root.get("defaults", {}), "defaults", _MODEL_KEYS - {"name"})
    raw_models = root["models"]
    if not isinstance(raw_models, list) or not raw_models:
        f.fail("models", f"must be a non-empty list of models, got {_type_name(raw_models)}")
    models: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_models):
        path = f"models[{i}]"
        spec = _model(f, _with_defaults(f, raw, defaults, path), path)
        if spec.name in seen:
            f.fail(f"{path}.name", f"duplicate model name {spec.name!r} (also models[{seen[spec.name]}])")
        seen[spec.name] = i
        models.append(spec)
    return Fleet(tuple(models), source)


def _with_defaults(f: _Fields, raw: Any, defaults: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    raw = f.mapping(raw, path, _MODEL_KEYS)
    merged = dict(defaults)
    for key, value in raw.items():
        base = merged.get(key)
        # One level of merging: a model may override single fault rates or skills.
        merged[key] = {**base, **value} if isinstance(base, Mapping) and isinstance(value, Mapping) else value
    return merged


def _model(f: _Fields, raw: Mapping[str, Any], path: str) -> ModelSpec:
    f.mapping(raw, path, _MODEL_KEYS, _REQUIRED_MODEL_KEYS)
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        f.fail(f"{path}.name", f"must be a model name of letters, digits, '.', '_' and '-', got {name!r}")
    context_window = int(
        f.number(raw["context_window"], f"{path}.context_window", integer=True, positive=True)
    )
    max_output = raw.get("max_output_tokens", min(8192, context_window))
    faults = _faults(f, raw.get("faults", {}), f"{path}.faults", raw.get("script", []), f"{path}.script")
    prefill = raw.get("prefill", "accept")
    if prefill not in PREFILL_MODES:
        f.fail(f"{path}.prefill", f"must be one of {', '.join(PREFILL_MODES)}, got {prefill!r}")
    return ModelSpec(
        name=name,
        wires=_wires(f, raw["wires"], f"{path}.wires"),
        price=_price(f, raw["price"], f"{path}.price"),
        context_window=context_window,
        max_output_tokens=int(f.number(max_output, f"{path}.max_output_tokens", integer=True, positive=True)),
        latency=_latency(f, raw["latency"], f"{path}.latency"),
        output_tokens=f.spread(raw.get("output_tokens", 300), f"{path}.output_tokens"),
        reasoning_tokens=f.spread(
            raw.get("reasoning_tokens", 0), f"{path}.reasoning_tokens", allow_zero=True
        ),
        skills=_skills(f, raw["skills"], f"{path}.skills"),
        rate_limits=_rate_limits(f, raw.get("rate_limits", {}), f"{path}.rate_limits"),
        faults=faults,
        prefill=prefill,
    )


def _wires(f: _Fields, raw: Any, path: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        f.fail(path, f"must be a non-empty list of wire formats ({', '.join(WIRES)})")
    for i, wire in enumerate(raw):
        if wire not in WIRES:
            f.fail(f"{path}[{i}]", f"unknown wire format {wire!r}; known: {', '.join(WIRES)}")
    return tuple(dict.fromkeys(raw))


def _price(f: _Fields, raw: Any, path: str) -> Price:
    raw = f.mapping(raw, path, {"input", "cached_input", "output"}, {"input", "output"})
    price_in = f.decimal(raw["input"], f"{path}.input")
    cached = f.decimal(raw["cached_input"], f"{path}.cached_input") if "cached_input" in raw else price_in
    return Price(input=price_in, cached_input=cached, output=f.decimal(raw["output"], f"{path}.output"))


def _latency(f: _Fields, raw: Any, path: str) -> Latency:
    raw = f.mapping(
        raw, path, {"ttft_ms", "tokens_per_s", "prefill_tokens_per_s"}, {"ttft_ms", "tokens_per_s"}
    )
    prefill = raw.get("prefill_tokens_per_s")
    return Latency(
        ttft_ms=f.spread(raw["ttft_ms"], f"{path}.ttft_ms", allow_zero=True),
        tokens_per_s=f.spread(raw["tokens_per_s"], f"{path}.tokens_per_s"),
        prefill_tokens_per_s=None
        if prefill is None
        else float(f.number(prefill, f"{path}.prefill_tokens_per_s", positive=True)),
    )


def _skills(f: _Fields, raw: Any, path: str) -> dict[str, float]:
    raw = f.mapping(raw, path, set(TASK_TYPES) | {"default"})
    skills = {str(k): float(f.number(v, _join(path, k), high=1.0)) for k, v in raw.items()}
    if "default" not in skills:
        # An unlisted task type gets the model's average listed skill, not an invented number.
        skills["default"] = sum(skills.values()) / len(skills) if skills else 0.5
    return skills


def _rate_limits(f: _Fields, raw: Any, path: str) -> RateLimits:
    raw = f.mapping(raw, path, {"requests_per_minute", "tokens_per_minute", "enforce"})
    enforce = raw.get("enforce", False)
    if not isinstance(enforce, bool):
        f.fail(f"{path}.enforce", f"must be true or false, got {_type_name(enforce)} {enforce!r}")
    budgets = {
        key: int(f.number(raw.get(key, default), f"{path}.{key}", integer=True, positive=True))
        for key, default in (("requests_per_minute", 10_000), ("tokens_per_minute", 2_000_000))
    }
    return RateLimits(**budgets, enforce=enforce)


def _faults(f: _Fields, raw: Any, path: str, raw_script: Any, script_path: str) -> FaultPlan:
    if not isinstance(raw, Mapping):
        f.fail(path, f"must be a mapping of fault kind -> rate, got {_type_name(raw)}")
    rates: dict[str, float] = {}
    for key, value in raw.items():
        if key in _FAULT_PARAMETERS:
            continue
        try:
            kind = canonical_kind(key)
        except ValueError as exc:
            f.fail(_join(path, key), str(exc))
        if kind is not None:
            rates[kind] = rates.get(kind, 0.0) + float(f.number(value, _join(path, key), high=1.0))
    if sum(rates.values()) > 1.0 + 1e-9:
        f.fail(path, f"fault rates add up to {sum(rates.values()):g}, more than 1")
    if not isinstance(raw_script, list):
        f.fail(script_path, f"must be a list of steps, got {_type_name(raw_script)}")
    _check_script_numbers(f, raw_script, script_path)
    try:
        script = tuple(parse_steps(raw_script))
    except (TypeError, ValueError) as exc:
        f.fail(script_path, str(exc))
    after_tokens = raw.get("after_tokens")
    return FaultPlan(
        rates=rates,
        retry_after_s=float(f.number(raw.get("retry_after_s", 1.0), f"{path}.retry_after_s")),
        stall_s=float(f.number(raw.get("stall_s", 30.0), f"{path}.stall_s", positive=True)),
        script=script,
        ttft_s=float(f.number(raw.get("ttft_s", 30.0), f"{path}.ttft_s", positive=True)),
        after_tokens=None if after_tokens is None else int(
            f.number(after_tokens, f"{path}.after_tokens", integer=True)
        ),
    )


def _check_script_numbers(f: _Fields, raw_script: list[Any], path: str) -> None:
    """Locate bad numbers in script steps: NaN, infinity, a ``times`` that would expand to millions."""
    for i, step in enumerate(raw_script):
        if not isinstance(step, Mapping):
            continue
        for key in ("retry_after", "retry_after_s", "stall_s", "ttft_s"):
            if step.get(key) is not None:
                f.number(step[key], f"{path}[{i}].{key}")
        if step.get("for_s") is not None:
            f.number(step["for_s"], f"{path}[{i}].for_s", positive=True)
        if step.get("after_tokens") is not None:
            f.number(step["after_tokens"], f"{path}[{i}].after_tokens", integer=True)
        if step.get("prefill") is not None and step["prefill"] not in PREFILL_MODES:
            f.fail(f"{path}[{i}].prefill", f"must be one of {', '.join(PREFILL_MODES)}, got {step['prefill']!r}")
        if "times" in step:
            f.number(step["times"], f"{path}[{i}].times", integer=True, positive=True, high=MAX_SCRIPT_TIMES)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)
