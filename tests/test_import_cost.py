"""``import evalkit`` stays cheap: nothing heavy loads until it is used.

Timing comparisons live in ``benchmarks/import_time.py``; here we check what
gets imported, which is deterministic.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["pandas", "polars", "matplotlib", "vcr", "tiktoken", "genai_prices", "pyarrow", "numpy",
         "starlette", "uvicorn", "httpx", "yaml", "rich", "jinja2"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_evalkit_loads_nothing_heavy() -> None:
    loaded = _modules_after("import evalkit")
    assert not loaded & set(HEAVY), f"import evalkit loaded {sorted(loaded & set(HEAVY))}"


def test_using_a_provider_still_defers_prices_and_tokenizers() -> None:
    loaded = _modules_after("import evalkit; evalkit.get_provider('openai:gpt-4o-mini', api_key='k')")
    assert "httpx" in loaded
    assert not loaded & {"tiktoken", "genai_prices", "pandas", "polars", "matplotlib", "vcr"}
