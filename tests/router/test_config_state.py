"""The routing YAML's ``state:`` block: one validator with located errors, secrets only by variable name, and
one RedisState built for the whole tree (budget, breakers, limits, monitor) against a real redis-server."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

import evalkit
from evalkit import Router
from evalkit.router.config import StateSpec, parse_routing_config

TREE = """\
version: 1
state:
  backend: redis
  url_env: EVALKIT_TEST_REDIS_URL
  prefix: myapp
  timeout_ms: 80
  retry_interval_s: 0.5
  fail_open: false
targets:
  cheap:
    model: openai:sim-small
    api_key_env: EVALKIT_TEST_KEY
    prices: {input: 0.1, output: 0.4}
    limits: {rpm: 600, max_in_flight: 8}
  dear:
    model: openai:sim-large
    api_key_env: EVALKIT_TEST_KEY
    prices: {input: 5, output: 15}
router:
  type: cost
  candidates:
    - target: {type: fallback, targets: [cheap, dear]}
      quality: 0.9
      prices: {input: 5, output: 15}
budget: {limit_usd: 2, period: day}
monitor: {window: 1h}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-test-config-key")
    monkeypatch.delenv("EVALKIT_TEST_REDIS_URL", raising=False)


# -- parsing ---------------------------------------------------------------------------------------------


def test_the_state_block_parses_into_a_state_spec_without_reading_the_environment(tmp_path: Path) -> None:
    spec = parse_routing_config(write(tmp_path, TREE))  # EVALKIT_TEST_REDIS_URL is unset: parsing needs none
    assert spec.state == StateSpec(backend="redis", url_env="EVALKIT_TEST_REDIS_URL", prefix="myapp",
                                   timeout_ms=80.0, retry_interval_s=0.5, fail_open=False)
    assert spec.state.shared


def test_host_port_and_password_variables_are_the_alternative_to_a_url(tmp_path: Path) -> None:
    text = TREE.replace("  url_env: EVALKIT_TEST_REDIS_URL\n",
                        "  host_env: REDIS_HOST\n  port_env: REDIS_PORT\n  password_env: REDIS_PASSWORD\n")
    state = parse_routing_config(write(tmp_path, text)).state
    assert (state.url_env, state.host_env, state.port_env, state.password_env) == (
        None, "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD")
    assert (state.prefix, state.timeout_ms) == ("myapp", 80.0)


def test_no_state_block_or_backend_memory_is_todays_in_process_state(tmp_path: Path) -> None:
    without = TREE.split("targets:", 1)[1]
    assert parse_routing_config(write(tmp_path, "targets:" + without)).state == StateSpec()
    memory = "state: {backend: memory}\ntargets:" + without
    assert parse_routing_config(write(tmp_path, memory)).state == StateSpec()
    assert not StateSpec().shared


REDIS_BLOCK = ("  backend: redis\n  url_env: EVALKIT_TEST_REDIS_URL\n  prefix: myapp\n  timeout_ms: 80\n"
               "  retry_interval_s: 0.5\n  fail_open: false\n")


