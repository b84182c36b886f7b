"""Run a snippet in a child Python under hard limits: an input that blows up fails its test, not the machine.

A memory bomb hits ``RLIMIT_AS`` (MemoryError in the child), a hang hits the
timeout (the child is killed); either way the test gets a result it can
assert on.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).parents[1]


@dataclass(frozen=True)
class Outcome:
    """What the child did: exit code (None when killed for taking too long), output, whether it timed out."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


def run_bounded(code: str, *, memory_mb: int = 1024, timeout_s: float = 30.0) -> Outcome:
    """Run ``code`` (dedented) in a fresh interpreter under an address-space cap and a wall-clock timeout."""

    def limit() -> None:  # runs in the child, before exec
        cap = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout_s, preexec_fn=limit, env=env, cwd=REPO)
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, _text(exc.stdout), _text(exc.stderr), True)
    return Outcome(done.returncode, done.stdout, done.stderr, False)


def _text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""
