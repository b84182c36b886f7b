"""Reading a task classifier's files, checking every field (see :mod:`evalkit.router.classifier`).

A model file is data from outside: each field is checked for type and range,
the weights file must be a plain name beside the JSON with the recorded sha256,
and its arrays are read with ``allow_pickle=False`` and checked for shape,
range and finiteness. The first problem is a :class:`~evalkit.errors.ConfigError`
naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._model_files import Where, kind_of, read_header, read_weights
from ._task_features import HASH_NAME, FeatureSpec

__all__ = ["feature_spec", "read_model"]

_SPEC_FIELDS = ("hash_bits", "char_ngrams", "word_ngrams", "head_chars", "tail_chars")
_ARRAYS = ("rows", "weights", "bias", "dense_weights")
MAX_TABLE_BYTES = 256 * 2**20


def read_model(path: Path, fmt: str, version: int) -> dict[str, Any]:
    """The keyword arguments of ``LearnedClassifier`` from the model file at ``path``."""
    doc, where = read_header(path, "task classifier", fmt, version)
    labels = _labels(where, doc.get("labels"))
    spec = feature_spec(where, where.mapping(doc, "features"))
    table_bytes = (1 << spec.hash_bits) * len(labels) * 4
    if table_bytes > MAX_TABLE_BYTES:  # the weight table is dense in memory: refuse before allocating it
        raise where.fail("features.hash_bits", f"2**{spec.hash_bits} slots x {len(labels)} task types needs "
                                               f"{table_bytes / 2**20:,.0f} MiB; the limit is "
                                               f"{MAX_TABLE_BYTES / 2**20:,.0f} MiB")
    dense = where.mapping(doc, "dense")
    calibration = where.mapping(doc, "calibration")
    if calibration.get("method") != "temperature":
        raise where.fail("calibration.method", f"expected 'temperature', got {calibration.get('method')!r}")
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, dict):
        raise where.fail("metrics", f"expected a mapping, got {type(metrics).__name__}")
    arrays = _weights(where, where.mapping(doc, "weights"), len(labels), spec.hash_bits)
    if dense.get("feature") != "log1p_chars":
        raise where.fail("dense.feature", f"expected 'log1p_chars', got {kind_of(dense.get('feature'))}")
    low, high = where.number(dense, "min", "dense.min"), where.number(dense, "max", "dense.max")
    if low > high:
        raise where.fail("dense.max", f"the range is empty: max {high!r} < min {low!r}")
    return {
        "labels": labels, "spec": spec, **arrays,
        "dense_mean": where.number(dense, "mean", "dense.mean"),
        "dense_scale": where.number(dense, "scale", "dense.scale", positive=True), "dense_range": (low, high),
        "temperature": where.number(calibration, "temperature", "calibration.temperature", positive=True),
        "abstain_below": where.number(doc, "abstain_below", "abstain_below", low=0.0, high=1.0),
        "metrics": metrics,
    }


def _labels(where: Where, labels: Any) -> tuple[str, ...]:
    if (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)):
        raise where.fail("labels", f"expected two or more distinct task type names, got {kind_of(labels)}")
    return tuple(labels)


def feature_spec(where: Where, features: dict[str, Any]) -> FeatureSpec:
    if features.get("hash") != HASH_NAME:
        raise where.fail("features.hash", f"this evalkit hashes with {HASH_NAME!r}, the file says "
                                          f"{features.get('hash')!r}")
    values: dict[str, Any] = {}  # the file's JSON values, checked below
    for name in _SPEC_FIELDS:
        value = features.get(name)
        if name.endswith("ngrams"):
            if not isinstance(value, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
                raise where.fail(f"features.{name}", f"expected a list of whole numbers, got {kind_of(value)}")
            value = tuple(value)
        values[name] = value
    spec = object.__new__(FeatureSpec)  # checked below, field by field, so the error names the field
    for name, value in values.items():
        object.__setattr__(spec, name, value)
    for name, message in spec.problems():
        raise where.fail(f"features.{name}", message)
    expected = FeatureSpec(**values).to_dict()
    for key, value in expected.items():
        if key not in values and key != "hash" and features.get(key) != value:
            raise where.fail(f"features.{key}", f"this evalkit computes {value!r}, the file says "
                                                f"{features.get(key)!r}")
    return FeatureSpec(**values)


def _weights(where: Where, weights: dict[str, Any], n_labels: int, hash_bits: int) -> dict[str, Any]:
    npz, arrays = read_weights(where, weights, _ARRAYS)
    _check_arrays(where, npz, arrays, n_labels, hash_bits)
    if weights.get("rows") != len(arrays["rows"]):
        raise where.fail("weights.rows", f"the file says {weights.get('rows')!r} rows, {npz.name} has "
                                         f"{len(arrays['rows'])}")
    return arrays


def _check_arrays(where: Where, npz: Path, arrays: dict[str, Any], n_labels: int, hash_bits: int) -> None:
    import numpy as np

    rows = arrays["rows"]
    shapes = {"rows": (len(rows),), "weights": (len(rows), n_labels), "bias": (n_labels,), "dense_weights": (n_labels,)}
    for key, shape in shapes.items():
        array = arrays[key]
        kind = "i" if key == "rows" else "f"
        if array.dtype.kind != kind or array.shape != shape:
            raise where.fail(key, f"expected {'integers' if kind == 'i' else 'floats'} of shape {shape}, got "
                                  f"{array.dtype} {array.shape}", npz)
        if kind == "f" and not np.isfinite(array).all():
            raise where.fail(key, "not every value is finite", npz)
    if len(rows) and (rows.min() < 0 or rows.max() >= 1 << hash_bits or (np.diff(rows) <= 0).any()):
        raise where.fail("rows", f"expected increasing slots from 0 to 2**{hash_bits} - 1", npz)
