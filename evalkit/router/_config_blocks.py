"""The settings blocks of a routing config that targets and nodes share: prices, limits, deadlines, retry, breaker.

:class:`ConfigBlocks` reads one block at its YAML path into the object the
router takes (:class:`~evalkit.pricing.Prices`, :class:`Limits`,
:class:`~evalkit.Deadlines`, :class:`RetryPolicy`, :class:`BreakerSettings`,
the ``monitor`` and ``state`` blocks), with the located checks of
:class:`~evalkit.router._config_fields.ConfigFields`. Which block goes where
is the grammar's business (:mod:`evalkit.router._config_parse`).
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, Mapping

from ..errors import ErrorKind
from ..types import Deadlines
from ._config_fields import ConfigFields
from ._retry import Action, RetryPolicy
from .config import MonitorSpec, StateSpec
from .health import BreakerSettings
from ._limit_settings import ON_SATURATED, Limits

__all__ = ["DEADLINE_KEYS", "ConfigBlocks"]

DEADLINE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Deadlines))
"""A target's deadline fields: those of :class:`evalkit.Deadlines`, each a YAML key of its own."""

STATE_ENV_KEYS = ("url_env", "host_env", "port_env", "password_env")
_STATE_REDIS_KEYS = (*STATE_ENV_KEYS, "prefix", "timeout_ms", "retry_interval_s", "fail_open")
_STATE_INLINE = {"url": "url_env", "password": "password_env", "host": "host_env", "port": "port_env"}
"""Values that would put where Redis is (and its password) in the file: each has its ``*_env`` instead."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigBlocks(ConfigFields):
    """Typed reads of the shared settings blocks; each failure is a ConfigError at the bad field's path."""

    def prices(self, spec: Any, path: str) -> Any:
        from ..pricing import Prices

        keys = {"input", "output", "cached_input", "cache_write", "reasoning"}
        spec = self.mapping(spec, path, keys, {"input", "output"})
        return Prices(source="config", **{k: self.money(v, f"{path}.{k}", "USD per 1M tokens")
                                          for k, v in spec.items()})

    def limits(self, spec: Any, path: str) -> Limits:
        spec = self.mapping(spec, path, {"max_in_flight", "rpm", "tpm", "on_saturated", "max_wait_s",
                                         "adaptive", "min_in_flight"})
        on_saturated = self.choice(spec.get("on_saturated", "skip"), f"{path}.on_saturated", ON_SATURATED)
        if "max_wait_s" in spec and on_saturated != "wait":
            raise self.fail(f"{path}.max_wait_s", "applies only with on_saturated: wait (skip never waits)")
        numbers: dict[str, Any] = {}
        if "max_in_flight" in spec:
            numbers["max_in_flight"] = self.integer(spec["max_in_flight"], f"{path}.max_in_flight", low=1)
        for key in ("rpm", "tpm"):
            if key in spec:
                numbers[key] = self.number(spec[key], f"{path}.{key}", positive=True)
        if "max_wait_s" in spec:
            numbers["max_wait_s"] = self.number(spec["max_wait_s"], f"{path}.max_wait_s")
        return Limits(on_saturated=on_saturated, **numbers, **self._adaptive(spec, path))

    def _adaptive(self, spec: Mapping[str, Any], path: str) -> dict[str, Any]:
        """``adaptive`` and ``min_in_flight`` of a limits block, checked against its ``max_in_flight``."""
        adaptive = self.flag(spec["adaptive"], f"{path}.adaptive") if "adaptive" in spec else False
        ceiling: int | None = spec.get("max_in_flight")  # already checked by limits(): a whole number >= 1
        if adaptive and ceiling is None:
            raise self.fail(f"{path}.adaptive", "needs max_in_flight: the in-flight limit starts there, is "
                                                "lowered on rate limits and recovers to it")
        if "min_in_flight" not in spec:
            return {"adaptive": adaptive}
        floor = self.integer(spec["min_in_flight"], f"{path}.min_in_flight", low=1)
        if not adaptive:
            raise self.fail(f"{path}.min_in_flight", "applies only with adaptive: true (a fixed limit is "
                                                     "never lowered)")
        if ceiling is not None and floor > ceiling:  # not None: adaptive needs it (checked above)
            raise self.fail(f"{path}.min_in_flight", f"{floor} is above max_in_flight ({ceiling})")
        return {"adaptive": True, "min_in_flight": floor}

    def deadlines(self, spec: Mapping[str, Any], path: str) -> Deadlines:
        """The target's deadline fields as :class:`~evalkit.Deadlines` (positive finite seconds, only those given).

        A phase's deadline longer than ``total_timeout_s`` could never fire
        (the whole call ends first), so it is refused like any setting that
        would change nothing.
        """
        seconds = {key: float(self.number(spec[key], f"{path}.{key}", positive=True))
                   for key in DEADLINE_KEYS if key in spec}
        total = seconds.get("total_timeout_s")
        for key, value in seconds.items():
            if total is not None and key != "total_timeout_s" and value > total:
                raise self.fail(f"{path}.{key}", f"{value:g}s is longer than total_timeout_s ({total:g}s), so it "
                                                 "could never fire; lower it or remove it")
        return Deadlines(**seconds)

    def retry(self, spec: Any, path: str, *, node: str = "fallback") -> RetryPolicy:
        """A node's ``retry`` block as a :class:`RetryPolicy`.

        A ``fallback`` node takes every field. A ``balance`` or ``cost`` node
        (``node``) never retries the same target, so only ``actions`` applies
        there, and only ``next`` or ``stop``: anything else would change nothing.
        """
        if node != "fallback":
            return self._move_on_actions(spec, path, node)
        spec = self.mapping(spec, path, {"actions", "retries_per_target", "max_attempts", "deadline_s",
                                         "backoff_base_s", "backoff_cap_s", "retry_after_cap_s"})
        values: dict[str, Any] = {}
        for key in ("retries_per_target", "max_attempts"):
            if key in spec:
                low = 0 if key == "retries_per_target" else 1
                values[key] = self.integer(spec[key], f"{path}.{key}", low=low)
        if "deadline_s" in spec:
            values["deadline_s"] = self.number(spec["deadline_s"], f"{path}.deadline_s", positive=True)
        for key in ("backoff_base_s", "backoff_cap_s", "retry_after_cap_s"):
            if key in spec:
                values[key] = self.number(spec[key], f"{path}.{key}")
        policy = RetryPolicy(**values)
        actions = self._actions(spec.get("actions") or {}, f"{path}.actions", tuple(Action))
        return policy.with_actions(actions) if actions else policy

    def _move_on_actions(self, spec: Any, path: str, node: str) -> RetryPolicy:
        """The ``retry`` block of a node that moves on or stops but never retries a target: ``actions`` only."""
        raw = spec if isinstance(spec, Mapping) else {}
        for key in raw:
            if key != "actions":
                raise self.fail(f"{path}.{key}", f"applies only to a fallback node: a {node} node never retries "
                                                 "the same target (only retry.actions applies here)")
        spec = self.mapping(spec, path, {"actions"}, {"actions"})
        actions = self._actions(spec["actions"], f"{path}.actions", (Action.NEXT, Action.STOP),
                                why=f" (a {node} node never retries the same target)")
        return RetryPolicy().with_actions(actions)

    def _actions(self, spec: Any, path: str, verbs: tuple[Action, ...], why: str = "") -> dict[ErrorKind, Action]:
        """``{error kind: action}``; each key an :class:`ErrorKind` value and each value one of ``verbs``."""
        kinds = tuple(ErrorKind)
        actions: dict[ErrorKind, Action] = {}
        for kind, action in self.mapping(spec, path, None).items():
            where = f"{path}.{kind}"
            kind_value = self.choice(kind, where, tuple(k.value for k in kinds), what="error kind")
            if isinstance(action, str) and action in {a.value for a in Action} and Action(action) not in verbs:
                raise self.fail(where, f"{action!r} changes nothing here{why}; expected one of "
                                       f"{', '.join(v.value for v in verbs)}")
            actions[ErrorKind(kind_value)] = Action(self.choice(action, where, tuple(v.value for v in verbs)))
        return actions

    def breaker(self, spec: Any, path: str, *, may_be_off: bool = False) -> BreakerSettings | None:
        """Circuit-breaker settings; with ``may_be_off``, ``off`` (YAML's false) is ``None``: no breakers.

        An empty ``breaker:`` (null) is refused rather than guessed at: it reads
        as settings left unwritten as easily as "none". ``on`` changes nothing
        (breakers are on by default) and is refused too.
        """
        if spec is False or spec == "off":
            if not may_be_off:
                raise self.fail(path, "a balance node's breakers cannot be turned off: its targets' health is "
                                      "how it picks one; give settings or remove breaker")
            return None
        if spec is None or spec is True or spec == "on":
            shown = "an empty breaker:" if spec is None else "breaker: on"
            off = " or off (no breakers)" if may_be_off else ""
            raise self.fail(path, f"{shown} changes nothing (circuit breakers are on by default); give settings, "
                                  f"e.g. {{consecutive_failures: 3, cooldown_s: 30}}{off}")
        spec = self.mapping(spec, path, {"consecutive_failures", "failure_rate", "window_s", "min_volume",
                                         "cooldown_s", "max_retry_after_s"})
        values: dict[str, Any] = {}
        for key in ("consecutive_failures", "min_volume"):
            if key in spec:
                values[key] = self.integer(spec[key], f"{path}.{key}", low=1)
        if "failure_rate" in spec:
            values["failure_rate"] = self.number(spec["failure_rate"], f"{path}.failure_rate", positive=True,
                                                 high=1.0)
        if "window_s" in spec:
            values["window_s"] = self.number(spec["window_s"], f"{path}.window_s", positive=True)
        for key in ("cooldown_s", "max_retry_after_s"):
            if key in spec:
                values[key] = self.number(spec[key], f"{path}.{key}")
        return BreakerSettings(**values)

    def monitor(self, spec: Any, path: str = "monitor") -> MonitorSpec:
        from ._durations import parse_window

        spec = self.mapping(spec or {}, path, {"window", "max_events"})
        values: dict[str, Any] = {}
        if "window" in spec:
            window = spec["window"]
            if not isinstance(window, str):
                window = self.number(window, f"{path}.window", positive=True)
            try:
                values["window_s"] = parse_window(window)
            except ValueError as exc:
                raise self.fail(f"{path}.window", str(exc)) from None
        if "max_events" in spec:
            values["max_events"] = self.integer(spec["max_events"], f"{path}.max_events", low=1)
        return MonitorSpec(**values)

    def state(self, spec: Any, path: str = "state") -> StateSpec:
        """The ``state`` block: ``backend: memory`` (alone) or ``redis`` with where Redis is, by variable name.

        Reads no environment variable (the builder does): a config is checked
        and exported without access to Redis or its secrets.
        """
        raw = spec if isinstance(spec, Mapping) else None
        for key, instead in _STATE_INLINE.items():
            if raw is not None and key in raw:
                raise self.fail(f"{path}.{key}", f"where Redis is and its password never go in configs; name the "
                                                 f"environment variable that holds it in {instead} (e.g. "
                                                 f"url_env: REDIS_URL for redis://:password@host:6379/0)")
        spec = self.mapping(spec or {}, path, {"backend", *_STATE_REDIS_KEYS})
        backend = self.choice(spec.get("backend", "memory"), f"{path}.backend", ("memory", "redis"))
        if backend == "memory":
            for key in _STATE_REDIS_KEYS:
                if key in spec:
                    raise self.fail(f"{path}.{key}", "applies only with backend: redis (memory keeps every "
                                                     "replica's state in its own process)")
            return StateSpec()
        names = {key: self.env_name(spec[key], f"{path}.{key}") for key in STATE_ENV_KEYS if key in spec}
        if "url_env" in names:
            clash = next((key for key in ("host_env", "port_env", "password_env") if key in names), None)
            if clash:
                raise self.fail(f"{path}.{clash}", "give url_env (the whole URL, password included) or host_env "
                                                   "with port_env and password_env, not both")
        elif "host_env" not in names:
            where = f"{path}.{next(iter(names))}" if names else path
            raise self.fail(where, "backend: redis needs url_env (the variable holding the Redis URL, e.g. "
                                   "REDIS_URL) or host_env")
        values: dict[str, Any] = {"backend": backend, **names}
        if "prefix" in spec:
            prefix = self.text(spec["prefix"], f"{path}.prefix")
            if any(ch.isspace() for ch in prefix):
                raise self.fail(f"{path}.prefix", f"must be one word (it starts every Redis key), got {prefix!r}")
            values["prefix"] = prefix
        for key in ("timeout_ms", "retry_interval_s"):
            if key in spec:
                values[key] = float(self.number(spec[key], f"{path}.{key}", positive=True))
        if "fail_open" in spec:
            values["fail_open"] = self.flag(spec["fail_open"], f"{path}.fail_open")
        return StateSpec(**values)

    def env_name(self, value: Any, path: str) -> str:
        """The name of an environment variable (``REDIS_URL``), never a value that belongs in one."""
        name = self.text(value, path)
        if not _ENV_NAME.fullmatch(name):
            shown = "a URL" if "://" in name else "something else"  # not echoed: it may be the secret itself
            raise self.fail(path, f"expected the name of an environment variable (e.g. REDIS_URL), got {shown}; "
                                  "the value belongs in that variable, not in the config")
        return name
