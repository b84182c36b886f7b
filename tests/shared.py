"""Where the team's shared folder (recorded wire traffic, datasets, published results) is.

CI clones the repository next to it (``<repo>/../shared``); a developer machine has it at
``/work/shared``; ``EVALKIT_SHARED_DIR`` overrides both. Tests that need it skip without it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_path(*parts: str, must_contain: tuple[str, ...] = ()) -> Path | None:
    """``shared/<parts>`` from the first candidate that has it (and ``must_contain`` inside), else None."""
    roots = [os.environ.get("EVALKIT_SHARED_DIR"), REPO.parent / "shared", "/work/shared"]
    for root in filter(None, roots):
        candidate = Path(root).joinpath(*parts).resolve()
        if candidate.is_dir() and all((candidate / name).exists() for name in must_contain):
            return candidate
    return None
