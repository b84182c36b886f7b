"""Hostile replies to a HumanEval item: each attack of issue 11 fails to do harm and leaves nothing behind.

Every test grades a real bundled HumanEval item through the ``code_exec`` grader, with
the attack inside the model's reply, and checks the host afterwards: files that must not
exist, processes that must be gone, canaries that must not come back in the grade's
details, a listener that must not have been reached, a verdict that must be "wrong".

Without a working bubblewrap these tests are skipped, unless ``EVALKIT_REQUIRE_SANDBOX=1``
(set by ``.ci/run``, which installs it): then they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from evalkit.graders import CodeExecGrader, SandboxUnavailable, grader_for, sandbox_problem

from .support import REPO, suite_items

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


def require_sandbox() -> None:
    """Skip (or fail under EVALKIT_REQUIRE_SANDBOX=1) when bubblewrap cannot run here."""
    problem = sandbox_problem()
    if problem is not None:
        if os.environ.get("EVALKIT_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"EVALKIT_REQUIRE_SANDBOX=1 but the code_exec sandbox is unavailable: {problem}")
        pytest.skip(f"code_exec sandbox unavailable: {problem}")


@pytest.fixture
def sandbox():
    """The tests that attack the sandbox need one."""
    require_sandbox()


def humaneval_item():
    """HumanEval/62 (``derivative``) from the bundled suite."""
    return suite_items("humaneval")[0]


CORRECT = "def derivative(xs: list):\n    return [i * x for i, x in enumerate(xs)][1:]\n"
WRONG = "def derivative(xs: list):\n    return []\n"


def reply(attack: str, answer: str = CORRECT) -> str:
    """A model reply: the attack runs at import time, next to an answer."""
    code = textwrap.dedent(attack).strip("\n") + "\n\n" + answer
    return f"Here you go:\n\n```python\n{code}```\n"


async def grade(output: str, **grader_options):
    item = humaneval_item()
    grader = CodeExecGrader.from_spec(item.grader, **grader_options)
    return await grader.grade(item, output)


def shown(result) -> str:
    """Everything of a run that comes back to the user: reason, stdout and stderr tails."""
    details = result.details or {}
    return f"{result.reason}\n{details.get('stdout', '')}\n{details.get('stderr', '')}"


def processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def marker():
    """A unique string to find the attack's processes by; any survivor is killed after the test."""
    value = f"evalkit-attack-{uuid.uuid4().hex}"
    yield value
    for pid in processes_with(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# --- the file system ------------------------------------------------------------------------------------


async def test_a_pth_file_cannot_be_planted_in_the_real_site_packages(sandbox):
    target = Path(sysconfig.get_paths()["purelib"]) / f"zz_evalkit_attack_{uuid.uuid4().hex}.pth"
    attack = f"""
        try:
            open({str(target)!r}, "w").write("import os; os.system('echo pwned')\\n")
            print("PLANTED")
        except OSError as error:
            print("refused:", error)
        """
    try:
        result = await grade(reply(attack))
        assert not target.exists()
        assert "PLANTED" not in shown(result)
        assert result.passed, result.reason  # the answer itself is right; only the attack failed
    finally:
        target.unlink(missing_ok=True)


async def test_the_host_files_home_runs_and_cwd_are_not_readable(sandbox, tmp_path, monkeypatch):
    canary = f"run-secret-{uuid.uuid4().hex}"
    results = tmp_path / "runs" / "20260101-000000-0001" / "results.txt"
    results.parent.mkdir(parents=True)
    results.write_text(canary)
    monkeypatch.chdir(tmp_path)
    home = Path.home()
    # The one thing of the home folder the sandbox may show: the path to the interpreter (pyenv: ~/.pyenv).
    interpreter = Path(sys.base_prefix)
    allowed = {interpreter.relative_to(home).parts[0]} if interpreter.is_relative_to(home) else set()
    private = sorted(set(os.listdir(home)) - allowed)
    attack = f"""
        import os
        # Short labels: the grade keeps only the last 500 characters of stdout.
        files = {{"passwd": "/etc/passwd", "shadow": "/etc/shadow", "run": {str(results)!r},
                 "cwd": {str(REPO / "pyproject.toml")!r}, "relative": "runs/20260101-000000-0001/results.txt",
                 "key": {str(home / ".ssh" / "id_rsa")!r}}}
        for label, path in files.items():
            try:
                print("READ", label, repr(open(path).read()[:40]))
            except OSError as error:
                print("refused", label, type(error).__name__)
        folders = {{"home": {str(home)!r}, "ssh": {str(home / ".ssh")!r}, "tmp": {str(tmp_path)!r},
                   "homes": "/home"}}
        for label, folder in folders.items():
            try:
                seen = os.listdir(folder)
            except OSError as error:
                print("refused", label, type(error).__name__)
            else:
                print("LISTED", label, len(seen), "SEEN" * bool(set(seen) & set({private!r})))
        """
    result = await grade(reply(attack))
    text = shown(result)
    assert "refused passwd" in text  # the attack ran
    assert "READ" not in text and canary not in text and "root:x:0:0" not in text
    assert "SEEN" not in text  # nothing of the home folder but the way to the interpreter
    assert "LISTED ssh" not in text and "LISTED tmp" not in text


async def test_files_outside_the_sandbox_can_be_neither_written_nor_deleted(sandbox, tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me")
    planted = tmp_path / "planted.txt"
    attack = f"""
        import os, shutil
        for action in (lambda: os.remove({str(canary)!r}),
                       lambda: open({str(planted)!r}, "w").write("x"),
                       lambda: shutil.rmtree({str(tmp_path)!r})):
            try:
                action()
                print("DONE")
            except OSError as error:
                print("refused:", type(error).__name__)
        """
    result = await grade(reply(attack))
    assert canary.read_text() == "keep me"
    assert not planted.exists()
    assert "DONE" not in shown(result)


# --- processes --------------------------------------------------------------------------------------------


async def test_a_double_forked_setsid_daemon_does_not_survive_grading(sandbox, marker):
    attack = f"""
        import os, sys
        read_end, write_end = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.write(write_end, b"daemon-started")
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
            os._exit(0)
        print(os.read(read_end, 100).decode())
        """
    result = await grade(reply(attack))
    assert "daemon-started" in shown(result)  # the attack really ran
    assert processes_with(marker) == []


async def test_a_fork_storm_is_stopped_by_the_process_limit(sandbox, marker):
    attack = f"""
        import os, sys, time
        started = 0
        try:
            for _ in range(250):
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(9)", {marker!r}])
                started += 1
        except OSError as error:
            print("stopped:", type(error).__name__)
        print("FORKED", started)
        """
    result = await grade(reply(attack))
    text = shown(result)
    assert "stopped: BlockingIOError" in text, text
    forked = int(text.split("FORKED ")[1].split()[0])
    assert 0 < forked < 100
    assert processes_with(marker) == []


GRADE_A_SLEEPER = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from evalkit.graders import CodeExecGrader
from graders.support import suite_items

item = suite_items("humaneval")[0]
reply = '''```python
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
time.sleep(60)
def derivative(xs):
    return []
```'''
grader = CodeExecGrader(item.grader["tests"], "derivative", timeout_s=60)
asyncio.run(grader.grade(item, reply))
"""


def test_kill_9_of_the_grading_process_takes_the_sandbox_down(sandbox, tmp_path, marker):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    script = tmp_path / "grade_a_sleeper.py"  # a file: the marker must not be in this process's argv
    script.write_text(GRADE_A_SLEEPER.format(tests=str(REPO / "tests"), marker=marker))
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    grading = subprocess.Popen([sys.executable, str(script)], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not processes_with(marker):
            assert grading.poll() is None, "the grading process ended before the sandbox started"
            assert time.monotonic() < deadline, "the sandboxed program never started"
            time.sleep(0.05)
        os.kill(grading.pid, signal.SIGKILL)
        grading.wait()
        deadline = time.monotonic() + 2
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(marker) == []
        assert list(private_tmp.iterdir()) == []
    finally:
        if grading.poll() is None:
            grading.kill()


# --- the parent's environment and the network ---------------------------------------------------------


GRADE_AND_SHOW = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from evalkit.graders import CodeExecGrader
from graders.support import suite_items

item = suite_items("humaneval")[0]
result = asyncio.run(CodeExecGrader(item.grader["tests"], "derivative").grade(item, {reply!r}))
print(result.reason, result.details["stdout"], result.details["stderr"])
"""


def test_the_parent_environment_is_not_readable_through_proc(sandbox):
    # /proc/<pid>/environ shows what a process was started with: the secret must be there from the start.
    secret = f"sk-canary-{uuid.uuid4().hex}"
    attack = """
        import os
        seen = []
        for pid in [p for p in os.listdir("/proc") if p.isdigit()] + [str(os.getppid())]:
            try:
                seen.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
            except OSError:
                pass
        keys = [entry for block in seen for entry in block.split("\\0") if "API_KEY" in entry]
        print("ENVIRON", len(seen), keys)
        """
    script = GRADE_AND_SHOW.format(tests=str(REPO / "tests"), reply=reply(attack))
    env = {**os.environ, "OPENAI_API_KEY": secret}
    graded = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert graded.returncode == 0, graded.stderr
    assert "ENVIRON" in graded.stdout
    assert secret not in graded.stdout


async def test_undoing_the_socket_guard_does_not_reach_the_host_loopback(sandbox):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        attack = f"""
            import subprocess, sys
            sys.modules.pop("socket", None)
            sys.modules.pop("_socket", None)
            import _socket
            try:
                raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                raw.settimeout(2)
                raw.connect(("127.0.0.1", {port}))
                print("CONNECTED in process")
            except OSError as error:
                print("in process:", error)
            connect = "import socket; socket.create_connection(('127.0.0.1', {port}), 2); print('CONNECTED')"
            child = subprocess.run([sys.executable, "-c", connect], capture_output=True, text=True)
            print("subprocess:", child.stdout, child.stderr[-200:])
            """
        result = await grade(reply(attack))
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "CONNECTED" not in shown(result)


# --- the verdict -----------------------------------------------------------------------------------------

FORGERIES = {
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "os._exit(0) when called": "import os\n_real = None\n",
    "sys.exit(0) when called": "import sys\n",
    "excepthook exits 0": "import os, sys\nsys.excepthook = lambda *args: os._exit(0)\n",
    "atexit exits 0": "import atexit, os\natexit.register(os._exit, 0)\n",
    "fake result lines everywhere": """
        import os
        for line in (b"all tests passed\\n", b"PASSED\\n", b"passed\\n", b"ok passed\\n"):
            for fd in range(1, 64):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        """,
    "check replaced once the tests define it": """
        import sys
        def _swap(frame, event, arg):
            if "check" in frame.f_globals and not getattr(frame.f_globals["check"], "swapped", False):
                def check(candidate):
                    pass
                check.swapped = True
                frame.f_globals["check"] = check
            return _swap
        sys.settrace(_swap)
        sys._getframe().f_trace = _swap
        """,
    "check's code replaced": """
        import sys
        def _swap(frame, event, arg):
            check = frame.f_globals.get("check")
            if check is not None and check.__code__.co_name == "check":
                check.__code__ = (lambda candidate: None).__code__
            return _swap
        sys.settrace(_swap)
        sys._getframe().f_trace = _swap
        """,
    # In the sandbox the parent is the namespace's init; outside one, it would be evalkit itself.
    "the harness is killed": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
}
WRONG_BY_FORGERY = {
    "os._exit(0) when called": "def derivative(xs: list):\n    import os\n    os._exit(0)\n",
    "sys.exit(0) when called": "def derivative(xs: list):\n    import sys\n    sys.exit(0)\n",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_a_wrong_answer_cannot_forge_a_pass(sandbox, forgery):
    result = await grade(reply(FORGERIES[forgery], answer=WRONG_BY_FORGERY.get(forgery, WRONG)))
    assert not result.passed, (forgery, result.reason, result.details)
    assert result.score == 0.0


async def test_a_right_answer_still_passes_under_the_sandbox(sandbox):
    # An ordinary program: writes a scratch file in its working folder and in TMPDIR, runs a subprocess.
    ordinary = """
        import os, subprocess, sys, tempfile
        with open("scratch.txt", "w") as scratch, tempfile.NamedTemporaryFile("w") as temporary:
            scratch.write("x" * 100_000)
            temporary.write("y")
        print(subprocess.run([sys.executable, "-c", "print('hello from the sandbox')"],
                             capture_output=True, text=True, check=True).stdout)
        """
    result = await grade(reply(ordinary))
    assert result.passed, result.reason
    assert result.details["sandbox"] == "bubblewrap"
    assert result.details["network_namespace"] is True
    assert "hello from the sandbox" in result.details["stdout"]
    assert not Path("scratch.txt").exists()


# --- no sandbox available ----------------------------------------------------------------------------------


async def test_without_bubblewrap_code_exec_refuses_to_run(monkeypatch):
    monkeypatch.setenv("EVALKIT_BWRAP", "/nonexistent/bwrap")
    problem = sandbox_problem()
    assert problem is not None and "/nonexistent/bwrap" in problem
    item = humaneval_item()
    with pytest.raises(SandboxUnavailable) as raised:
        await grader_for(item.grader).grade(item, reply("", answer=CORRECT))
    message = str(raised.value)
    assert "bubblewrap" in message and "--unsafe-code-exec" in message and "/nonexistent/bwrap" in message


@pytest.mark.skipif(os.name != "posix", reason="POSIX-only")
async def test_unsafe_mode_still_grades_and_says_so(monkeypatch):
    monkeypatch.setenv("EVALKIT_BWRAP", "/nonexistent/bwrap")
    item = humaneval_item()
    grader = grader_for(item.grader, unsafe_code_exec=True)
    right = await grader.grade(item, reply("", answer=CORRECT))
    assert right.passed, right.reason
    assert right.details["sandbox"] == "none (unsafe)"
    wrong = await grader.grade(item, reply("", answer=WRONG))
    assert not wrong.passed and "AssertionError" in wrong.reason
    # The verdict channel does not depend on isolation: exit status 0 is still not a pass.
    forged = await grader.grade(item, reply(FORGERIES["os._exit(0) at import"], answer=WRONG))
    assert not forged.passed


def test_a_bwrap_that_fails_its_self_check_is_reported_with_its_error(tmp_path, monkeypatch):
    # What bwrap says where the kernel allows no user namespaces for unprivileged users.
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --version ] && { echo "bubblewrap 0.8.0"; exit 0; }\n'
        "echo 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow "
        "non-privileged user namespaces.' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("EVALKIT_BWRAP", str(fake))
    problem = sandbox_problem()
    assert problem is not None and "No permissions to creating new namespace" in problem
    item = humaneval_item()
    with pytest.raises(SandboxUnavailable, match="--unsafe-code-exec"):
        asyncio.run(grader_for(item.grader).grade(item, reply("", answer=CORRECT)))
