"""One writer per run directory: an OS file lock on ``<run>/.lock``.

Two processes writing one run (two ``evalkit run --resume RUN`` at once, a
``regrade`` during a resume) interleave log parts and compactions: cells go
missing while the manifest says complete. Every command that writes a run
holds an exclusive ``flock`` on the run's lock file for as long as it writes;
readers that must see a finished run (``merge`` reading its shards) hold a
shared one. The kernel drops the lock when the holder's last descriptor
closes, so a crashed or SIGKILLed run never leaves a stale lock behind. The
descriptor is close-on-exec: a grader's subprocess cannot keep it alive.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType

from ..errors import ConfigError

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive (writer) or shared (reader) lock on a run directory; a context manager.

    Taking it never waits: when another process holds it, :meth:`acquire`
    raises a :class:`~evalkit.ConfigError` naming the directory (exit code 2).
    """

    def __init__(self, run_dir: str | Path, *, shared: bool = False, field: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.shared = shared
        self.field = field
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        path = self.run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if not self.shared or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            try:  # a reader needs no write access: an existing lock file is locked read-only
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return self  # no lock file and none can be made: no evalkit can write here either
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError("another evalkit process is writing this run directory; wait for it to end "
                              "(a crashed process releases it at once)", file=str(self.run_dir),
                              field=self.field) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
