"""``--unsafe-code-exec`` without bubblewrap: the harness in a plain child process. Not a sandbox.

Only for trusted models, where no sandbox can run. The program runs as the
user, sees the user's files and can write wherever the user can; it runs in
``python -I -S`` (as in the sandbox) in a temporary working folder, in a new session (killed as a
group when it ends or times out), with a minimal environment and the harness's
limits (address space, CPU, file size, no core files; no process limit, which
would count every process of the user). A network namespace is entered when
the kernel allows it (``network_namespace`` in the grade says whether), and
the harness makes socket use raise a clear error either way.

What stays the same as in the sandbox: the verdict channel (exit status is
never a pass). What does not: a killed evalkit can leave the program's
processes and its ``evalkit-code-*`` folder behind.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from ._bwrap import bwrap_environment, harness_command
from ._sandbox_io import Channels, Job, RunResult

__all__ = ["run_unsafe"]

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


async def run_unsafe(job: Job) -> RunResult:
    """Run the harness for ``job`` in a child process; kill its process group when it ends or times out."""
    with (
        tempfile.TemporaryDirectory(prefix="evalkit-code-") as folder,
        Channels(job, limits=job.limits(max_processes=None), drop_root_to=None) as channels,
    ):
        work = Path(folder)
        flag = _NamespaceFlag(work / "netns")
        process = await channels.start(harness_command(), cwd=folder, env=_minimal_env(work),
                                       preexec_fn=_network_namespace_entry(flag))
        timed_out = False
        try:
            await asyncio.wait_for(process.wait(), job.timeout_s)
        except TimeoutError:
            timed_out = True
        finally:
            await channels.stop()  # also on success: the program may have left children in its group
        return channels.result(
            exit_code=None if timed_out else process.returncode,
            timed_out=timed_out,
            sandbox="none (unsafe)",
            network_namespace=flag.was_set(),
        )


def _minimal_env(work: Path) -> dict[str, str]:
    """The sandbox's environment (no keys, proxies or Python settings of the parent's), home in ``work``."""
    return {**bwrap_environment(), "HOME": str(work), "TMPDIR": str(work)}


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


def _network_namespace_entry(flag: _NamespaceFlag):
    """The preexec function: a private network namespace if the kernel allows it."""
    unshare = _libc_unshare()

    def enter() -> None:
        """Runs in the forked child before exec."""
        if unshare is not None:
            for flags in (_CLONE_NEWUSER | _CLONE_NEWNET, _CLONE_NEWNET):
                if unshare(flags) == 0:
                    flag.mark()
                    break

    return enter


def _libc_unshare():
    """libc's ``unshare`` on Linux, looked up in the parent (the child only calls it), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError):
        return None
