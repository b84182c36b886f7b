"""``code_exec``: run the model's code against the item's tests in a bubblewrap sandbox (HumanEval)."""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._base import Grade, short
from ._sandbox import RunResult, run_tests
from ._text import code_blocks, last_line

if TYPE_CHECKING:
    from ..datasets import Item

__all__ = ["CodeExecGrader", "build_program", "candidate_program", "extract_code"]

_PYTHON_TAGS = ("python", "py", "python3")
_FUTURE_IMPORT = re.compile(r"^from __future__ import [^\n]*$", re.MULTILINE)


def extract_code(text: str) -> str:
    """The code of a reply: the first ```python block, else the first untagged block, else the whole text.

    Leading blank lines and trailing whitespace go; leading indentation stays,
    so a HumanEval-style completion (just the function body) still works.
    """
    blocks = code_blocks(text)
    tagged = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    untagged = [body for tag, body in blocks if not tag]
    code = (tagged or untagged or [text])[0]
    lines = code.rstrip().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def prompt_code(item: Item) -> str:
    """The code the item's prompt showed (the HumanEval signature, imports and helpers), or "".

    Only the first python (or untagged) block, and only when it parses on its
    own: a prompt quoting a fragment must not break every reply's program.
    """
    import ast  # only code items need it; keep `import evalkit` light

    for tag, body in code_blocks(item.prompt_text):
        if tag in _PYTHON_TAGS or not tag:
            try:
                ast.parse(body)
            except SyntaxError:
                return ""
            return body.rstrip()
    return ""


def candidate_program(preamble: str, code: str) -> str:
    """``preamble + code``, with ``from __future__`` imports hoisted first: what runs before the tests.

    The preamble (the prompt's code) always goes first: a reply that is only
    the function body completes the prompt's signature, and a full reply that
    left out the prompt's imports or helpers still has them; a full reply
    redefines the function, so the prompt's stub never answers.
    """
    parts = [preamble, code]
    futures = [line for part in parts for line in _FUTURE_IMPORT.findall(part)]
    body = "\n\n".join(_FUTURE_IMPORT.sub("", part) for part in parts if part.strip())
    head = "\n".join(dict.fromkeys(futures))
    return f"{head}\n{body}\n".lstrip("\n")


def build_program(preamble: str, code: str, tests: str, entry_point: str) -> str:
    """The whole program as one script: ``preamble + code + tests + check(entry_point)``.

    For reading and for running by hand. The grader does not run this text: it
    compiles the candidate's part and the tests separately (a reply cannot
    swallow the tests, e.g. with an unclosed string) and calls ``check`` itself.
    """
    return f"{candidate_program(preamble, code)}\n{tests}\n\ncheck({entry_point})\n"


class CodeExecGrader:
    """Functional correctness: the item's ``check(candidate)`` tests pass against the reply's code.

    The prompt's code and the extracted code (see :func:`extract_code`) run,
    then the tests, then ``check(entry_point)``, in a bubblewrap sandbox (see
    :mod:`._sandbox`: what it isolates, and what the verdict does and does not
    guarantee) with a wall timeout (``timeout_s``, default 10) and a memory cap
    (``memory_mb``, default 1024). Pass means the sandbox's harness recorded
    that ``check`` returned; an exit status never does. The reason of a
    failure is the last line of stderr (the exception), ``timeout after Ns`` or
    the signal that ended the program.

    Without a working sandbox, :meth:`grade` raises
    :class:`~evalkit.graders.SandboxUnavailable`, unless ``unsafe`` (the CLI's
    ``--unsafe-code-exec``): then the code runs in a plain child process
    (``details["sandbox"] == "none (unsafe)"``). With a sandbox, ``unsafe``
    changes nothing.
    """

    name = "code_exec"

    def __init__(
        self,
        tests: str,
        entry_point: str,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        *,
        unsafe: bool = False,
    ) -> None:
        if not isinstance(tests, str) or not tests.strip():
            raise ConfigError("is required: test code defining check(candidate)", field="grader.tests")
        if not isinstance(entry_point, str) or not entry_point.isidentifier():
            raise ConfigError(f"must be a Python identifier, got {entry_point!r}", field="grader.entry_point")
        for field, value in (("timeout_s", timeout_s), ("memory_mb", memory_mb)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"must be a positive number, got {value!r}", field=f"grader.{field}")
        self.tests, self.entry_point = tests, entry_point
        self.timeout_s, self.memory_bytes = float(timeout_s), int(memory_mb * (1 << 20))
        self.unsafe = bool(unsafe)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, unsafe: bool = False) -> CodeExecGrader:
        """The grader a dataset spec describes (``tests``, ``entry_point``; ``timeout_s``, ``memory_mb``)."""
        return cls(
            tests=spec.get("tests"),
            entry_point=spec.get("entry_point"),
            timeout_s=spec.get("timeout_s", 10.0),
            memory_mb=spec.get("memory_mb", 1024),
            unsafe=unsafe,
        )

    async def grade(self, item: Item, output: str) -> Grade:
        """Run the tests; pass when the harness recorded that ``check`` returned."""
        program = candidate_program(prompt_code(item), extract_code(output))
        result = await run_tests(
            program,
            self.tests,
            self.entry_point,
            timeout_s=self.timeout_s,
            memory_bytes=self.memory_bytes,
            unsafe=self.unsafe,
        )
        details = {
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "duration_s": round(result.duration_s, 3),
            "stderr": result.stderr[-1500:],
            "stdout": result.stdout[-500:],
            "pid": result.pid,
            "sandbox": result.sandbox,
            "network_namespace": result.network_namespace,
        }
        if result.passed:
            return Grade.correct("all tests passed", **details)
        return Grade.wrong(self._failure_reason(result), **details)

    def _failure_reason(self, result: RunResult) -> str:
        if result.timed_out:
            return f"timeout after {self.timeout_s:g}s"
        if result.exit_code is not None and result.exit_code < 0:
            return f"killed by {_signal_name(-result.exit_code)}"
        return short(last_line(result.stderr), 160) or (
            f"exit code {result.exit_code} before the tests finished (no pass recorded)"
        )


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    hints = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (output too large)"}
    return name + hints.get(name, "")
