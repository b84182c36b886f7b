"""Run untrusted Python in a child process: wall timeout, memory cap, no network.

Model-written code never runs inside evalkit's own process. Each program runs
in a fresh ``python -I`` (isolated mode: no user site-packages, no ``PYTHON*``
variables, the script's folder not on ``sys.path``) in its own temporary
folder and process group, with a minimal environment. On POSIX the child,
before it starts Python:

* caps its address space (``RLIMIT_AS``, 1 GiB by default), CPU seconds (a
  backstop should the parent die) and file size (so output cannot fill the disk);
* moves into a new network namespace when the kernel allows it (root, or
  unprivileged user namespaces), where no interface but a down loopback exists.

Inside Python, a bootstrap replaces ``socket.socket`` and the name-resolution
functions with ones that raise ``PermissionError`` before the program runs, so
network use fails with a clear message even where namespaces are unavailable.
This is containment for honest mistakes and casual misuse, not a security
boundary against hostile code: use a container or VM for that.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NETWORK_BLOCKED", "RunResult", "run_python"]

NETWORK_BLOCKED = "network access is blocked in the code_exec sandbox"
_OUTPUT_LIMIT_BYTES = 16 << 20
_TAIL_BYTES = 4096

# Runs in the child before the program: no sockets, no DNS, then the program as __main__.
_BOOTSTRAP = f"""
import runpy, socket, sys, _socket
def _blocked(*args, **kwargs):
    raise PermissionError({NETWORK_BLOCKED!r})
class _BlockedSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _blocked()
for _module in (socket, _socket):
    if hasattr(_module, "socket"):
        _module.socket = _BlockedSocket
    for _name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo",
                  "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        if hasattr(_module, _name):
            setattr(_module, _name, _blocked)
del _module, _name
_path = sys.argv[1]
sys.argv = [_path]
runpy.run_path(_path, run_name="__main__")
"""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a sandboxed run ended; ``exit_code`` is negative for a signal, None after a timeout."""

    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    pid: int
    network_namespace: bool


async def run_python(program: str, *, timeout_s: float, memory_bytes: int = 1 << 30) -> RunResult:
    """Run ``program`` as ``__main__`` in a sandboxed child; kill its process group on timeout.

    ``stdout`` and ``stderr`` are the last 4 KiB of each. The number of
    concurrent children per event loop is capped at the CPU count, so wall
    timeouts are not eaten by waiting for a core.
    """
    async with _process_slots():
        with tempfile.TemporaryDirectory(prefix="evalkit-code-") as folder:
            work = Path(folder)
            script = _write_program(work, program)
            # Files, not pipes: no pipe to drain while waiting, and RLIMIT_FSIZE bounds them.
            with (work / "stdout.txt").open("w+b") as out, (work / "stderr.txt").open("w+b") as err:
                return await _run(script, work, out, err, timeout_s, memory_bytes)


def _write_program(work: Path, program: str) -> Path:
    """Write the program; a few KiB on local disk, so not worth a thread."""
    # Readable by anyone: in a user namespace the child may be seen as another user.
    work.chmod(0o755)
    script = work / "program.py"
    script.write_text(program, encoding="utf-8")
    script.chmod(0o644)
    return script


async def _run(script: Path, work: Path, out, err, timeout_s: float, memory_bytes: int) -> RunResult:
    posix = os.name == "posix"
    namespace_flag = _NamespaceFlag(work / "netns")
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _BOOTSTRAP,
        str(script),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        cwd=str(work),
        env=_minimal_env(work),
        start_new_session=posix,
        preexec_fn=_child_limits(timeout_s, memory_bytes, namespace_flag) if posix else None,
    )
    timed_out = False
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
    finally:
        # Also on success: the program may have left children behind in its group.
        _kill_group(process)
        await process.wait()
    duration = time.monotonic() - started
    return RunResult(
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        stdout=_tail(out),
        stderr=_tail(err),
        duration_s=duration,
        pid=process.pid,
        network_namespace=namespace_flag.was_set(),
    )


def _minimal_env(work: Path) -> dict[str, str]:
    """No credentials, proxies or Python settings from the parent; UTF-8 text."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


class _NamespaceFlag:
    """A file the child creates once it is in its own network namespace (preexec_fn cannot return values)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> None:
        """Record, from the child, that the namespace was entered."""
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError:
            pass  # only the report is lost; an exception here would abort the run

    def was_set(self) -> bool:
        """Whether the child entered its own network namespace."""
        return self.path.exists()


def _child_limits(timeout_s: float, memory_bytes: int, flag: _NamespaceFlag):
    """The preexec function: resource limits, then a private network namespace if possible."""
    import resource  # POSIX only; imported here so Windows can import this module

    unshare = _libc_unshare()
    cpu_seconds = int(timeout_s) + 2

    def limit_child() -> None:
        """Runs in the forked child before exec."""
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (_OUTPUT_LIMIT_BYTES, _OUTPUT_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if unshare is not None:
            # A user namespace also drops the child's power to raise those limits again.
            for flags in (_CLONE_NEWUSER | _CLONE_NEWNET, _CLONE_NEWNET):
                if unshare(flags) == 0:
                    flag.mark()
                    break

    return limit_child


_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def _libc_unshare():
    """libc's ``unshare`` on Linux, looked up in the parent (the child only calls it), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError):
        return None


def _kill_group(process: asyncio.subprocess.Process) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        elif process.returncode is None:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _tail(handle) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - _TAIL_BYTES))
    return handle.read().decode("utf-8", errors="replace")


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _process_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(max(1, os.cpu_count() or 1))
    return slots
