"""The routing config's ``state`` block in gateway exports: LiteLLM's Redis settings, and notes for the rest.

**LiteLLM** shares some router state between proxy instances through Redis
when ``router_settings`` name one: its per-deployment usage counters (the
``rpm``/``tpm`` each deployment carries) and its deployment cooldowns. The
export gives it the same Redis, by reference only:

* ``url_env: REDIS_URL`` → ``redis_url: os.environ/REDIS_URL``;
* ``host_env``/``port_env``/``password_env`` → ``redis_host``/``redis_port``/
  ``redis_password``, each ``os.environ/NAME``. LiteLLM uses Redis only when
  it has a URL, or a host *and* a port (in litellm 1.110,
  ``litellm/router_python_host.py``, ``redis_cache_for``: ``if url is None and
  (host is None or port is None): return None``), so without ``port_env``
  the export writes 6379, the port evalkit uses then (a port is no secret);
* the ``prefix`` becomes ``cache_kwargs: {namespace: prefix}``, which
  LiteLLM's ``RedisCache`` puts before its keys (``redis_cache_for`` passes
  ``cache_kwargs`` to ``RedisCache``), so its keys stay beside evalkit's
  under the same prefix.

The LiteLLM proxy resolves every ``os.environ/NAME`` value of its config
(``litellm/proxy/proxy_server.py``, ``ProxyConfig._check_for_os_environ_vars``)
and passes ``router_settings`` keys that are ``Router.__init__`` arguments to
its router; ``redis_url``, ``redis_host``, ``redis_port`` and
``redis_password`` are (``litellm/router.py``, ``_router_init``).

What does not travel is said in a note: the timeout and retry interval
(LiteLLM goes on with its in-memory state when Redis fails), and that
evalkit's breaker and monitor semantics are evalkit's own. (``fail_open``
needs a budget, which gateway exports refuse.)

**Portkey** is a gateway service: every app replica sends through it, so it
holds the one view of limits and health itself and takes no Redis settings.
The export notes that the ``state`` block is not needed there (a note, like
the other settings a gateway handles its own way, rather than a refusal:
nothing the block promises is lost).
"""

from __future__ import annotations

from typing import Any

from ..router.config import RoutingSpec, StateSpec

__all__ = ["litellm_redis_settings", "state_notes"]

DEFAULT_REDIS_PORT = 6379
"""The port ``RedisState`` uses when ``host_env`` comes without ``port_env``."""


def litellm_redis_settings(state: StateSpec) -> dict[str, Any]:
    """The ``router_settings`` entries that point LiteLLM at the config's Redis (empty for ``backend: memory``)."""
    if not state.shared:
        return {}
    if state.url_env is not None:
        settings: dict[str, Any] = {"redis_url": _env(state.url_env)}
    else:
        assert state.host_env is not None  # the validator requires url_env or host_env
        settings = {"redis_host": _env(state.host_env),
                    "redis_port": _env(state.port_env) if state.port_env else DEFAULT_REDIS_PORT}
        if state.password_env:
            settings["redis_password"] = _env(state.password_env)
    settings["cache_kwargs"] = {"namespace": state.prefix}
    return settings


def state_notes(spec: RoutingSpec, fmt: str) -> tuple[str, ...]:
    """What a gateway export of ``spec`` leaves behind of its ``state`` block (nothing for memory)."""
    state = spec.state
    if not state.shared or fmt not in ("litellm", "portkey"):
        return ()
    if fmt == "portkey":
        note = (f"state: Portkey keeps its own rate-limit and health state for every app that sends through it, "
                f"so the Redis settings (backend: redis, prefix {state.prefix!r}) are not exported and not "
                f"needed: point every replica at the one gateway.")
    else:
        note = (f"state: LiteLLM shares its deployments' rpm/tpm usage and cooldowns through the same Redis "
                f"(router_settings redis_*, keys under namespace {state.prefix!r}). It has no setting for "
                f"timeout_ms ({state.timeout_ms:g}) or retry_interval_s ({state.retry_interval_s:g}): when Redis "
                f"fails it goes on with each instance's own counts. evalkit's shared circuit breakers (one "
                f"half-open probe across replicas) and monitor counters are not LiteLLM's; its cooldowns and "
                f"metrics count their own way.")
    return (note,)

def _env(name: str) -> str:
    return f"os.environ/{name}"
