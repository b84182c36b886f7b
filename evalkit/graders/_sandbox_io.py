"""What goes into a run of the harness and what comes out: the job, the output tails and the verdict.

All four channels of a run are unnamed temporary files (``O_TMPFILE``): stdin
carries the job to the harness, stdout and stderr are bounded by
``RLIMIT_FSIZE`` (files, not pipes, so nothing has to be drained while
waiting), and the verdict file receives the harness's pass record. None has a
name on disk, so a killed evalkit leaves none of them behind.

:class:`Channels` also starts and stops the harness's process, the same way for
the sandbox (:mod:`._sandbox`) and the unsafe path (:mod:`._unsafe`): the
channels wired to it, the verdict file under the descriptor number the job
names, a session of its own so that stopping it kills everything it started.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any, Self

__all__ = ["OUTPUT_LIMIT_BYTES", "Channels", "Job", "RunResult"]

OUTPUT_LIMIT_BYTES = 16 << 20
_TAIL_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Job:
    """The reply's program, the item's tests and entry point, and the limits to run them under."""

    candidate: str
    tests: str
    entry_point: str
    timeout_s: float
    memory_bytes: int

    def limits(self, *, max_processes: int | None) -> dict[str, tuple[int, int]]:
        """The rlimits (soft, hard) the harness sets on itself before the program runs."""
        cpu = int(self.timeout_s) + 2  # a backstop: the wall timeout normally ends the run first
        limits = {
            "RLIMIT_AS": (self.memory_bytes, self.memory_bytes),
            # SIGXCPU at the soft limit (reported as the CPU time limit); SIGKILL a second later.
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_FSIZE": (OUTPUT_LIMIT_BYTES, OUTPUT_LIMIT_BYTES),
            "RLIMIT_CORE": (0, 0),
        }
        if max_processes is not None:
            limits["RLIMIT_NPROC"] = (max_processes, max_processes)
        return limits


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a sandboxed run ended.

    ``passed`` is True only when the harness's pass record, with this run's
    nonce, reached the verdict file: ``check`` returned. ``exit_code`` is
    negative for a signal and None after a timeout; ``stdout``/``stderr`` are the
    last 4 KiB of each. ``sandbox`` is ``"bubblewrap"`` or ``"none (unsafe)"``.
    """

    passed: bool
    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    pid: int
    sandbox: str
    network_namespace: bool


class Channels:
    """The run's stdin (the job, with a fresh nonce), stdout, stderr and verdict files, and its process."""

    def __init__(self, job: Job, *, limits: dict[str, tuple[int, int]], drop_root_to: int | None) -> None:
        self._nonce = secrets.token_hex(16)
        files = [tempfile.TemporaryFile() for _ in range(4)]  # noqa: SIM115 - closed by __exit__
        self.stdin, self.stdout, self.stderr, self.verdict = files
        payload = {
            "candidate": job.candidate,
            "tests": job.tests,
            "entry_point": job.entry_point,
            "nonce": self._nonce,
            "verdict_fd": self.verdict.fileno(),  # the same number in the child (pass_fds keeps it)
            "limits": limits,
            "drop_root_to": drop_root_to,
        }
        self.stdin.write(marshal.dumps(payload))  # the same interpreter version reads it (_harness)
        self.stdin.seek(0)
        self._process: asyncio.subprocess.Process | None = None
        self._started = 0.0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in (self.stdin, self.stdout, self.stderr, self.verdict):
            handle.close()

    async def start(self, command: list[str], *, pass_fds: tuple[int, ...] = (),
                    **options: Any) -> asyncio.subprocess.Process:
        """Start ``command`` (which runs the harness) on these channels, leading a new session."""
        self._started = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=self.stdin,
            stdout=self.stdout,
            stderr=self.stderr,
            pass_fds=(*pass_fds, self.verdict.fileno()),
            start_new_session=True,
            **options,
        )
        return self._process

    async def stop(self) -> None:
        """SIGKILL the process's whole group (it may have left children, even after a pass) and reap it."""
        assert self._process is not None, "start() first"
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # already gone
        await self._process.wait()

    def result(self, *, exit_code: int | None, timed_out: bool, sandbox: str,
               network_namespace: bool) -> RunResult:
        """The run's result, once :meth:`stop` returned."""
        assert self._process is not None, "start() first"
        return RunResult(
            passed=not timed_out and self._verdict_recorded(),
            exit_code=exit_code,
            timed_out=timed_out,
            stdout=_tail(self.stdout),
            stderr=_tail(self.stderr),
            duration_s=time.monotonic() - self._started,
            pid=self._process.pid,
            sandbox=sandbox,
            network_namespace=network_namespace,
        )

    def _verdict_recorded(self) -> bool:
        self.verdict.seek(0)
        # Bounded read: the program may have written to the file too (it cannot know the nonce).
        written = self.verdict.read(OUTPUT_LIMIT_BYTES).decode("ascii", errors="replace")
        return f"{self._nonce} passed" in written.splitlines()


def _tail(handle: IO[bytes]) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - _TAIL_BYTES))
    return handle.read().decode("utf-8", errors="replace")