@pytest.mark.parametrize(
    ("block", "where"),
    [
        # secrets never inline: the whole URL (it carries the password), the password, host and port
        ("  backend: redis\n  url: redis://:hunter2@cache:6379/0\n",
         ("routing.yaml:4: state.url: where Redis is and its password never go in configs; name the environment "
          "variable that holds it in url_env")),
        ("  backend: redis\n  url_env: R\n  password: hunter2\n", "routing.yaml:5: state.password:"),
        ("  backend: redis\n  host: cache.internal\n", "routing.yaml:4: state.host: where Redis is"),
        ("  backend: redis\n  host_env: H\n  port: 6380\n", "routing.yaml:5: state.port:"),
        # an env var name, not its value
        ("  backend: redis\n  url_env: redis://:hunter2@cache:6379/0\n",
         "routing.yaml:4: state.url_env: expected the name of an environment variable (e.g. REDIS_URL), got a URL"),
        ("  backend: redis\n  host_env: 'cache internal'\n", "routing.yaml:4: state.host_env: expected the name"),
        ("  backend: redis\n  url_env: 42\n", "routing.yaml:4: state.url_env: expected a non-empty string"),
        # the backend, and settings that would change nothing
        ("  backend: etcd\n", "routing.yaml:3: state.backend: unknown value 'etcd'; expected one of memory, redis"),
        ("  backend: memory\n  prefix: myapp\n",
         "routing.yaml:4: state.prefix: applies only with backend: redis"),
        ("  url_env: EVALKIT_TEST_REDIS_URL\n", "routing.yaml:3: state.url_env: applies only with backend: redis"),
        ("  backend: memory\n  fail_open: true\n", "routing.yaml:4: state.fail_open: applies only with backend"),
        ("  backend: redis\n  prefix: myapp\n", "routing.yaml:2: state: backend: redis needs url_env"),
        ("  backend: redis\n", "routing.yaml:2: state: backend: redis needs url_env"),
        ("  backend: redis\n  port_env: P\n", "routing.yaml:4: state.port_env: backend: redis needs url_env"),
        ("  backend: redis\n  url_env: R\n  host_env: H\n", "routing.yaml:5: state.host_env: give url_env"),
        ("  backend: redis\n  url_env: R\n  password_env: P\n", "routing.yaml:5: state.password_env: give url_env"),
        # values
        (REDIS_BLOCK.replace("timeout_ms: 80", "timeout_ms: 0"), "routing.yaml:6: state.timeout_ms: must be > 0"),
        (REDIS_BLOCK.replace("timeout_ms: 80", "timeout_ms: '80'"),
         "routing.yaml:6: state.timeout_ms: expected a number"),
        (REDIS_BLOCK.replace("timeout_ms: 80", "timeout_ms: .nan"),
         "routing.yaml:6: state.timeout_ms: must be a finite number"),
        (REDIS_BLOCK.replace("retry_interval_s: 0.5", "retry_interval_s: -1"),
         "routing.yaml:7: state.retry_interval_s: must be > 0"),
        (REDIS_BLOCK.replace("fail_open: false", "fail_open: 'yes'"),
         "routing.yaml:8: state.fail_open: expected true or false"),
        (REDIS_BLOCK.replace("prefix: myapp", "prefix: my app"), "routing.yaml:5: state.prefix: must be one word"),
        (REDIS_BLOCK.replace("prefix: myapp", "prefix: ''"), "routing.yaml:5: state.prefix: expected a non-empty"),
        (REDIS_BLOCK + "  tls: true\n", "routing.yaml:9: state.tls: unknown field"),
    ],
)
def test_every_bad_state_field_names_file_line_and_yaml_path(tmp_path: Path, block: str, where: str) -> None:
    path = write(tmp_path, TREE.replace(REDIS_BLOCK, block))
    with pytest.raises(evalkit.ConfigError) as parsed:
        parse_routing_config(path)
    assert f"{path.parent}/{where}" in str(parsed.value)
    assert "hunter2" not in str(parsed.value)  # an error never repeats a secret written by mistake
    with pytest.raises(evalkit.ConfigError) as built:  # Router.from_config: the same validator, the same words
        Router.from_config(path)
    assert str(built.value) == str(parsed.value)


def test_a_state_that_is_not_a_mapping_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, TREE.replace("state:\n" + REDIS_BLOCK, "state: redis\n"))
    with pytest.raises(evalkit.ConfigError, match=r"routing.yaml:2: state: expected a mapping, got a string"):
        parse_routing_config(path)


def test_fail_open_without_a_budget_would_change_nothing_and_is_refused(tmp_path: Path) -> None:
    text = TREE.replace("fail_open: false", "fail_open: true").replace("budget: {limit_usd: 2, period: day}\n", "")
    with pytest.raises(evalkit.ConfigError, match=r"routing.yaml:8: state.fail_open: decides what a budget does"):
        parse_routing_config(write(tmp_path, text))
    assert parse_routing_config(write(tmp_path, TREE.replace("fail_open: false", "fail_open: true"))).state.fail_open


