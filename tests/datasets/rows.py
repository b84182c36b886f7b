"""Dataset rows for the loader tests: one good row, variations of it, and JSONL files of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOOD = {"id": "q1", "task_type": "math", "prompt": "What is 2+2?", "reference": 4, "grader": "numeric"}


def row(**changes: Any) -> dict[str, Any]:
    """GOOD with some fields changed; a value of ... removes the field."""
    out = dict(GOOD, **changes)
    return {k: v for k, v in out.items() if v is not ...}


def write_jsonl(tmp_path: Path, *rows: Any, name: str = "data.jsonl") -> Path:
    """Rows as JSONL; a str row is written verbatim (for broken lines)."""
    path = tmp_path / name
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
