"""The ``state:`` block in exports: LiteLLM gets the Redis its instances share as env references; the evalkit
format round-trips it; Portkey notes it; no secret ever appears, even with every variable set."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalkit.errors import ConfigError
from evalkit.export import export_config, export_with_notes
from evalkit.router.config import StateSpec, parse_routing_config

from .refusals import assert_refused_alike

pytestmark = pytest.mark.filterwarnings("ignore::evalkit.export.GatewayExportWarning")

CONFIG: dict[str, Any] = {
    "version": 1,
    "state": {"backend": "redis", "url_env": "REDIS_URL", "prefix": "myapp", "timeout_ms": 80,
              "retry_interval_s": 0.5},
    "targets": {
        "fast": {"model": "openai:gpt-4o-mini", "api_key_env": "MY_OPENAI_KEY", "limits": {"rpm": 500}},
        "strong": {"model": "anthropic:claude-3-5-sonnet-latest"},
    },
    "router": {"type": "fallback", "targets": ["fast", "strong"]},
}
HOST_PORT = {**CONFIG, "state": {"backend": "redis", "host_env": "REDIS_HOST", "port_env": "REDIS_PORT",
                                 "password_env": "REDIS_PASSWORD", "prefix": "myapp"}}
SECRET_URL = "redis://:s3cret-Redis-Pa55@cache.internal:6380/0"
SECRET_PASSWORD = "s3cret-Redis-Pa55"


def router_settings(config: Any) -> dict[str, Any]:
    return yaml.safe_load(export_config(config, "litellm"))["router_settings"]


def test_litellm_gets_the_redis_url_by_reference_and_the_prefix_as_its_namespace() -> None:
    settings = router_settings(CONFIG)
    assert settings["redis_url"] == "os.environ/REDIS_URL"
    assert settings["cache_kwargs"] == {"namespace": "myapp"}
    assert not {"redis_host", "redis_port", "redis_password"} & set(settings)


def test_litellm_gets_host_port_and_password_references_as_its_router_names_them() -> None:
    settings = router_settings(HOST_PORT)
    assert (settings["redis_host"], settings["redis_port"], settings["redis_password"]) == (
        "os.environ/REDIS_HOST", "os.environ/REDIS_PORT", "os.environ/REDIS_PASSWORD")
    assert "redis_url" not in settings


def test_a_host_without_a_port_variable_gets_evalkits_default_port_so_litellm_uses_redis_at_all() -> None:
    # LiteLLM builds its Redis cache only from a URL, or a host AND a port (litellm/router_python_host.py).
    config = {**CONFIG, "state": {"backend": "redis", "host_env": "REDIS_HOST"}}
    settings = router_settings(config)
    assert (settings["redis_host"], settings["redis_port"]) == ("os.environ/REDIS_HOST", 6379)
    assert "redis_password" not in settings and settings["cache_kwargs"] == {"namespace": "evalkit"}


def test_a_memory_state_adds_no_redis_setting_and_no_note() -> None:
    for config in ({**CONFIG, "state": {"backend": "memory"}}, {k: v for k, v in CONFIG.items() if k != "state"}):
        settings = router_settings(config)
        assert not [key for key in settings if key.startswith("redis") or key == "cache_kwargs"]
        for fmt in ("litellm", "portkey"):
            assert not [n for n in export_with_notes(config, fmt).notes if n.startswith("state:")]


def test_the_litellm_header_says_what_litellm_shares_and_what_it_does_not() -> None:
    exported = export_with_notes(CONFIG, "litellm")
    [note] = [n for n in exported.notes if n.startswith("state:")]
    assert "rpm/tpm usage and cooldowns through the same Redis" in note and "namespace 'myapp'" in note
    assert "timeout_ms (80)" in note and "retry_interval_s (0.5)" in note
    assert "half-open probe" in note and "monitor counters are not LiteLLM's" in note
    header = " ".join(line.lstrip("# ") for line in exported.text.splitlines() if line.startswith("#"))
    assert "state: LiteLLM shares its deployments' rpm/tpm usage" in header


def test_portkey_keeps_its_own_state_the_export_notes_it_and_adds_nothing() -> None:
    exported = export_with_notes(CONFIG, "portkey")
    [note] = [n for n in exported.notes if n.startswith("state:")]
    assert "Portkey keeps its own rate-limit and health state" in note and "point every replica" in note
    assert "redis" not in json.dumps(json.loads(exported.text)).lower()
    with pytest.warns(Warning, match="Portkey keeps its own"):
        export_config(CONFIG, "portkey")


@pytest.mark.parametrize("config", [CONFIG, HOST_PORT])
def test_the_evalkit_format_round_trips_the_state_block(config: dict[str, Any], tmp_path: Path) -> None:
    spec = parse_routing_config(config).state
    assert spec.shared
    again = parse_routing_config(yaml.safe_load(export_config(config, "evalkit"))).state
    assert again == spec
    path = tmp_path / "routing.yaml"
    path.write_text("# shared by the replicas\n" + yaml.safe_dump(config, sort_keys=False))
    assert parse_routing_config(yaml.safe_load(export_config(path, "evalkit"))).state == spec
    assert export_config(path, "evalkit") == path.read_text()


def test_the_litellm_export_round_trips_to_the_same_redis_variables() -> None:
    """What LiteLLM is pointed at is the state block's variables: read back, they make the same StateSpec."""
    for config in (CONFIG, HOST_PORT):
        settings = router_settings(config)
        names = {ours: settings[theirs].removeprefix("os.environ/") for ours, theirs in (
            ("url_env", "redis_url"), ("host_env", "redis_host"), ("port_env", "redis_port"),
            ("password_env", "redis_password")) if theirs in settings}
        back = StateSpec(backend="redis", prefix=settings["cache_kwargs"]["namespace"], **names)
        spec = parse_routing_config(config).state
        assert back == StateSpec(backend="redis", prefix=spec.prefix, url_env=spec.url_env, host_env=spec.host_env,
                                 port_env=spec.port_env, password_env=spec.password_env)


