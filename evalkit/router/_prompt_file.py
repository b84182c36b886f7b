"""Reading a per-prompt router's files, checking every field (see :mod:`evalkit.router.prompt`).

The model file is data from outside, read like the task classifier's
(:mod:`evalkit.router._classifier_file`, whose field checks are reused): each
field is checked for type and range, the weights file must be a plain name
beside the JSON with the recorded sha256, its arrays are read with
``allow_pickle=False`` and checked for shape, range and finiteness. The first
problem is a :class:`~evalkit.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._classifier_file import feature_spec
from ._model_files import Where, kind_of, read_header, read_weights

if TYPE_CHECKING:
    from .prompt import RoutingRule

__all__ = ["read_prompt_model"]

_ARRAYS = ("rows", "weights", "bias", "dense_weights")


def read_prompt_model(path: Path, fmt: str, version: int) -> dict[str, Any]:
    """The keyword arguments of ``PromptModel`` from the model file at ``path``."""
    from .prompt import DENSE_FEATURES

    doc, where = read_header(path, "per-prompt router", fmt, version)
    names, costs, scale, shift = _targets(where, doc.get("targets"))
    spec = feature_spec(where, where.mapping(doc, "features"))
    dense = where.mapping(doc, "dense")
    if dense.get("names") != list(DENSE_FEATURES):
        raise where.fail("dense.names", f"this evalkit computes {list(DENSE_FEATURES)!r}, the file says "
                                        f"{dense.get('names')!r}")
    mean = _numbers(where, dense.get("mean"), "dense.mean", len(DENSE_FEATURES))
    spread = _numbers(where, dense.get("scale"), "dense.scale", len(DENSE_FEATURES), positive=True)
    rule = _rule(where, where.mapping(doc, "rule"))
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, dict):
        raise where.fail("metrics", f"expected a mapping, got {kind_of(metrics)}")
    arrays = _weights(where, where.mapping(doc, "weights"), len(names), len(DENSE_FEATURES), spec.hash_bits)
    return {"targets": names, "costs": costs, "spec": spec, **arrays, "dense_mean": mean, "dense_scale": spread,
            "platt_scale": scale, "platt_shift": shift, "rule": rule, "metrics": metrics}


def _targets(where: Where, targets: Any) -> tuple[list[str], list[Decimal | None], list[float], list[float]]:
    if not isinstance(targets, list) or not targets:
        raise where.fail("targets", f"expected a list of one or more targets, got {kind_of(targets)}")
    names: list[str] = []
    costs: list[Decimal | None] = []
    scale: list[float] = []
    shift: list[float] = []
    for i, entry in enumerate(targets):
        here = f"targets[{i}]"
        if not isinstance(entry, dict):
            raise where.fail(here, f"expected a mapping, got {kind_of(entry)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise where.fail(f"{here}.name", f"expected a target name not used before, got {kind_of(name)}")
        names.append(name)
        costs.append(_cost(where, entry.get("cost_per_request_usd"), f"{here}.cost_per_request_usd"))
        calibration = entry.get("calibration")
        if not isinstance(calibration, dict) or calibration.get("method") != "platt":
            raise where.fail(f"{here}.calibration.method", "expected a mapping with method 'platt'")
        scale.append(where.number(calibration, "scale", f"{here}.calibration.scale"))
        shift.append(where.number(calibration, "shift", f"{here}.calibration.shift"))
    return names, costs, scale, shift


def _cost(where: Where, value: Any, field: str) -> Decimal | None:
    """A cost per request: a Decimal string >= 0, or null (unpriced); a bare number is refused (it may be binary)."""
    if value is None:
        return None
    try:
        cost = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        cost = None
    if cost is None or not cost.is_finite() or cost < 0:
        raise where.fail(field, f"expected USD as a decimal string (\"0.0012\") or null for unpriced, got "
                                f"{kind_of(value)}")
    return cost


def _numbers(where: Where, values: Any, field: str, size: int, *, positive: bool = False) -> list[float]:
    ok = isinstance(values, list) and len(values) == size and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        for v in values)
    if not ok:
        what = "positive" if positive else "finite"
        raise where.fail(field, f"expected {size} {what} numbers, got {kind_of(values)}")
    return [float(v) for v in values]


def _rule(where: Where, rule: dict[str, Any]) -> RoutingRule:
    from .prompt import RoutingRule

    calibrated = rule.get("calibrated_to", {})
    if not isinstance(calibrated, dict):
        raise where.fail("rule.calibrated_to", f"expected a mapping, got {kind_of(calibrated)}")
    # The file's JSON values as they are: RoutingRule checks them, and its errors name the field.
    kind: Any = rule.get("kind")
    value: Any = rule.get("value")
    try:
        return RoutingRule(kind, value, calibrated)
    except ConfigError as exc:
        raise where.fail(exc.field or "rule", str(exc).removeprefix(f"{exc.field}: ")) from None


def _weights(where: Where, weights: dict[str, Any], n_targets: int, n_dense: int, hash_bits: int) -> dict[str, Any]:
    import numpy as np

    npz, arrays = read_weights(where, weights, _ARRAYS)
    rows = arrays["rows"]  # read_weights returned every array named, or failed
    n_rows = len(rows) if rows.ndim == 1 else -1
    shapes = {"rows": (n_rows,), "weights": (n_rows, n_targets), "bias": (n_targets,),
              "dense_weights": (n_dense, n_targets)}
    for key, shape in shapes.items():
        array, kind = arrays[key], "i" if key == "rows" else "f"
        if array.dtype.kind != kind or array.shape != shape:
            raise where.fail(key, f"expected {'integers' if kind == 'i' else 'floats'} of shape {shape}, got "
                                  f"{array.dtype} {array.shape}", npz)
        if kind == "f" and not np.isfinite(array).all():
            raise where.fail(key, "not every value is finite", npz)
    if n_rows and (rows.min() < 0 or rows.max() >= 1 << hash_bits or np.any(np.diff(rows) <= 0)):
        raise where.fail("rows", f"expected increasing slots from 0 to 2**{hash_bits} - 1", npz)
    if weights.get("rows") != n_rows:
        raise where.fail("weights.rows", f"the file says {weights.get('rows')!r} rows, {npz.name} has {n_rows}")
    return arrays
