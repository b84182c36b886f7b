"""The program the sandboxed interpreter runs: confine itself, run the reply's code and the tests, report.

Its text is the ``-c`` program of the sandboxed ``python -I -S`` (see
:mod:`._sandbox`; evalkit reads it as text, never imports it). It uses the
standard library only and runs before any model-written code: it is the one
trusted part inside the sandbox.

Protocol with :mod:`._sandbox`
------------------------------
stdin (fd 0)
    One ``marshal``-ed dict (no import needed to read it: json would cost the
    run ~10 ms of imports), read to its end before anything else runs; fd 0 is
    then /dev/null. Keys: ``candidate`` and ``tests`` (Python source), ``entry_point``,
    ``nonce`` (random, new for every run), ``verdict_fd``, ``limits`` (``RLIMIT_*``
    name → (soft, hard)) and ``drop_root_to`` (a uid, or None).
``verdict_fd``
    A file the harness writes ``<nonce> passed`` to after ``check(candidate)``
    returned, and nothing else; it then exits at once. evalkit counts a pass only
    when that record is there: an exit status, or anything printed, never is.
exit status
    0 after the verdict; 1 when the code or the tests raised (traceback on
    stderr) or exited early; 3 when the sandbox could not be set up (one line on
    stderr), in which case no model-written code ran.

The candidate's code is compiled and run on its own, then the tests, then the
harness calls the ``check`` the tests defined (a function whose code object comes
from the tests' source, so the program cannot swap in its own or patch the one
the tests defined) with the entry point.
"""

import marshal
import os
import sys

NETWORK_BLOCKED = "network access is blocked in the code_exec sandbox"
SETUP_FAILED = 3


def main() -> None:
    """Read the job, confine the process, run the code and the tests, report a pass on the verdict fd."""
    job = marshal.loads(_read_stdin())
    report = _reporter(job.pop("verdict_fd"), job.pop("nonce"))
    try:
        _confine(job.get("drop_root_to"), job["limits"])
    except Exception as error:  # noqa: BLE001 - a sandbox that is not as described never runs the code
        print(f"evalkit sandbox setup failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        os._exit(SETUP_FAILED)
    passed = _run(job.pop("candidate"), job.pop("tests"), job["entry_point"])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # output over the size limit (or closed by the program): the verdict still stands
    if passed:
        report()
    # No interpreter shutdown: atexit handlers, finalizers and threads the program left get no say.
    os._exit(0 if passed else 1)


def _read_stdin() -> bytes:
    data = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return data


def _reporter(fd: int, nonce: str):
    """The one function that writes the pass record; the record and fd live only in its closure."""
    os.set_inheritable(fd, False)  # the program's subprocesses do not get it
    record = f"{nonce} passed\n".encode()

    def report() -> None:
        try:
            os.write(fd, record)
        except OSError:
            pass  # the program closed or replaced the fd: no record, so no pass

    return report


def _confine(drop_root_to, limits) -> None:
    """Leave root (when evalkit runs as root), cap resources, and make network use fail clearly."""
    if drop_root_to is not None and os.getuid() == 0:
        _drop_root(int(drop_root_to))
    import resource

    for name, (soft, hard) in limits.items():
        # Hard limits too: without CAP_SYS_RESOURCE in the host's namespace, no one here can raise them.
        resource.setrlimit(getattr(resource, name), (soft, hard))
    _block_sockets()


def _drop_root(uid: int) -> None:
    """Become ``uid`` with no capabilities, after forbidding new user namespaces in this one.

    As root, evalkit maps root into the sandbox's user namespace so bubblewrap can
    bind the interpreter wherever it lives, and lets this harness keep
    CAP_SETUID/CAP_SETGID/CAP_SYS_RESOURCE for these few lines. Running the code
    as a non-root uid makes RLIMIT_NPROC count (the kernel exempts root).
    """
    # bwrap's --disable-userns cannot be combined with a uid map we write, so do what it does:
    # this namespace's limit is 0 (writable with CAP_SYS_RESOURCE here; dropped just below).
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # leaving uid 0 clears the permitted and effective capabilities
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    if os.getresuid() != (uid, uid, uid) or any(int(fields[cap], 16) for cap in ("CapPrm", "CapEff")):
        raise RuntimeError("could not drop root privileges")


def _block_sockets() -> None:
    """New sockets and name lookups raise a clear PermissionError (the network namespace is the real barrier).

    Only the C module is patched, before ``socket`` is imported: ``socket.py``
    then subclasses the blocked class and wraps the blocked functions. Wrapping
    a descriptor the process already has stays possible, so ``socketpair()``
    (asyncio's self-pipe) works: it reaches nothing outside the process.
    """
    import _socket

    def blocked(*args, **kwargs):
        raise PermissionError(NETWORK_BLOCKED)

    class BlockedSocket(_socket.socket):
        __slots__ = ()  # socket.socket adds __weakref__ itself

        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):  # the C signature
            if fileno is None:
                blocked()
            super().__init__(family, type, proto, fileno)

    _socket.socket = _socket.SocketType = BlockedSocket
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        if hasattr(_socket, name):
            setattr(_socket, name, blocked)


def _run(candidate: str, tests: str, entry_point: str) -> bool:
    """Run the program as ``__main__``, the tests, then ``check(entry_point)``; True if check returned."""
    import site  # with -S its import runs nothing: only the builtins a normal interpreter adds

    site.setquit()
    site.setcopyright()
    site.sethelper()
    module = type(sys)("__main__")
    module.__file__ = "program.py"
    namespace = module.__dict__
    namespace["__builtins__"] = sys.modules["builtins"]
    sys.modules["__main__"] = module  # as runpy does: doctest.testmod() and friends look here
    try:
        tests_code = compile(tests, "tests.py", "exec", dont_inherit=True)
        exec(compile(candidate, "program.py", "exec", dont_inherit=True), namespace)  # noqa: S102 - the point
        exec(tests_code, namespace)  # noqa: S102
        check = _the_tests_check(namespace, tests_code)
        if entry_point not in namespace:
            raise NameError(f"name {entry_point!r} is not defined")
        function = namespace[entry_point]
        sys.settrace(None)  # hooks the program installed do not run inside the tests' frames
        sys.setprofile(None)
        check(function)
    except SystemExit as exit_:
        print(f"SystemExit: {exit_.code!r} (the program exited before the tests finished)", file=sys.stderr)
        return False
    except BaseException:  # noqa: BLE001 - the interpreter's own report, then "failed"
        _print_traceback({"program.py": candidate, "tests.py": tests})
        return False
    return True


def _print_traceback(sources: dict) -> None:
    """The current exception as the interpreter prints it, with the source lines (no file written)."""
    import linecache
    import traceback

    for filename, source in sources.items():
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    traceback.print_exc()


def _the_tests_check(namespace: dict, tests_code) -> object:
    """The ``check`` function the tests' own ``def check`` created, or RuntimeError."""
    check = namespace.get("check")
    code = getattr(check, "__code__", None)
    if not any(code is const for const in tests_code.co_consts):
        raise RuntimeError("check() is missing or is not the function the tests define")
    return check


if __name__ == "__main__":
    main()