def test_a_redis_state_that_nothing_uses_is_refused(tmp_path: Path) -> None:
    # A task router over bare targets with no rpm/tpm, no budget, no monitor: nothing would be shared.
    unused = ("version: 1\nstate: {backend: redis, url_env: R}\n"
              "router: {type: task, routes: {code: 'ollama:llama3.2'}, default: 'ollama:qwen2.5'}\n")
    with pytest.raises(evalkit.ConfigError, match=r"routing.yaml:2: state: nothing in this config uses shared state"):
        parse_routing_config(write(tmp_path, unused))
    users = [
        "router: {type: fallback, targets: ['ollama:llama3.2']}\n",  # its circuit breakers
        "router: 'ollama:llama3.2'\n",  # a lone target becomes a chain with a breaker
        "router: {type: task, routes: {code: {type: balance, targets: ['ollama:llama3.2']}}, default: 'ollama:a'}\n",
        "targets: {t: {model: 'ollama:llama3.2', limits: {rpm: 60}}}\nrouter: {type: hedge, targets: [t]}\n",
        "router: {type: task, routes: {code: 'ollama:llama3.2'}, default: 'ollama:a'}\nmonitor: {window: 1h}\n",
    ]
    for rest in users:
        parse_routing_config(write(tmp_path, "version: 1\nstate: {backend: redis, url_env: R}\n" + rest))
    off = "router: {type: fallback, breaker: off, targets: ['ollama:llama3.2']}\n"
    with pytest.raises(evalkit.ConfigError, match="nothing in this config uses shared state"):
        parse_routing_config(write(tmp_path, "version: 1\nstate: {backend: redis, url_env: R}\n" + off))
    in_flight_only = "targets: {t: {model: 'ollama:llama3.2', limits: {max_in_flight: 2}}}\n" \
                     "router: {type: hedge, targets: [t]}\n"
    with pytest.raises(evalkit.ConfigError, match="nothing in this config uses shared state"):
        parse_routing_config(write(tmp_path, "version: 1\nstate: {backend: redis, url_env: R}\n" + in_flight_only))


# -- building --------------------------------------------------------------------------------------------


def test_an_unset_variable_is_an_error_at_its_yaml_path_when_the_router_is_built(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, TREE)
    with pytest.raises(evalkit.ConfigError) as caught:
        Router.from_config(path)
    assert f"{path}:4: state.url_env: environment variable EVALKIT_TEST_REDIS_URL is not set" in str(caught.value)
    assert (caught.value.file, caught.value.line, caught.value.field) == (str(path), 4, "state.url_env")
    host = write(tmp_path, TREE.replace("url_env: EVALKIT_TEST_REDIS_URL", "host_env: EVALKIT_TEST_REDIS_HOST"))
    monkeypatch.delenv("EVALKIT_TEST_REDIS_HOST", raising=False)
    with pytest.raises(evalkit.ConfigError, match=r"routing.yaml:4: state.host_env: environment variable "
                                                  r"EVALKIT_TEST_REDIS_HOST is not set"):
        Router.from_config(host)


def test_a_memory_config_builds_no_shared_state(tmp_path: Path) -> None:
    router = Router.from_config(write(tmp_path, "targets:" + TREE.split("targets:", 1)[1]))
    assert router.state is None and router.monitor is not None and router.monitor.state is None


def _shared_parts(router: Any) -> dict[str, Any]:
    """The components of the built tree that take a state and show it (the limited target: see the next test)."""
    return {"ledger": router.ledger, "monitor": router.monitor, "chain": router.targets[0]}


