"""A router is a provider: the base every policy shares.

A :class:`Router` takes targets that are providers or other routers and offers
the provider interface itself (``complete``, ``stream``), so policies nest: a
task router whose routes are fallback chains of balancers is just a tree of
routers. Each policy implements one method, :meth:`Router._route`, that tries
targets through :meth:`Router._attempt` and returns the serving response; the
base class flattens nested attempts, feeds the monitor and streams deltas.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Sequence

from ..errors import AllTargetsFailed, ProviderError, TimeoutError
from ..providers._http import DELTA_SINK
from ..types import Attempt, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from .monitor import Monitor

__all__ = ["Router", "RoutedStream", "Target", "as_target", "close_all", "close_on_exit", "fan_out"]

Target = Any
"""A provider or a router: anything with ``name``, ``complete`` and ``stream``."""


def as_target(target: Target | str) -> Target:
    """A provider for ``"provider:model"`` strings; providers and routers pass through."""
    if isinstance(target, str):
        from ..providers import get_provider

        return get_provider(target)
    return target


def fan_out(target: Target) -> int:
    """How many billed requests one call to ``target`` can send at once: 1 for a provider.

    A router answers with its own :attr:`Router.fan_out`; a wrapper without one
    (a :class:`~evalkit.router.limits.LimitedTarget`) with its inner target's.
    """
    own = getattr(target, "fan_out", None)
    if isinstance(own, int):
        return own
    inner = getattr(target, "target", None)
    return fan_out(inner) if inner is not None else 1


class Router:
    """Base of every routing policy. Subclasses implement :meth:`_route`."""

    kind = "router"

    def __init__(self, targets: Iterable[Target | str], *, name: str | None = None,
                 monitor: Monitor | None = None) -> None:
        self.targets: tuple[Target, ...] = tuple(as_target(t) for t in targets)
        if not self.targets:
            raise ValueError(f"{type(self).__name__} needs at least one target")
        self.name = name or f"{self.kind}({', '.join(t.name for t in self.targets)})"
        self.monitor = monitor

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @staticmethod
    def from_config(source: Any) -> Router:
        """The router tree a YAML routing config describes (a path, or an already-parsed mapping).

        See :mod:`evalkit.router.config` for the format; a bad field is a
        :class:`~evalkit.ConfigError` naming its file, line and YAML path.
        """
        from .config import load_router_config

        return load_router_config(source)

    @property
    def fan_out(self) -> int:
        """Billed requests one call can have in flight at once: its largest target's.

        A policy that sends to one target at a time fans out as far as the
        widest target it may pick; :class:`~evalkit.router.hedge.HedgedRouter`
        overrides this. A budget reserves that many worst cases (``CostAwareRouter``).
        """
        return max(fan_out(t) for t in self.targets)

    @property
    def context_window(self) -> int | None:
        """The largest window among the targets (``None`` when any target's is unknown)."""
        windows = [getattr(t, "context_window", None) for t in self.targets]
        return None if any(w is None for w in windows) else max(windows)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Route ``request``; the response lists every attempt, the serving one last."""
        attempts: list[Attempt] = []
        try:
            response = await self._route(request, attempts)
        except AllTargetsFailed as exc:
            if self.monitor is not None:
                self.monitor.record(attempts, request)
            exc.attempts = tuple(attempts)
            raise
        if self.monitor is not None:
            self.monitor.record(attempts, request)
        return response.replace(attempts=tuple(attempts))

    def stream(self, request: ChatRequest) -> RoutedStream:
        """Text deltas as the serving target produces them; ``.response`` once done."""
        return RoutedStream(self, request)

    async def aclose(self) -> None:
        """Close every provider in the tree once, nested routers and shared targets included.

        A target named by several nodes of a config (one ``targets:`` entry used
        by two routes) is one object: it is closed once. Every provider is
        closed even when closing another fails; the first failure is raised after.
        """
        await close_all(self.targets)

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        await close_on_exit(self, exc)

    # -- for subclasses ------------------------------------------------------------------

    async def _route(self, request: ChatRequest, attempts: list[Attempt]) -> ChatResponse:
        raise NotImplementedError

    async def _attempt(self, target: Target, request: ChatRequest, attempts: list[Attempt],
                       retry: int = 0, timeout_s: float | None = None) -> ChatResponse:
        """Send ``request`` to ``target`` once, appending what happened to ``attempts``.

        Re-raises the target's :class:`~evalkit.ProviderError` after recording it;
        a nested router's attempts are flattened into ``attempts``. ``timeout_s``
        bounds the attempt (the caller's remaining deadline).
        """
        depth = _distinct_targets(attempts, target.name)
        started_at = time.time()
        started = time.perf_counter()
        try:
            if timeout_s is None:
                response = await target.complete(request)
            else:
                try:
                    async with asyncio.timeout(timeout_s):
                        response = await target.complete(request)
                except builtins.TimeoutError:
                    raise TimeoutError(f"deadline reached after {timeout_s:.3g}s") from None
        except ProviderError as exc:
            inner = getattr(exc, "attempts", None)
            if inner is not None:  # a nested router's failure: keep its attempts, flattened
                attempts.extend(_shift(inner, depth))
                raise
            attempts.append(Attempt(
                target=target.name, error_kind=exc.kind.value, error=exc.message[:300],
                latency_ms=(time.perf_counter() - started) * 1000.0, started_at=started_at,
                depth=depth, retry=retry, usage=exc.usage, cost=exc.cost,
            ))
            raise
        if response.attempts:
            attempts.extend(_shift(response.attempts, depth))
        else:
            attempts.append(Attempt(
                target=response.provider or target.name, latency_ms=response.latency_ms,
                ttft_ms=response.ttft_ms, usage=response.usage, cost=response.cost,
                started_at=started_at, depth=depth, retry=retry,
            ))
        return response

    def _skip(self, target: Target, reason: str, attempts: list[Attempt], detail: str = "") -> None:
        """Record that ``target`` was passed over without sending (circuit open, window too small…)."""
        attempts.append(Attempt(target=target.name, error_kind=reason, error=detail or None,
                                started_at=time.time(), depth=_distinct_targets(attempts), sent=False))

    def _exhausted(self, errors: Sequence[ProviderError], attempts: list[Attempt]) -> AllTargetsFailed:
        sent = sum(1 for a in attempts if a.sent)
        summary = "; ".join(f"{a.target}: {a.error_kind}" for a in attempts) or "no target available"
        return AllTargetsFailed(f"{self.name}: {sent} attempt(s) failed ({summary})",
                                attempts=tuple(attempts), errors=tuple(errors))


async def close_all(targets: Iterable[Target]) -> None:
    """Close each distinct leaf under ``targets`` once (see :meth:`Router.aclose`).

    Routers and :class:`~evalkit.router.limits.LimitedTarget` wrappers are walked
    rather than closed, so a provider reached by two paths is closed once; any
    other target with an ``aclose`` (a provider, your own router) is closed itself.
    """
    from .limits import LimitedTarget

    seen: set[int] = set()
    failures: list[BaseException] = []
    pending = list(targets)
    while pending:
        target = pending.pop(0)
        if id(target) in seen:
            continue
        seen.add(id(target))
        if isinstance(target, Router) and type(target).aclose is Router.aclose:
            pending.extend(target.targets)
        elif isinstance(target, LimitedTarget):
            pending.append(target.target)
        elif (close := getattr(target, "aclose", None)) is not None:
            try:
                await close()
            except Exception as exc:  # close the rest first; report the first failure after
                failures.append(exc)
    if failures:
        raise failures[0]


async def close_on_exit(closable: Any, error: BaseException | None) -> None:
    """``await closable.aclose()`` leaving an ``async with``; ``error`` is what the block raised, if anything.

    When the block failed, its error is the one the caller sees: a close
    failure on top is added to it as a note instead of replacing it.
    """
    try:
        await closable.aclose()
    except Exception as close_error:
        if error is None:
            raise
        error.add_note(f"then closing {closable.name} failed: {close_error!r}")


def _distinct_targets(attempts: Sequence[Attempt], name: str | None = None) -> int:
    """Fallback depth of ``name``: its position among the distinct targets tried so far."""
    seen: dict[str, int] = {}
    for a in attempts:
        seen.setdefault(a.target, len(seen))
    return seen.get(name, len(seen)) if name is not None else len(seen)


def _shift(inner: Sequence[Attempt], depth: int) -> list[Attempt]:
    return [replace(a, depth=a.depth + depth) for a in inner] if depth else list(inner)


def committed_to_stream() -> bool:
    """True when a routed stream has already shown text to its caller.

    After that a fallback would splice two answers together, so routers stop
    instead of moving on.
    """
    sink = DELTA_SINK.get()
    return sink is not None and sink.committed


class _QueueSink:
    __slots__ = ("queue", "committed")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.committed = False

    def push(self, text: str) -> None:
        self.committed = True
        self.queue.put_nowait(text)


class RoutedStream:
    """A router's answer as text deltas; after the last one, ``response`` is the whole answer."""

    def __init__(self, router: Router, request: ChatRequest) -> None:
        self.router = router
        self.request = request
        self.response: ChatResponse | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        sink = _QueueSink()
        token = DELTA_SINK.set(sink)
        try:  # the task copies the context, sink included
            task = asyncio.ensure_future(self.router.complete(self.request.replace(stream=True)))
        finally:
            DELTA_SINK.reset(token)
        try:
            while True:
                getter = asyncio.ensure_future(sink.queue.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                while not sink.queue.empty():
                    yield sink.queue.get_nowait()
                self.response = task.result()
                return
        finally:
            if not task.done():
                task.cancel()
