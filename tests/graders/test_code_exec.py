"""code_exec: HumanEval references pass, broken code fails, the limits hold (time, memory, network, output).

These run under bubblewrap where it works, else in unsafe mode (``tests/graders/test_sandbox_attacks.py``
holds the isolation tests, which need the sandbox).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from evalkit.graders import build_program, extract_code, grader_for

from .support import make_item, needs_shared, read_jsonl, shared_file, suite_items

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the code_exec sandbox limits are POSIX-only")

ADD_TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
ADD_PROMPT = 'Complete this.\n\n```python\ndef add(a: int, b: int) -> int:\n    """Add two numbers."""\n```\n'


def add_item(**grader_fields):
    spec = {"type": "code_exec", "tests": ADD_TESTS, "entry_point": "add", **grader_fields}
    return make_item("def add(a, b):\n    return a + b\n", spec, prompt=ADD_PROMPT)


async def grade(item, output):
    # unsafe_code_exec: bubblewrap where it works (it then changes nothing), a plain child process elsewhere.
    return await grader_for(item.grader, unsafe_code_exec=True).grade(item, output)


def fenced(code: str) -> str:
    return f"Here is the complete implementation:\n\n```python\n{code.strip(chr(10))}\n```\n"


def assert_process_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_every_bundled_humaneval_reference_passes():
    items = suite_items("humaneval")
    assert len(items) == 50
    limit = asyncio.Semaphore(4)

    async def run(item):
        async with limit:
            return item, await grade(item, fenced(item.reference))

    started = time.monotonic()
    results = await asyncio.gather(*(run(item) for item in items))
    failures = [(item.id, result.reason) for item, result in results if not result.passed]
    assert not failures
    assert time.monotonic() - started < 60


async def test_humaneval_solution_returning_none_fails():
    item = suite_items("humaneval")[0]
    entry = item.grader["entry_point"]
    result = await grade(item, fenced(f"def {entry}(*args, **kwargs):\n    return None\n"))
    assert not result.passed and result.score == 0.0
    assert result.details["exit_code"] == 1
    assert "Error" in result.reason


@needs_shared
async def test_humaneval_source_completions_pass_as_bare_function_bodies():
    """The original HumanEval protocol: the model writes only the body; the prompt supplies the signature."""
    rows = list(read_jsonl(shared_file("humaneval", "HumanEval.jsonl.gz"), limit=20))
    limit = asyncio.Semaphore(4)

    async def run(row):
        prompt = f"Complete this function.\n\n```python\n{row['prompt'].strip(chr(10))}\n```\n"
        spec = {"type": "code_exec", "tests": row["test"], "entry_point": row["entry_point"]}
        item = make_item(row["prompt"] + row["canonical_solution"], spec, prompt=prompt, id=row["task_id"])
        async with limit:
            body = await grade(item, row["canonical_solution"])
            broken = await grade(item, "    return None\n")
        return row["task_id"], body, broken

    for task_id, body, broken in await asyncio.gather(*(run(row) for row in rows)):
        assert body.passed, (task_id, body.reason)
        assert not broken.passed, task_id


async def test_infinite_loop_times_out_and_the_process_is_gone():
    item = add_item(timeout_s=1)
    started = time.monotonic()
    result = await grade(item, fenced("def add(a, b):\n    while True:\n        pass\n"))
    assert time.monotonic() - started < 5
    assert not result.passed
    assert result.reason == "timeout after 1s"
    assert result.details["timed_out"] is True
    assert_process_gone(result.details["pid"])


async def test_children_left_running_are_killed_when_the_program_ends():
    marker = f"evalkit-child-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        f"CHILD = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
        "def add(a, b):\n    return a + b\n"
    )
    try:
        result = await grade(add_item(), fenced(code))
        assert result.passed, result.reason
        # The sandbox returns once its PID namespace is gone; unsafe mode only sends SIGKILL to the group.
        grace = 0.0 if result.details["sandbox"] == "bubblewrap" else 2.0
        deadline = time.monotonic() + grace
        while live_processes_with(marker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert live_processes_with(marker) == []
    finally:
        for pid in live_processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def live_processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``marker`` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "network_code",
    [
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n",
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)\n",
        "import _socket\n_socket.socket()\n",
        "import socket\nsocket.getaddrinfo('example.com', 80)\n",
    ],
)
async def test_network_use_fails_with_a_network_blocked_reason(network_code):
    code = (
        "def add(a, b):\n"
        + "".join(f"    {line}\n" for line in network_code.splitlines())
        + "    return a + b\n"
    )
    result = await grade(add_item(), fenced(code))
    assert not result.passed
    assert "network access is blocked" in result.reason


async def test_allocating_4_gib_fails_with_memory_error_and_the_tests_live_on():
    code = "def add(a, b):\n    block = bytearray(4 << 30)\n    return a + b\n"
    result = await grade(add_item(), fenced(code))
    assert not result.passed
    assert result.reason == "MemoryError"
    assert (await grade(add_item(), fenced("def add(a, b):\n    return a + b\n"))).passed


async def test_huge_output_is_cut_off_by_the_file_size_limit():
    code = "import sys\nsys.stdout.write('x' * (40 << 20))\nsys.stdout.flush()\n"
    code += "def add(a, b):\n    return a + b\n"
    result = await grade(add_item(), fenced(code))
    assert not result.passed
    # CPython ignores SIGXFSZ, so the write fails with EFBIG instead of the signal killing it.
    assert "File too large" in result.reason or "SIGXFSZ" in result.reason


async def test_the_child_sees_no_secrets_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    code = (
        "import os\nassert 'OPENAI_API_KEY' not in os.environ, 'leaked'\ndef add(a, b):\n    return a + b\n"
    )
    result = await grade(add_item(), fenced(code))
    assert result.passed, result.reason


async def test_prompt_imports_and_future_imports_are_handled():
    prompt = "```python\nfrom typing import List\n\n\ndef total(xs: List[int]) -> int:\n    pass\n```"
    spec = {
        "type": "code_exec",
        "tests": "def check(c):\n    assert c([1, 2]) == 3\n",
        "entry_point": "total",
    }
    item = make_item("x", spec, prompt=prompt)
    # The reply forgot the typing import the prompt had, and starts with a __future__ import.
    reply = "from __future__ import annotations\n\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n"
    assert (await grade(item, reply)).passed


def test_extract_code_prefers_python_fences_and_keeps_body_indentation():
    assert extract_code("text\n```python\nx = 1\n```\n```python\ny = 2\n```") == "x = 1"
    assert extract_code("```\nx = 1\n```") == "x = 1"
    assert extract_code("```py\nx = 1") == "x = 1"  # an unclosed fence (cut off by max_tokens)
    assert extract_code("\n\n    return 1\n") == "    return 1"
    program = build_program("def f():\n    pass", "def f():\n    return 1", "def check(c): pass", "f")
    assert program.endswith("check(f)\n")


async def test_syntax_errors_and_missing_functions_fail_with_the_exception_line():
    syntax = await grade(add_item(), fenced("def add(a, b)\n    return a + b\n"))
    assert not syntax.passed and "SyntaxError" in syntax.reason
    missing = await grade(add_item(), "I don't know how to do that.")
    assert not missing.passed


async def test_unsafe_mode_without_namespaces_still_blocks_the_network_in_python(monkeypatch):
    from evalkit.graders import _unsafe

    monkeypatch.setenv("EVALKIT_BWRAP", "/nonexistent/bwrap")  # no sandbox: the unsafe path
    monkeypatch.setattr(_unsafe, "_libc_unshare", lambda: None)
    code = "import socket\nsocket.create_connection(('127.0.0.1', 9))\ndef add(a, b):\n    return a + b\n"
    item = add_item()
    result = await grader_for(item.grader, unsafe_code_exec=True).grade(item, fenced(code))
    assert result.details["sandbox"] == "none (unsafe)"
    assert result.details["network_namespace"] is False
    assert "network access is blocked" in result.reason


async def test_sigxcpu_is_reported_as_the_cpu_time_limit():
    # RLIMIT_CPU is the wall timeout + 2 s, so the wall clock normally ends a busy loop first; here the
    # program lowers its own soft CPU limit (it may lower limits, never raise them).
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (1, resource.getrlimit(resource.RLIMIT_CPU)[1]))\n"
        "def add(a, b):\n    while True:\n        pass\n"
    )
    result = await grade(add_item(timeout_s=10), fenced(code))
    assert not result.passed
    assert result.reason == "killed by SIGXCPU (CPU time limit)"
