"""Reading a per-prompt router's files, checking every field (see :mod:`evalkit.router.prompt`).

The model file is data from outside, read like the task classifier's
(:mod:`evalkit.router._classifier_file`, whose field checks are reused): each
field is checked for type and range, the weights file must be a plain name
beside the JSON with the recorded sha256, its arrays are read with
``allow_pickle=False`` and checked for shape, range and finiteness. The first
problem is a :class:`~evalkit.errors.ConfigError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._classifier_file import _SHA256, _kind, _spec, _Where

__all__ = ["read_prompt_model"]

_ARRAYS = ("rows", "weights", "bias", "dense_weights")


def read_prompt_model(path: Path, fmt: str, version: int) -> dict[str, Any]:
    """The keyword arguments of ``PromptModel`` from the model file at ``path``."""
    from .prompt import DENSE_FEATURES

    doc = _document(path)
    where = _Where(path)
    if doc.get("format") != fmt:
        raise where.fail("format", f"not an evalkit per-prompt router (expected {fmt!r}, got {doc.get('format')!r})")
    if doc.get("version") != version or isinstance(doc.get("version"), bool):
        raise where.fail("version", f"this evalkit reads version {version}, the file is {doc.get('version')!r}")
    names, costs, scale, shift = _targets(where, doc.get("targets"))
    spec = _spec(where, where.mapping(doc, "features"))
    dense = where.mapping(doc, "dense")
    if dense.get("names") != list(DENSE_FEATURES):
        raise where.fail("dense.names", f"this evalkit computes {list(DENSE_FEATURES)!r}, the file says "
                                        f"{dense.get('names')!r}")
    mean = _numbers(where, dense.get("mean"), "dense.mean", len(DENSE_FEATURES))
    spread = _numbers(where, dense.get("scale"), "dense.scale", len(DENSE_FEATURES), positive=True)
    rule = _rule(where, where.mapping(doc, "rule"))
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, dict):
        raise where.fail("metrics", f"expected a mapping, got {_kind(metrics)}")
    arrays = _weights(where, where.mapping(doc, "weights"), len(names), len(DENSE_FEATURES), spec.hash_bits)
    return {"targets": names, "costs": costs, "spec": spec, **arrays, "dense_mean": mean, "dense_scale": spread,
            "platt_scale": scale, "platt_shift": shift, "rule": rule, "metrics": metrics}


def _document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the per-prompt router: {exc}", file=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a JSON object, got {type(doc).__name__}", file=str(path))
    return doc


def _targets(where: _Where, targets: Any) -> tuple[list[str], list[Decimal | None], list[float], list[float]]:
    if not isinstance(targets, list) or not targets:
        raise where.fail("targets", f"expected a list of one or more targets, got {_kind(targets)}")
    names: list[str] = []
    costs: list[Decimal | None] = []
    scale: list[float] = []
    shift: list[float] = []
    for i, entry in enumerate(targets):
        here = f"targets[{i}]"
        if not isinstance(entry, dict):
            raise where.fail(here, f"expected a mapping, got {_kind(entry)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise where.fail(f"{here}.name", f"expected a target name not used before, got {_kind(name)}")
        names.append(name)
        costs.append(_cost(where, entry.get("cost_per_request_usd"), f"{here}.cost_per_request_usd"))
        calibration = entry.get("calibration")
        if not isinstance(calibration, dict) or calibration.get("method") != "platt":
            raise where.fail(f"{here}.calibration.method", "expected a mapping with method 'platt'")
        scale.append(where.number(calibration, "scale", f"{here}.calibration.scale"))
        shift.append(where.number(calibration, "shift", f"{here}.calibration.shift"))
    return names, costs, scale, shift


def _cost(where: _Where, value: Any, field: str) -> Decimal | None:
    """A cost per request: a Decimal string >= 0, or null (unpriced); a bare number is refused (it may be binary)."""
    if value is None:
        return None
    try:
        cost = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        cost = None
    if cost is None or not cost.is_finite() or cost < 0:
        raise where.fail(field, f"expected USD as a decimal string (\"0.0012\") or null for unpriced, got "
                                f"{_kind(value)}")
    return cost


def _numbers(where: _Where, values: Any, field: str, size: int, *, positive: bool = False) -> list[float]:
    ok = isinstance(values, list) and len(values) == size and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        for v in values)
    if not ok:
        what = "positive" if positive else "finite"
        raise where.fail(field, f"expected {size} {what} numbers, got {_kind(values)}")
    return [float(v) for v in values]


def _rule(where: _Where, rule: dict[str, Any]) -> Any:
    from .prompt import RoutingRule

    calibrated = rule.get("calibrated_to", {})
    if not isinstance(calibrated, dict):
        raise where.fail("rule.calibrated_to", f"expected a mapping, got {_kind(calibrated)}")
    try:
        return RoutingRule(rule.get("kind"), rule.get("value"), calibrated)
    except ConfigError as exc:
        raise where.fail(exc.field or "rule", str(exc).removeprefix(f"{exc.field}: ")) from None


def _weights(where: _Where, weights: dict[str, Any], n_targets: int, n_dense: int, hash_bits: int) -> dict[str, Any]:
    import numpy as np

    name = weights.get("file")
    if not isinstance(name, str) or not name.endswith(".npz") or Path(name).name != name or name.startswith("."):
        raise where.fail("weights.file", f"expected the name of a .npz file beside the model, got {_kind(name)}")
    digest = weights.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise where.fail("weights.sha256", f"expected 64 lower-case hex digits, got {_kind(digest)}")
    npz = where.path.with_name(name)
    try:
        data = npz.read_bytes()
    except OSError as exc:
        raise where.fail("weights.file", f"cannot read the weights {npz}: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise where.fail("weights.sha256", f"{npz.name} does not match the recorded sha256 (changed or replaced "
                                           "since the model was saved)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in _ARRAYS if key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise where.fail("weights.file", f"not a readable numpy archive: {exc}", npz) from None
    rows = arrays.get("rows")
    n_rows = len(rows) if rows is not None and rows.ndim == 1 else -1
    shapes = {"rows": (n_rows,), "weights": (n_rows, n_targets), "bias": (n_targets,),
              "dense_weights": (n_dense, n_targets)}
    for key, shape in shapes.items():
        if key not in arrays:
            raise where.fail(key, "array missing from the weights file", npz)
        array, kind = arrays[key], "i" if key == "rows" else "f"
        if array.dtype.kind != kind or array.shape != shape:
            raise where.fail(key, f"expected {'integers' if kind == 'i' else 'floats'} of shape {shape}, got "
                                  f"{array.dtype} {array.shape}", npz)
        if kind == "f" and not np.isfinite(array).all():
            raise where.fail(key, "not every value is finite", npz)
    if n_rows and (rows.min() < 0 or rows.max() >= 1 << hash_bits or (np.diff(rows) <= 0).any()):
        raise where.fail("rows", f"expected increasing slots from 0 to 2**{hash_bits} - 1", npz)
    if weights.get("rows") != n_rows:
        raise where.fail("weights.rows", f"the file says {weights.get('rows')!r} rows, {npz.name} has {n_rows}")
    return arrays
