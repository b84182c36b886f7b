"""The two files a learned routing model travels as: ``NAME.json`` (inspectable) and ``NAME.npz`` (weights).

Shared by the task classifier (:mod:`evalkit.router.classifier`) and the
per-prompt router (:mod:`evalkit.router.prompt`), which differ only in what the
JSON says. :func:`write_model` writes both whole or not at all, the JSON naming
the weights file and its sha256; :func:`read_weights` reads them back with
``allow_pickle=False`` after checking the name and the digest. Every problem is
a :class:`~evalkit.errors.ConfigError` naming the file and the field
(:class:`Where`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SHA256", "Where", "kind_of", "read_document", "read_header", "read_weights", "write_model"]

SHA256 = re.compile(r"[0-9a-f]{64}")


class Where:
    """Builds ConfigErrors located in one model file, and reads its checked values."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, message: str, file: Path | None = None) -> ConfigError:
        return ConfigError(message, file=str(file or self.path), field=field)

    def mapping(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key)
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {kind_of(value)}")
        return value

    def number(self, doc: dict[str, Any], key: str, field: str, *, positive: bool = False,
               low: float | None = None, high: float | None = None) -> float:
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(field, f"expected a finite number, got {kind_of(value)}")
        if positive and value <= 0:
            raise self.fail(field, f"expected a positive number, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(field, f"expected a number from {low:g} to {high:g}, got {value!r}")
        return float(value)


def kind_of(value: Any) -> str:
    """A short description of a bad value for an error message."""
    return "nothing" if value is None else repr(value) if isinstance(value, (int, float, str)) else type(value).__name__


def read_header(path: Path, what: str, fmt: str, version: int) -> tuple[dict[str, Any], Where]:
    """The JSON object in ``path``, refused unless its ``format`` is ``fmt`` and its ``version`` ``version``."""
    doc = read_document(path, what)
    where = Where(path)
    if doc.get("format") != fmt:
        raise where.fail("format", f"not an evalkit {what} (expected {fmt!r}, got {doc.get('format')!r})")
    if doc.get("version") != version or isinstance(doc.get("version"), bool):
        raise where.fail("version", f"this evalkit reads version {version}, the file is {doc.get('version')!r}")
    return doc, where


def read_document(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``what`` names the model in the error when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what}: {exc}", file=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a JSON object, got {type(doc).__name__}", file=str(path))
    return doc


def read_weights(where: Where, weights: dict[str, Any], names: tuple[str, ...]) -> tuple[Path, dict[str, np.ndarray]]:
    """The weights file the JSON's ``weights`` block names, digest-checked: its path and every array in ``names``."""
    import numpy as np

    name = weights.get("file")
    if not isinstance(name, str) or not name.endswith(".npz") or Path(name).name != name or name.startswith("."):
        raise where.fail("weights.file", f"expected the name of a .npz file beside the model, got {kind_of(name)}")
    digest = weights.get("sha256")
    if not isinstance(digest, str) or not SHA256.fullmatch(digest):
        raise where.fail("weights.sha256", f"expected 64 lower-case hex digits, got {kind_of(digest)}")
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
            arrays = {key: archive[key] for key in names if key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise where.fail("weights.file", f"not a readable numpy archive: {exc}", npz) from None
    for key in names:
        if key not in arrays:
            raise where.fail(key, "array missing from the weights file", npz)
    return npz, arrays


def write_model(path: str | Path, arrays: Mapping[str, np.ndarray], document: Mapping[str, Any]) -> Path:
    """Write ``arrays`` to ``path`` with ``.npz`` and ``document`` (plus its ``weights`` block) to ``path``.

    Each file is written whole or not at all (temporary file, then rename);
    the JSON text is made before anything is written. Returns ``path``.
    """
    import numpy as np

    path = Path(path)
    weights_path = path.with_suffix(".npz")
    if weights_path == path:
        raise ValueError(f"{path}: the model file must not end in .npz (its weights go there)")
    buffer = io.BytesIO()
    # numpy's stub types **kwds as if a key could be its allow_pickle flag; ours are array names.
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    weights = {"file": weights_path.name, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(arrays["rows"])}
    text = json.dumps({**document, "weights": weights}, indent=1, ensure_ascii=False) + "\n"
    _write_atomic(weights_path, data)
    _write_atomic(path, text.encode("utf-8"))
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
