"""Where the bundled suites (``default``, ``smoke``, ...) live.

From a checkout they are the repository's top-level ``datasets/`` folder; in an
installed wheel that folder is packaged as ``evalkit/_bundled_datasets/``. The
checkout folder is recognised by its build script, so an unrelated top-level
``datasets`` package next to an installed evalkit (site-packages) is ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError

__all__ = ["SUITE_NAME", "bundled_suite_path", "bundled_suites"]

_EVALKIT_DIR = Path(__file__).resolve().parent.parent
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _suite_dirs() -> list[Path]:
    dirs = []
    checkout = _EVALKIT_DIR.parent / "datasets"
    if (checkout / "build_suites.py").is_file():
        dirs.append(checkout)
    wheel = _EVALKIT_DIR / "_bundled_datasets"
    if wheel.is_dir():
        dirs.append(wheel)
    return dirs


def bundled_suites() -> list[str]:
    """Names of the bundled suites, sorted (e.g. ``["default", "smoke"]``)."""
    names = {path.stem for folder in _suite_dirs() for path in folder.glob("*.jsonl")}
    return sorted(name for name in names if SUITE_NAME.fullmatch(name))


def bundled_suite_path(name: str) -> Path:
    """The JSONL file of bundled suite ``name``; ConfigError if there is none."""
    if SUITE_NAME.fullmatch(name):
        for folder in _suite_dirs():
            path = folder / f"{name}.jsonl"
            if path.is_file():
                return path
    available = ", ".join(bundled_suites()) or "none found"
    raise ConfigError(f"no bundled suite named {name!r} (available: {available})", field="dataset")
