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
import math
import time
from dataclasses import replace
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Literal, Mapping, Protocol, Sequence,
                    TypeAlias, TypedDict)

from .._relay import relay
from ..errors import AllTargetsFailed, ErrorKind, ProviderError, ProviderTimeoutError
from ..providers import Closeable, Provider
from ..types import Attempt, ChatRequest, ChatResponse, Message, StreamRestart
from ._call import MidStream, RoutedCall, check_mid_stream
from ._window import window_of

if TYPE_CHECKING:
    from pathlib import Path

    from ..providers import OnDelta
    from .monitor import Monitor
    from .state import RedisState

__all__ = ["Router", "RouterOptions", "RoutedStream", "Target", "as_target", "close_all", "close_on_exit",
           "fan_out"]

Target: TypeAlias = Provider
"""A provider or a router: anything with ``name``, ``complete`` and ``stream`` (:class:`~evalkit.providers.Provider`)."""


class RouterOptions(TypedDict, total=False):
    """The keyword options every policy passes on to :class:`Router` (``**router_options``)."""

    name: str | None
    monitor: Monitor | None
    mid_stream: MidStream


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
    """Base of every routing policy. Subclasses implement :meth:`_route`.

    ``mid_stream`` says what happens when a streamed answer breaks after its
    caller has seen text (a cut, a stall, a malformed event) and the policy
    tries another attempt: ``continue`` (the default) sends the text so far to
    that target as an assistant prefill and streams only the rest, one
    seamless answer, falling back to ``restart`` for a target that takes no
    prefill; ``restart`` sends the caller a
    :class:`~evalkit.types.StreamRestart` and then a whole new answer;
    ``fail`` ends the call with the original error. Either way a truncated
    answer is never a success.
    """

    kind = "router"
    state: RedisState | None = None
    """The :class:`~evalkit.router.state.RedisState` this router shares with other replicas (``None``: none);
    policies that keep shared state (breakers) set it, and ``Router.from_config`` sets it on the root."""
    owns_state = False
    """Whether :meth:`aclose` also closes ``self.state`` (set on the root that ``Router.from_config`` built with
    a ``state:`` block; a state you made and passed in yourself stays yours to close)."""

    def __init__(self, targets: Iterable[Target | str], *, name: str | None = None,
                 monitor: Monitor | None = None, mid_stream: MidStream = "continue") -> None:
        self.targets: tuple[Target, ...] = tuple(as_target(t) for t in targets)
        if not self.targets:
            raise ValueError(f"{type(self).__name__} needs at least one target")
        self.name = name or f"{self.kind}({', '.join(t.name for t in self.targets)})"
        self.monitor = monitor
        self.mid_stream: MidStream = check_mid_stream(mid_stream)
        self._refused_prefill: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @staticmethod
    def from_config(source: str | Path | Mapping[str, Any], *,
                    provider_options: Mapping[str, Any] | None = None) -> Router:
        """The router tree a YAML routing config describes (a path, or an already-parsed mapping).

        See :mod:`evalkit.router.config` for the format; a bad field is a
        :class:`~evalkit.ConfigError` naming its file, line and YAML path.
        ``provider_options`` are extra keyword options for every provider it
        builds (``{"transport": cassette.transport()}``).
        """
        from .config import load_router_config

        root: Router = load_router_config(source, provider_options=provider_options)
        return root

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
        windows = [window for t in self.targets if (window := window_of(t)) is not None]
        return max(windows) if len(windows) == len(self.targets) else None

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        """Route ``request``; the response lists every attempt, the serving one last.

        With ``request.stream`` and ``on_delta``, each text delta (and any
        :class:`~evalkit.types.StreamRestart`) is passed to ``on_delta`` as the
        serving target produces it; :meth:`stream` does this for you.
        """
        if isinstance(on_delta, RoutedCall):
            call = on_delta  # a nested router: the caller's call, passed down
        elif request.deadlines is None:
            call = RoutedCall(on_delta)
        else:
            call = RoutedCall.for_request(request, on_delta)
        attempts: list[Attempt] = []
        try:
            response = await self._route(request, attempts, call)
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
        A root built by ``Router.from_config`` with shared state then flushes
        and closes that state (pending settles and counters reach Redis first).
        """
        try:
            await close_all(self.targets)
        finally:
            if self.owns_state and self.state is not None:
                await self.state.aclose()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        await close_on_exit(self, exc)

    # -- for subclasses ------------------------------------------------------------------

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        raise NotImplementedError

    def _opened_callback(self, name: str) -> Callable[[], None]:
        """What a breaker of target ``name`` calls when it opens: tell the monitor (if any, looked up then)."""
        def opened() -> None:
            if self.monitor is not None:
                self.monitor.breaker_opened(name)

        return opened

    def _stream_lost(self, call: RoutedCall) -> bool:
        """True when the caller has seen text and this router's ``mid_stream`` is ``fail``: no attempt may follow."""
        return self.mid_stream == "fail" and call.shown > 0

    async def _attempt(self, target: Target, request: ChatRequest, attempts: list[Attempt], call: RoutedCall,
                       retry: int = 0, timeout_s: float | None = None) -> ChatResponse:
        """Send ``request`` to ``target`` once, appending what happened to ``attempts``.

        Re-raises the target's :class:`~evalkit.ProviderError` after recording it;
        a nested router's attempts are flattened into ``attempts``. ``timeout_s``
        bounds the attempt, as does the call's own deadline. When the caller has
        already seen text, a leaf target takes the stream over (see :meth:`_take_over`).
        """
        if call.shown and not isinstance(target, Router):
            return await self._take_over(target, request, attempts, call, retry, timeout_s)
        return await self._send(target, request, attempts, call, retry, timeout_s)

    async def _take_over(self, target: Target, request: ChatRequest, attempts: list[Attempt], call: RoutedCall,
                         retry: int, timeout_s: float | None) -> ChatResponse:
        """Send to ``target`` a stream whose caller has seen text: continue it when possible, else restart it.

        ``continue`` gives the text so far to the target as an assistant
        prefill and streams only the rest; a target without prefill (capability
        data, or one that refused a prefill with a 400 before, remembered per
        router) gets a restart: the caller is sent a
        :class:`~evalkit.types.StreamRestart`, then the whole new answer. The
        refused prefill stays a recorded attempt but never the call's error.
        """
        if self.mid_stream == "continue" and self._accepts_prefill(target):
            # The wire joins the continuation to the prefix (providers/_prefill.py: Anthropic's
            # stripped trailing whitespace, Mistral's echo of the prefix).
            prefix = call.text
            prefilled = request.replace(messages=(*request.messages, Message("assistant", prefix)))
            try:
                response = await self._send(target, prefilled, attempts, call, retry, timeout_s,
                                            "continue", len(prefix))
            except ProviderError as exc:
                if exc.kind is not ErrorKind.BAD_REQUEST:
                    raise
                self._refused_prefill.add(target.name)  # later calls restart at once
            else:
                return response.replace(text=call.text)
        why = ("mid_stream is 'restart'" if self.mid_stream == "restart"
               else f"{target.name} cannot continue another model's text (no prefill)")
        call.restart(why)
        return await self._send(target, request, attempts, call, retry, timeout_s, "restart")

    def _accepts_prefill(self, target: Target) -> bool:
        return getattr(target, "accepts_prefill", False) is True and target.name not in self._refused_prefill

    async def _send(self, target: Target, request: ChatRequest, attempts: list[Attempt], call: RoutedCall,
                    retry: int, timeout_s: float | None, recovery: Literal["continue", "restart"] | None = None,
                    join_at: int | None = None) -> ChatResponse:
        depth = _distinct_targets(attempts, target.name)
        if call.deadline is not None:
            left = call.deadline - time.monotonic()
            timeout_s = left if timeout_s is None else min(timeout_s, left)
        started_at = time.time()
        started = time.perf_counter()
        # A router gets the call whole; a leaf gets it as its delta callback when someone reads the stream.
        hand_down = isinstance(target, Router) or (request.stream and call.listening)
        answer = target.complete(request, on_delta=call) if hand_down else target.complete(request)
        try:
            if timeout_s is None or timeout_s == math.inf:  # unbounded: no timer to arm and cancel
                response = await answer
            else:
                try:
                    async with asyncio.timeout(max(timeout_s, 0.0)):
                        response = await answer
                except TimeoutError:
                    raise ProviderTimeoutError(f"deadline reached after {max(timeout_s, 0.0):.3g}s") from None
        except ProviderError as exc:
            inner = exc.attempts
            if inner is not None:  # a nested router's failure: keep its attempts, flattened
                attempts.extend(_shift(inner, depth))
                raise
            attempts.append(Attempt(
                target=target.name, error_kind=exc.kind.value, error=exc.message[:300],
                latency_ms=(time.perf_counter() - started) * 1000.0, started_at=started_at,
                depth=depth, retry=retry, usage=exc.usage, cost=exc.cost, recovery=recovery, join_at=join_at,
            ))
            raise
        if response.attempts:
            attempts.extend(_shift(response.attempts, depth))
        else:
            attempts.append(Attempt(
                target=response.provider or target.name, latency_ms=response.latency_ms,
                ttft_ms=response.ttft_ms, usage=response.usage, cost=response.cost,
                started_at=started_at, depth=depth, retry=retry, recovery=recovery, join_at=join_at,
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
        elif isinstance(target, Closeable):
            try:
                await target.aclose()
            except Exception as exc:  # close the rest first; report the first failure after
                failures.append(exc)
    if failures:
        raise failures[0]


class _NamedCloseable(Closeable, Protocol):
    @property
    def name(self) -> str: ...


async def close_on_exit(closable: _NamedCloseable, error: BaseException | None) -> None:
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


class RoutedStream:
    """A router's answer as text deltas; after the last one, ``response`` is the whole answer.

    It yields ``str`` deltas and, when a broken stream had to start again
    (``mid_stream``), one :class:`~evalkit.types.StreamRestart` telling the
    reader to discard the ``discarded`` characters it was shown.
    """

    def __init__(self, router: Router, request: ChatRequest) -> None:
        self.router = router
        self.request = request
        self.response: ChatResponse | None = None

    def __aiter__(self) -> AsyncIterator[str | StreamRestart]:
        request = self.request.replace(stream=True)
        return relay(lambda push: self.router.complete(request, on_delta=RoutedCall.for_request(request, push)), self)