def test_one_redis_state_is_given_to_the_budget_breakers_limits_and_monitor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: Any, redis_prefix: str) -> None:
    from evalkit.router.state import RedisState

    monkeypatch.setenv("EVALKIT_TEST_REDIS_URL", redis_server.url)
    router = Router.from_config(write(tmp_path, TREE.replace("prefix: myapp", f"prefix: {redis_prefix}")))
    state = router.state
    assert isinstance(state, RedisState)
    assert (state.prefix, state.timeout_ms, state.retry_interval_s, state.fail_open) == (redis_prefix, 80.0, 0.5,
                                                                                        False)
    parts = _shared_parts(router)
    missing = [name for name, part in parts.items() if getattr(part, "state", None) is not state]
    assert not missing, f"built without the config's state: {missing}"
    assert redis_server.url not in repr(state)  # the URL (it may hold a password) is never shown


def test_two_replicas_built_from_one_config_share_budget_rate_limit_and_monitor_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: Any, redis_prefix: str) -> None:
    """Two routers from the same YAML (two replicas) on the emulator: one rpm window, one ledger, one set of counters.

    ``cheap`` allows 4 requests a minute: shared, the fleet's six calls are four on ``cheap`` and two on
    ``dear`` (the chain's next target); each replica on its own would send all three of its calls to ``cheap``.
    """
    from evalkit.emulator import Emulator

    monkeypatch.setenv("EVALKIT_TEST_REDIS_URL", redis_server.url)
    with Emulator(seed=3, time_scale=0.0) as emu:
        text = TREE.replace("prefix: myapp", f"prefix: {redis_prefix}").replace("rpm: 600", "rpm: 4").replace(
            "    api_key_env: EVALKIT_TEST_KEY\n", f"    api_key_env: EVALKIT_TEST_KEY\n    base_url: {emu.openai_base_url}\n")
        path = write(tmp_path, text)

        async def run() -> tuple[list[str], Any, Any]:
            replicas = [Router.from_config(path), Router.from_config(path)]
            request = evalkit.ChatRequest.from_prompt("Name a colour.", max_tokens=8)
            served = [(await router.complete(request)).provider for router in replicas for _ in range(3)]
            for router in replicas:
                await router.monitor.flush()
                await router.state.flush()
            fleet = replicas[0].monitor.fleet_counters()
            spent = [r.ledger.snapshot()["spent"] for r in replicas]
            for router in replicas:
                await router.aclose()
                await router.state.aclose()
            return served, fleet, spent

        served, fleet, spent = asyncio.run(run())
    assert sorted(served).count("openai:sim-small") == 4 and served.count("openai:sim-large") == 2, served
    cheap, dear = fleet["openai:sim-small"], fleet["openai:sim-large"]
    assert (cheap.served, dear.served) == (4, 2)
    assert cheap.attempts[None] == 4 and sum(n for kind, n in cheap.attempts.items() if kind) == 2  # the skips
    # One ledger: each replica's snapshot is the fleet's spend, which is what the monitor counted.
    assert cheap.cost_usd is not None and dear.cost_usd is not None
    assert spent == [cheap.cost_usd + dear.cost_usd] * 2


def test_leaving_async_with_sends_pending_settles_and_closes_the_configs_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: Any, redis_prefix: str) -> None:
    """The app closes one thing: the router. Its settles (background writes) still reach Redis first."""
    from evalkit.emulator import Emulator

    monkeypatch.setenv("EVALKIT_TEST_REDIS_URL", redis_server.url)
    with Emulator(seed=3, time_scale=0.0) as emu:
        text = TREE.replace("prefix: myapp", f"prefix: {redis_prefix}").replace(
            "    api_key_env: EVALKIT_TEST_KEY\n", f"    api_key_env: EVALKIT_TEST_KEY\n    base_url: {emu.openai_base_url}\n")
        path = write(tmp_path, text)

        async def run() -> Any:
            async with Router.from_config(path) as router:
                await router.complete(evalkit.ChatRequest.from_prompt("Name a colour.", max_tokens=8))
            return router

        router = asyncio.run(run())
    assert router.state._client is None  # its connections are closed
    other = Router.from_config(path)  # another replica reads the one ledger: the call's settle is there
    snapshot = other.ledger.snapshot()
    assert snapshot["spent"] > 0 and snapshot["reserved"] == 0
