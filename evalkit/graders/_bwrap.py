"""bubblewrap: where ``bwrap`` is, and the command line that isolates one sandboxed interpreter.

What the sandbox sees (everything else of the host does not exist in it):

* ``/usr`` (and the ``/bin``, ``/lib*`` links or folders), the interpreter's own
  prefix (``sys.base_prefix``: the standard library, never the virtualenv), and
  ``/etc/ld.so.cache`` and ``/etc/localtime`` — all read-only. No ``/home``,
  ``/root``, working directory, ``runs/``, ``/etc/passwd`` or site-packages of
  the virtualenv; the interpreter runs with ``-I -S``, so the program imports
  the standard library only.
* ``/tmp``: a private tmpfs of at most 64 MiB, the only writable place (the
  working directory). It is memory, gone with the sandbox: nothing is created
  on the host's disk, so nothing can be left behind there.
* A fresh ``/proc`` of its own PID namespace and a minimal ``/dev``.

And: new user, PID, network (only a loopback of its own), IPC, UTS and cgroup
namespaces (``--unshare-all``), a new session, ``--die-with-parent``, an empty
environment plus ``PATH``, ``HOME``, ``TMPDIR`` and a UTF-8 locale, no
capabilities, and no further user namespaces.

``bwrap`` is ``$EVALKIT_BWRAP`` when set, else the one on ``PATH``.

Root: the kernel does not apply ``RLIMIT_NPROC`` to root, and bwrap maps the
caller's uid into the sandbox, so a sandbox started by root would run the
program as root (in its own namespaces, without capabilities) with no process
limit. As root, evalkit therefore writes the sandbox's uid map itself
(``--userns-block-fd``: root stays mapped so bwrap can still bind an interpreter
under ``/root``, and uid 65534 is mapped too), and the harness switches to
65534 (the host's "nobody") before the program runs (see ``_harness._drop_root``).
bwrap's ``--disable-userns`` cannot be combined with that; the harness sets the
sandbox's ``max_user_namespaces`` to 0 instead, which is what it does.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources

__all__ = ["BWRAP_VARIABLE", "SANDBOX_UID", "Bwrap", "bwrap_environment", "harness_command", "locate", "probe"]

BWRAP_VARIABLE = "EVALKIT_BWRAP"
SANDBOX_UID = 65534  # "nobody": the program's uid inside the sandbox
TMP_BYTES = 64 << 20
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_READABLE_FILES = ("/etc/ld.so.cache", "/etc/localtime")  # the dynamic linker's cache; the time zone
_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}


def locate() -> tuple[str | None, str]:
    """The bwrap executable to use, or None and why there is none."""
    configured = os.environ.get(BWRAP_VARIABLE)
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured, ""
        return None, f"{BWRAP_VARIABLE}={configured} is not an executable file"
    found = shutil.which("bwrap")
    return found, "" if found else "bubblewrap (bwrap) is not installed: not found on PATH"


@dataclass(frozen=True, slots=True)
class Bwrap:
    """A bwrap executable and what its version supports."""

    path: str
    disable_userns: bool  # --disable-userns (bubblewrap >= 0.8.0)

    def command(self, *, info_fd: int, userns_block_fd: int | None) -> list[str]:
        """The bwrap command line running the harness in the sandbox.

        ``userns_block_fd`` is given when evalkit runs as root: bwrap then waits
        for evalkit to write the uid/gid maps (see the module docstring).
        """
        args = [self.path, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
        args += ["--clearenv"]
        args += [arg for name, value in _ENVIRONMENT.items() for arg in ("--setenv", name, value)]
        args += ["--info-fd", str(info_fd)]
        if userns_block_fd is None:
            args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL"]
            args += ["--disable-userns"] if self.disable_userns else []
        else:
            # Only for the harness's first lines; it drops to SANDBOX_UID, which clears them.
            args += ["--userns-block-fd", str(userns_block_fd)]
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SYS_RESOURCE"]
        args += list(_filesystem())
        args += ["--proc", "/proc", "--dev", "/dev"]
        # /tmp as on any system (1777): as root, bwrap creates it owned by root, and the program is not.
        args += ["--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
        # Last: the root and /dev were writable tmpfs folders while bwrap built them.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]
        return args + ["--", *harness_command()]


def probe(path: str) -> Bwrap:
    """What ``bwrap --version`` at ``path`` supports; OSError/CalledProcessError if it does not run."""
    version = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=10, check=True, env=_ENVIRONMENT
    ).stdout
    match = re.search(r"(\d+)\.(\d+)", version)
    numbers = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    return Bwrap(path=path, disable_userns=numbers >= (0, 8))


def bwrap_environment() -> dict[str, str]:
    """The environment of the bwrap process itself: nothing of evalkit's (no keys)."""
    return dict(_ENVIRONMENT)


@functools.cache
def interpreter() -> str:
    """The base interpreter (not the virtualenv's link to it), by its real path."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def harness_command() -> list[str]:
    """The sandboxed interpreter's command line: isolated mode, no site-packages, the harness as ``-c``.

    ``-S``: the program gets the standard library only (no third-party packages
    of the base installation), and startup is ~30 ms faster without the
    site-packages scan; the harness restores ``exit``, ``quit`` and ``help``.
    """
    return [interpreter(), "-I", "-S", "-c", harness_source()]


@functools.cache
def harness_source() -> str:
    """The text of :mod:`._harness`, the sandboxed interpreter's ``-c`` program."""
    return resources.files("evalkit.graders").joinpath("_harness.py").read_text(encoding="utf-8")


@functools.cache
def _filesystem() -> tuple[str, ...]:
    """Read-only binds: the system folders, the interpreter's prefix, two files of /etc."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        path = "/" + name
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    system = ["/usr"] + ["/" + name for name in _SYSTEM_DIRS]
    prefixes: list[str] = []
    for prefix in sorted({_real(sys.base_prefix), _real(sys.base_exec_prefix), _prefix_of(interpreter())}):
        if not any(_within(prefix, done) for done in system + prefixes):
            args += ["--ro-bind", prefix, prefix]
            prefixes.append(prefix)
    readable = [path for path in _READABLE_FILES if os.path.exists(path)]
    for path in readable:
        args += ["--ro-bind", path, path]
    # bwrap creates the folders leading to a bind with the host's modes (/root is 0700): open them
    # up, or the program, which does not run as their owner when evalkit is root, cannot reach inside.
    created = {os.path.dirname(path) for path in prefixes + readable}
    for folder in sorted({ancestor for path in created for ancestor in _ancestors(path)}):
        args += ["--chmod", "0755", folder]
    return tuple(args)


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``/a``, ``/a/b``, ``/a/b/c`` (not ``/``)."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _real(path: str) -> str:
    real = os.path.realpath(path)
    if real == "/" or real == os.path.realpath(os.path.expanduser("~")):
        # Binding it would show the whole disk, or the whole home folder, to the program.
        raise RuntimeError(f"the Python installation's prefix {real} is too broad to expose to the sandbox")
    return real


def _prefix_of(executable: str) -> str:
    """``<prefix>`` of ``<prefix>/bin/python3.x``."""
    return _real(os.path.dirname(os.path.dirname(executable)))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")
