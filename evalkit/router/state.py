"""Where routers keep what their replicas must share: this process (the default) or Redis.

Eight replicas of one service, each with its own ``BudgetLedger("100", period="day")``,
may spend $800 a day; a provider one replica found down is still hammered by
the other seven; an ``rpm`` limit is multiplied by the replica count. Give
every replica the same :class:`RedisState` and they behave, for budget, health
and rate limits, like one process::

    state = RedisState(url_env="REDIS_URL", prefix="myapp")
    ledger = BudgetLedger("100", period="day", state=state)
    router = FallbackChain([LimitedTarget("openai:gpt-4o-mini", Limits(rpm=500), state=state),
                            "anthropic:claude-3-5-haiku-latest"], state=state)

or, in a routing config, ``state: {backend: redis, url_env: REDIS_URL, prefix: myapp}``.

What is shared, and how (each in its own module):

* budgets (:mod:`evalkit.router._shared_budget`): reserve, settle and release
  are Lua scripts, so check-and-hold is one atomic step across replicas;
  money is held as integer nano-dollars, never floats;
* circuit breakers (:mod:`evalkit.router._shared_breaker`): open, half-open
  (exactly one probe across replicas) and closed, and rate-limit cool-downs;
* ``Limits`` ``rpm``/``tpm`` (:mod:`evalkit.router._shared_rate`): one GCRA
  window per target across replicas (``max_in_flight`` stays per process);
* the monitor's counters (:mod:`evalkit.router._shared_monitor`).

**When Redis fails** (refused, reset, or slower than ``timeout_ms``), the state
is marked down for ``retry_interval_s``; during that time nothing waits on
Redis. Budgets fail closed: a reservation raises
:class:`~evalkit.errors.StateUnavailableError` and nothing is sent, unless the
state was built with ``fail_open=True`` (then each replica holds against its
own copy of the caps, and what it spent is added to the shared ledger when
Redis is back). Breakers and rate limits fall back to this process's own
state. After ``retry_interval_s`` the next operation tries Redis again, so the
service recovers without a restart.

Work that no caller waits for (settling a reservation, publishing a breaker's
opening, the monitor's counters) runs in background tasks; :meth:`RedisState.flush`
waits for them and :meth:`RedisState.aclose` flushes then closes. A settle
that fails while Redis is down is retried when it is back; its money stays
held until then, so nothing is ever under-counted.

``redis`` (redis-py, ``pip install 'evalkit[redis]'``) is imported when a
:class:`RedisState` is made, never by ``import evalkit``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..errors import StateUnavailableError
from ._nanos import as_text
from ._redis_url import url_from_env

__all__ = ["RedisState", "SharedScript"]

Op = Callable[[], Awaitable[Any]]
_Read = TypeVar("_Read")
"""A background operation: a zero-argument coroutine function, retried (called again) when Redis was down."""


class SharedScript:
    """A Lua script run atomically by Redis: its text, loaded once per connection pool (EVALSHA, then EVAL)."""

    __slots__ = ("name", "text")

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text

    def __repr__(self) -> str:
        return f"SharedScript({self.name!r})"


class RedisState:
    """Router state shared through one Redis server (see the module docstring).

    * ``url`` (``redis://host:6379/0``, ``rediss://`` for TLS) or ``url_env``,
      the environment variable that holds it (a password belongs in the URL's
      variable, never in a config file). ``host_env``/``port_env``/``password_env``
      name the variables LiteLLM reads, as an alternative to ``url_env``.
    * ``prefix``: the start of every key, so several services share one Redis.
    * ``timeout_ms``: the longest wait for Redis on a request's path; slower
      counts as down.
    * ``retry_interval_s``: how long a down Redis is left alone before the next try.
    * ``fail_open``: what budgets do while Redis is down (see the module docstring).
    """

    backend = "redis"

    def __init__(self, url: str | None = None, *, url_env: str | None = None, host_env: str | None = None,
                 port_env: str | None = None, password_env: str | None = None, prefix: str = "evalkit",
                 timeout_ms: float = 50.0, retry_interval_s: float = 1.0, fail_open: bool = False) -> None:
        self.url_env, self.host_env, self.port_env, self.password_env = url_env, host_env, port_env, password_env
        self._url = url if url is not None else url_from_env(url_env, host_env, port_env, password_env)
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ValueError(f"prefix must be a non-empty word, got {prefix!r}")
        if not timeout_ms > 0 or not retry_interval_s > 0:
            raise ValueError("timeout_ms and retry_interval_s must be positive")
        import redis  # the optional dependency: fail here, with its own message, not mid-request

        self._redis = redis
        self.prefix = prefix
        self.timeout_ms = float(timeout_ms)
        self.retry_interval_s = float(retry_interval_s)
        self.fail_open = bool(fail_open)
        self.batch_s = 0.005
        """How long a deferred write (:meth:`defer`) waits for others to share its round trip."""
        self.replica = uuid.uuid4().hex[:12]
        """This process's id in shared state (who holds a half-open probe, whose holds expired)."""
        self.failures = 0
        """Operations that found Redis down or slow since this state was made."""
        self._down_until = 0.0
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._sync: Any = None
        self._scripts: dict[str, Any] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self._retry: list[Op] = []
        self._deferred: list[tuple[SharedScript, Sequence[str], Sequence[Any]]] = []
        self._on_recover: list[Callable[[], None]] = []
        self._on_subscribed: list[Callable[[], None]] = []
        self._listeners: dict[str, Callable[[str], None]] = {}
        self._listener: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        where = self.url_env or self.host_env or "url"
        return f"RedisState(prefix={self.prefix!r}, from={where!r}, {'up' if self.up else 'down'})"

    # -- keys and health ------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """``prefix:part:part``: every key this state writes starts with the prefix."""
        return ":".join((self.prefix, *parts))

    @property
    def up(self) -> bool:
        """False while Redis is considered down (within ``retry_interval_s`` of a failure)."""
        return time.monotonic() >= self._down_until

    def down_for(self) -> float:
        """Seconds until Redis is tried again (0.0 when it is up)."""
        return max(self._down_until - time.monotonic(), 0.0)

    def on_recover(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments) each time Redis answers again after being down."""
        self._on_recover.append(callback)

    def _failed(self, exc: BaseException) -> StateUnavailableError:
        self.failures += 1
        self._down_until = time.monotonic() + self.retry_interval_s
        reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
        return StateUnavailableError(f"shared state (redis, prefix {self.prefix!r}) unavailable: {reason}"[:300],
                                     provider="state", retry_after=self.retry_interval_s)

    def _recovered(self) -> None:
        was_down = self._down_until > 0.0
        self._down_until = 0.0
        if was_down:
            self._drain()
            for callback in self._on_recover:
                callback()

    # -- running scripts ------------------------------------------------------------------------

    def _async_client(self) -> Any:
        # redis.asyncio connections belong to the loop that opened them: one client per running loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            timeout = self.timeout_ms / 1000.0
            # No retries inside redis-py: a down Redis must cost one timeout, not several with backoff.
            # Connecting (TCP, then the pool's handshake) may take longer than one command under a burst of
            # first calls; a connect slower than 0.5 s still counts as down.
            self._client = Redis.from_url(self._url, socket_timeout=timeout,
                                          socket_connect_timeout=max(timeout, 0.5),
                                          retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
                                          max_connections=256)
            self._client_loop = loop
            self._scripts = {}
            self._listener = None
        return self._client

    async def run(self, script: SharedScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` on Redis; :class:`~evalkit.errors.StateUnavailableError` when Redis is down or slow.

        While Redis is marked down this raises at once, without a network call.
        """
        if self._down_until and time.monotonic() < self._down_until:
            raise StateUnavailableError(f"shared state (redis, prefix {self.prefix!r}) is down; next try in "
                                        f"{self.down_for():.2g}s", provider="state", retry_after=self.down_for())
        client = self._async_client()
        try:
            result = await self._registered(client, script)(keys=list(keys), args=list(args))
        except (self._redis.exceptions.ConnectionError, self._redis.exceptions.TimeoutError, OSError) as exc:
            raise self._failed(exc) from None
        if self._down_until:
            self._recovered()
        elif self._retry:
            self._drain()
        return result

    def _drain(self) -> None:
        retry, self._retry = self._retry, []
        for op in retry:
            self.background(op)

    def background(self, op: Op) -> None:
        """Run ``op`` without making anyone wait; if Redis is down it is run again once Redis is back.

        ``op`` must be safe to run twice (every shared script that runs in the
        background is idempotent: a settle names its reservation).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a settle from another thread: hand it to the loop that owns the connections
            owner = self._client_loop
            if owner is not None and owner.is_running() and not owner.is_closed():
                owner.call_soon_threadsafe(self.background, op)
            else:
                self._retry.append(op)  # the next operation in a loop runs it
            return
        task = loop.create_task(self._background(op))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _background(self, op: Op) -> None:
        try:
            await op()
        except StateUnavailableError:
            self._retry.append(op)
        except self._redis.exceptions.RedisError as exc:
            # An error reply (out of memory, a read-only replica): Redis is there but cannot take the write.
            # Keep the op for later, as for an outage, instead of losing it (a lost settle over-counts).
            self._failed(exc)
            self._retry.append(op)

    def defer(self, script: SharedScript, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Run ``script`` soon, batched: the calls deferred within ``batch_s`` go to Redis in one pipeline.

        For writes nobody waits for (a settle, a release): one round trip
        then serves several calls, so a routed call does not pay a second
        one. The script must be idempotent (the batch is sent again, whole,
        if Redis was down).
        """
        self._deferred.append((script, keys, args))
        if len(self._deferred) == 1:
            self.background(self._send_deferred)

    async def _send_deferred(self) -> None:
        await asyncio.sleep(self.batch_s)  # gather what else is deferred meanwhile
        batch, self._deferred = self._deferred, []
        if not batch:
            return
        try:
            await self._pipeline(batch)
        except BaseException:
            self._deferred[:0] = batch  # kept whole; the background mechanism runs this again later
            raise

    async def _pipeline(self, batch: list[tuple[SharedScript, Sequence[str], Sequence[Any]]]) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise StateUnavailableError(f"shared state (redis, prefix {self.prefix!r}) is down",
                                        provider="state", retry_after=self.down_for())
        client = self._async_client()
        pipe = client.pipeline(transaction=False)
        for script, keys, args in batch:
            await self._registered(client, script)(keys=list(keys), args=list(args), client=pipe)
        try:
            await pipe.execute()
        except (self._redis.exceptions.ConnectionError, self._redis.exceptions.TimeoutError, OSError) as exc:
            raise self._failed(exc) from None
        if self._down_until:
            self._recovered()

    def _registered(self, client: Any, script: SharedScript) -> Any:
        registered = self._scripts.get(script.name)
        if registered is None:
            registered = self._scripts[script.name] = client.register_script(script.text)
        return registered

    async def flush(self) -> None:
        """Wait until every background operation has run (those waiting for a down Redis excepted)."""
        while self._pending or (self._deferred and self.up):
            if not self._pending:
                self.background(self._send_deferred)
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def sync_client(self) -> Any:
        """A blocking client for reads outside the request path (``snapshot()``, a scrape endpoint)."""
        if self._sync is None:
            timeout = max(self.timeout_ms / 1000.0, 0.5)
            self._sync = self._redis.Redis.from_url(self._url, socket_timeout=timeout,
                                                    socket_connect_timeout=timeout)
        return self._sync

    def read(self, fetch: Callable[[Any], _Read]) -> _Read:
        """``fetch(sync_client)``, with Redis failures as :class:`~evalkit.errors.StateUnavailableError`."""
        try:
            return fetch(self.sync_client())
        except (self._redis.exceptions.ConnectionError, self._redis.exceptions.TimeoutError, OSError) as exc:
            raise self._failed(exc) from None

    # -- messages between replicas ------------------------------------------------------------------

    def subscribe(self, channel: str, handler: Callable[[str], None]) -> None:
        """Call ``handler(message)`` for each message published on ``channel`` by any replica.

        The listener starts with the first call made inside an event loop
        (:meth:`ensure_listening`) and resubscribes after Redis comes back;
        messages published while it was away are lost, so owners also read
        the state itself in an :meth:`on_subscribed` callback.
        """
        self._listeners[self.key(channel)] = handler
        if self._listener is not None and not self._listener.done():
            self._listener.cancel()  # a running subscription does not know the new channel: start it again
            self._listener = None

    def on_subscribed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every successful (re)subscription: messages may have been missed before it."""
        self._on_subscribed.append(callback)

    def ensure_listening(self) -> None:
        """Start the subscription task in the running loop if it is not running."""
        if not self._listeners:
            return
        self._async_client()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def publish(self, channel: str, message: str) -> None:
        """Send ``message`` to every replica's ``channel`` handler (this one's included)."""
        client = self._async_client()
        try:
            await client.publish(self.key(channel), message)
        except (self._redis.exceptions.ConnectionError, self._redis.exceptions.TimeoutError, OSError) as exc:
            raise self._failed(exc) from None

    async def _listen(self) -> None:
        while True:
            pubsub = self._async_client().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._listeners)
                if self._down_until:
                    self._recovered()
                for callback in self._on_subscribed:
                    callback()
                async for message in pubsub.listen():
                    handler = self._listeners.get(as_text(message.get("channel")))
                    if handler is not None:
                        handler(as_text(message.get("data")))
            except (self._redis.exceptions.ConnectionError, self._redis.exceptions.TimeoutError, OSError) as exc:
                self._failed(exc)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # the connection is already gone: nothing left to close
                    pass
            await asyncio.sleep(self.retry_interval_s)

    # -- closing ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Wait for background operations, stop listening, close the connections."""
        await self.flush()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._sync is not None:
            self._sync.close()
            self._sync = None
