"""Run model-written code against an item's tests in a bubblewrap sandbox, with a verdict it cannot forge.

Isolation (see :mod:`._bwrap` for the exact command line): the program runs under
bubblewrap in its own user, PID, network, IPC, UTS and cgroup namespaces, as an
unprivileged uid with no capabilities, and sees only read-only system folders,
the interpreter's standard library and a private 64 MiB ``/tmp``; its
environment holds no secrets, and ``/proc`` shows only its own processes.
Resource limits: wall timeout, address space (``memory_mb``), CPU seconds,
64 processes, 16 MiB per file, no core files.

Nothing outlives a run: when the program's first process exits or the timeout
hits, the sandbox's PID namespace is torn down (every process in it is killed by
the kernel), and this module waits for that before returning. If evalkit itself
is killed (even ``kill -9``), ``--die-with-parent`` takes the sandbox down the
same way. Nothing is created on the host's disk (the writable ``/tmp`` is a
tmpfs inside the sandbox; outputs are unnamed files), so there is nothing to
sweep up — a sweep of stale folders could not work anyway: it runs only when
evalkit runs again, and cannot tell a dead run's folder from a live one's.

The verdict (see :mod:`._harness`): a fresh random nonce per run reaches the
harness on stdin, which it reads and closes before the program runs; the
harness writes ``<nonce> passed`` to a separate file only after the tests'
``check`` returned. A pass is that record and nothing else, so exit status 0
(``os._exit(0)``, ``sys.exit(0)``, an exit hook), text printed on any stream,
records without the nonce, a killed harness, a swapped-in ``check`` or tests
never reached all grade as failures.

What it does not guarantee: the program runs in the same interpreter as the
tests, before them. Code written to defeat *this* harness can read the nonce
out of the harness's memory, and any program can change what the tests'
``assert`` statements see (return an object that equals everything, patch
``math.isclose`` or builtins the tests use). The grade is "the tests passed in
the program's company", as in HumanEval's own harness; the sandbox ensures the
attempt harms nothing outside it.

Needs: Linux, bubblewrap (``bwrap``, >= 0.8 for ``--disable-userns``; older
versions run without it) and user namespaces. Where that is missing or fails its
self-check, :func:`run_tests` raises :class:`SandboxUnavailable` unless the
caller allows ``unsafe`` execution (:mod:`._unsafe`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import threading
import weakref
from typing import Self

from ..errors import EvalkitError
from ._bwrap import SANDBOX_UID, Bwrap, bwrap_environment, locate, probe
from ._sandbox_io import Channels, Job, RunResult

__all__ = ["RunResult", "SandboxUnavailable", "run_tests", "sandbox_problem"]

MAX_PROCESSES = 64
_GONE_WAIT_S = 5.0


class SandboxUnavailable(EvalkitError):
    """No working sandbox for model-written code here, and running it unisolated was not allowed."""


def sandbox_problem() -> str | None:
    """None when the code_exec sandbox works here; otherwise why not (one line).

    The first call per bwrap executable runs a self-check (a tiny program
    through the real sandbox, ~0.1 s); the answer is cached for the process.
    """
    checked = _checked_bwrap()
    return checked if isinstance(checked, str) else None


def unavailable_message(problem: str) -> str:
    """The :class:`SandboxUnavailable` message: the two ways out first (rows clip long reasons), then why."""
    return (
        "no sandbox for model-written code (install bubblewrap, e.g. apt-get install bubblewrap, with user "
        f"namespaces enabled, or pass --unsafe-code-exec to run it without isolation): {problem.rstrip('.')}"
    )


async def run_tests(
    candidate: str,
    tests: str,
    entry_point: str,
    *,
    timeout_s: float,
    memory_bytes: int = 1 << 30,
    unsafe: bool = False,
) -> RunResult:
    """Run ``candidate`` then ``tests`` then ``check(<entry_point>)`` in the sandbox.

    Without a working sandbox: :class:`SandboxUnavailable`, or with ``unsafe``
    a plain child process (:mod:`._unsafe`). The number of concurrent runs per
    event loop is capped at the CPU count, so wall timeouts are not eaten by
    waiting for a core.
    """
    checked = _cached_bwrap()
    if checked is None:
        checked = await asyncio.to_thread(_checked_bwrap)
    if isinstance(checked, str) and not unsafe:
        raise SandboxUnavailable(unavailable_message(checked))
    job = Job(candidate, tests, entry_point, timeout_s=timeout_s, memory_bytes=memory_bytes)
    async with _process_slots():
        if isinstance(checked, Bwrap):
            return await _run_in_bwrap(checked, job)
        from ._unsafe import run_unsafe

        return await run_unsafe(job)


# --- the availability check, once per process and bwrap executable ------------------------------------------

_checked: dict[tuple[str, int], Bwrap | str] = {}
_check_lock = threading.Lock()
_SELF_CHECK = Job(
    "def f():\n    return 1\n",
    "def check(candidate):\n    assert candidate() == 1\n",
    "f",
    timeout_s=20.0,
    memory_bytes=1 << 30,
)


def _cached_bwrap() -> Bwrap | str | None:
    path, missing = locate()
    if path is None:
        return missing
    return _checked.get((path, os.geteuid()))


def _checked_bwrap() -> Bwrap | str:
    """The working bwrap, or why there is none (runs the self-check once per executable)."""
    path, missing = locate()
    if path is None:
        return missing
    key = (path, os.geteuid())
    with _check_lock:
        if key not in _checked:
            _checked[key] = _self_check(path)
        return _checked[key]


def _self_check(path: str) -> Bwrap | str:
    """Grade a one-line program through the real sandbox; the Bwrap if it passed, else the reason."""
    try:
        bwrap = probe(path)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{path} does not run: {error}"
    try:
        # A loop of its own in a thread of its own: callers may be inside a running loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            result = pool.submit(asyncio.run, _run_in_bwrap(bwrap, _SELF_CHECK)).result()
    except (OSError, RuntimeError, ValueError) as error:
        return f"bubblewrap failed its self-check: {error}"
    if result.passed:
        return bwrap
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return f"bubblewrap failed its self-check: {lines[-1] if lines else f'exit code {result.exit_code}'}"


# --- one run under bubblewrap ----------------------------------------------------------------------------


async def _run_in_bwrap(bwrap: Bwrap, job: Job) -> RunResult:
    as_root = os.geteuid() == 0
    limits = job.limits(max_processes=MAX_PROCESSES)
    with (
        Channels(job, limits=limits, drop_root_to=SANDBOX_UID if as_root else None) as channels,
        _Pipes(as_root) as pipes,
    ):
        command = bwrap.command(info_fd=pipes.info_w, userns_block_fd=pipes.block_r)
        process = await channels.start(command, pass_fds=pipes.child_ends(), env=bwrap_environment())
        pipes.close_child_ends()
        namespace_init = None
        timed_out = False
        try:
            async with asyncio.timeout(job.timeout_s):
                namespace_init = await _start(pipes, as_root)
                await process.wait()
        except TimeoutError:
            timed_out = True
        finally:
            # Killing bwrap kills the namespace's init (--die-with-parent), and with it every process inside.
            await channels.stop()
            await _until_gone(namespace_init)
        return channels.result(
            exit_code=None if timed_out else _exit_status(process.returncode),
            timed_out=timed_out,
            sandbox="bubblewrap",
            network_namespace=True,
        )


class _Pipes:
    """bwrap's ``--info-fd`` (it reports the namespace init's pid) and, as root, ``--userns-block-fd``."""

    def __init__(self, as_root: bool) -> None:
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe() if as_root else (None, None)

    def child_ends(self) -> tuple[int, ...]:
        return tuple(fd for fd in (self.info_w, self.block_r) if fd is not None)

    def close_child_ends(self) -> None:
        for fd in self.child_ends():
            os.close(fd)
        self.info_w = self.block_r = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in (self.info_r, self.info_w, self.block_r, self.block_w):
            if fd is not None:
                os.close(fd)


async def _start(pipes: _Pipes, as_root: bool) -> int | None:
    """A pidfd of the sandbox's namespace init, after writing the id maps as root; None if bwrap failed."""
    info = await _read_to_eof(pipes.info_r)
    try:
        pid = int(json.loads(info)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None  # bwrap stopped before creating the sandbox; its stderr and exit status say why
    try:
        init = os.pidfd_open(pid)
    except OSError:
        init = None  # already gone
    if as_root:
        # Root stays root for bwrap's mounts; the harness then becomes SANDBOX_UID (see _bwrap).
        mapping = f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n".encode()
        for name in ("uid_map", "gid_map"):
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY)
            try:
                os.write(fd, mapping)
            finally:
                os.close(fd)
        os.write(pipes.block_w, b"1")
    return init


async def _read_to_eof(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            chunks.append(chunk)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)


async def _until_gone(pidfd: int | None) -> None:
    """Wait until the namespace's init has exited: the kernel has then killed everything in the namespace."""
    if pidfd is None:
        return
    loop = asyncio.get_running_loop()
    try:
        for _attempt in range(2):
            exited = loop.create_future()
            loop.add_reader(pidfd, lambda done=exited: done.done() or done.set_result(None))
            try:
                await asyncio.wait_for(exited, _GONE_WAIT_S)
                return
            except TimeoutError:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            finally:
                loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


def _exit_status(returncode: int | None) -> int | None:
    """bwrap reports a program killed by signal N as 128 + N; negative N, as for any child process."""
    if returncode is not None and returncode > 128:
        return -(returncode - 128)
    return returncode


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _process_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(max(1, os.cpu_count() or 1))
    return slots