def test_no_secret_appears_in_any_export_even_with_every_variable_set(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", SECRET_URL)
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", SECRET_PASSWORD)
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-live-" + "Q" * 40)
    for config in (CONFIG, HOST_PORT):
        path = tmp_path / "routing.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        for source in (config, path):
            for fmt in ("evalkit", "litellm", "portkey"):
                exported = export_with_notes(source, fmt)
                said = exported.text + " ".join(exported.notes)
                for secret in (SECRET_URL, SECRET_PASSWORD, "cache.internal", "6380", "Q" * 40):
                    assert secret not in said, (fmt, secret)


@pytest.mark.parametrize(("state", "message"), [
    ({"backend": "redis", "url": SECRET_URL}, "state.url: where Redis is and its password never go in configs"),
    ({"backend": "redis", "url_env": "REDIS_URL", "password": SECRET_PASSWORD}, "state.password: where Redis is"),
    ({"backend": "redis", "url_env": SECRET_URL}, "state.url_env: expected the name of an environment variable"),
    ({"backend": "memory", "prefix": "myapp"}, "state.prefix: applies only with backend: redis"),
    ({"backend": "redis", "url_env": "REDIS_URL", "timeout_ms": -5}, "state.timeout_ms: must be > 0"),
])
def test_every_export_refuses_a_bad_state_block_as_router_from_config_does(state: dict[str, Any],
                                                                          message: str) -> None:
    bad = {**CONFIG, "state": state}
    assert_refused_alike(bad, message)
    with pytest.raises(ConfigError) as caught:
        export_config(bad, "litellm")
    assert SECRET_PASSWORD not in str(caught.value)


# -- LiteLLM itself uses the exported Redis -------------------------------------------------------------




def resolved(value: Any) -> Any:
    """``os.environ/NAME`` references replaced by their values, as LiteLLM's proxy does when it loads a config."""
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    if isinstance(value, str) and value.startswith("os.environ/"):
        return os.environ[value.removeprefix("os.environ/")]
    return value


@pytest.mark.filterwarnings("ignore::UserWarning:pydantic._internal._generate_schema")
@pytest.mark.parametrize("variables", ["url", "host_port"])
def test_litellms_router_counts_in_the_exported_redis_under_the_prefix(
        litellm_module: Any, monkeypatch: pytest.MonkeyPatch, redis_server: Any, redis_prefix: str,
        variables: str) -> None:
    import redis

    from evalkit.emulator import Emulator

    monkeypatch.setenv("EVALKIT_TEST_EMULATOR_KEY", "emulator-key")
    if variables == "url":
        monkeypatch.setenv("REDIS_URL", redis_server.url)
        state = {"backend": "redis", "url_env": "REDIS_URL", "prefix": redis_prefix}
    else:
        monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
        monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
        state = {"backend": "redis", "host_env": "REDIS_HOST", "port_env": "REDIS_PORT", "prefix": redis_prefix}
    with Emulator(seed=0, time_scale=0.0) as emu:
        config = {"version": 1, "state": state, "targets": {
            "small": {"model": "openai:sim-small", "base_url": emu.openai_base_url,
                      "api_key_env": "EVALKIT_TEST_EMULATOR_KEY", "limits": {"rpm": 100}}},
            "router": {"type": "fallback", "targets": ["small"]}}
        exported = resolved(yaml.safe_load(export_config(config, "litellm")))
        router = litellm_module.Router(model_list=exported["model_list"], **exported["router_settings"])

        async def ask() -> None:
            await router.acompletion(model="small", messages=[{"role": "user", "content": "Say hi."}], max_tokens=5)
            await asyncio.sleep(0.5)  # LiteLLM writes its usage counters after the call

        asyncio.run(ask())
    keys = [key.decode() for key in redis.Redis.from_url(redis_server.url).keys(f"{redis_prefix}:*")]
    assert any(":openai/sim-small:rpm:" in key for key in keys), keys  # its per-deployment usage, shared
