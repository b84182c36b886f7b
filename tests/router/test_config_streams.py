"""Routing YAML for streams and failover: per-target deadlines and prefill, mid_stream per node, a chain's
breakers, the content-filter opt-in, and provider_options; every bad value a located ConfigError."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import evalkit
from evalkit import Deadlines, ErrorKind, ProviderError, Router, StreamRestart
from evalkit.router import BreakerSettings
from evalkit.router.config import FallbackSpec, TaskSpec, parse_routing_config

TREE = """\
version: 1
targets:
  primary:
    model: openai:sim-small
    api_key_env: EVALKIT_TEST_KEY
    connect_timeout_s: 1
    ttft_timeout_s: 2.5
    stall_timeout_s: 5
    total_timeout_s: 60
    prefill: false
  backup:
    model: anthropic:sim-long
    api_key_env: EVALKIT_TEST_KEY
    headers_timeout_s: 10
    prefill: true
router:
  type: task
  mid_stream: fail
  routes:
    code:
      type: fallback
      targets: [primary, backup]
      mid_stream: restart
      breaker: {consecutive_failures: 2, cooldown_s: 15}
      retry: {actions: {content_filter: next}}
    chat:
      type: fallback
      targets: [backup, primary]
      breaker: off
    qa: {type: balance, targets: [primary, backup], mid_stream: continue}
    hedged: {type: hedge, targets: [primary, backup], mid_stream: restart}
  default: ollama:llama3.2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-test-config-key")


# -- parsing: what each field means ------------------------------------------------------------------------


def test_the_new_fields_parse_into_typed_settings(tmp_path: Path) -> None:
    spec = parse_routing_config(write(tmp_path, TREE))
    primary, backup = spec.targets["primary"], spec.targets["backup"]
    assert primary.deadlines == Deadlines(connect_timeout_s=1, ttft_timeout_s=2.5, stall_timeout_s=5,
                                          total_timeout_s=60)
    assert backup.deadlines == Deadlines(headers_timeout_s=10)  # only the fields given are set
    assert (primary.prefill, backup.prefill) == (False, True)
    root = spec.router
    assert isinstance(root, TaskSpec) and root.mid_stream == "fail"
    code, chat = root.routes["code"], root.routes["chat"]
    assert isinstance(code, FallbackSpec) and isinstance(chat, FallbackSpec)
    assert code.mid_stream == "restart" and chat.mid_stream is None  # omitted: the class default
    assert code.breaker == BreakerSettings(consecutive_failures=2, cooldown_s=15) and not code.breaker_off
    assert chat.breaker is None and chat.breaker_off
    assert root.routes["qa"].mid_stream == "continue" and root.routes["hedged"].mid_stream == "restart"
    assert code.retry.actions[ErrorKind.CONTENT_FILTER].value == "next"
    assert chat.retry.actions[ErrorKind.CONTENT_FILTER].value == "stop"  # the default: no routing around


def test_a_target_without_deadlines_or_prefill_says_nothing(tmp_path: Path) -> None:
    spec = parse_routing_config(write(tmp_path, TREE))
    inline = spec.router.default  # type: ignore[union-attr]
    assert inline.deadlines is None and inline.prefill is None


@pytest.mark.parametrize(
    ("mutation", "where"),
    [
        (("ttft_timeout_s: 2.5", "ttft_timeout_s: 0"), "routing.yaml:7: targets.primary.ttft_timeout_s: must be > 0"),
        (("ttft_timeout_s: 2.5", "ttft_timeout_s: -2"), "routing.yaml:7: targets.primary.ttft_timeout_s: must be > 0"),
        (("ttft_timeout_s: 2.5", "ttft_timeout_s: '2.5'"),
         "routing.yaml:7: targets.primary.ttft_timeout_s: expected a number"),
        (("stall_timeout_s: 5", "stall_timeout_s: .nan"),
         "routing.yaml:8: targets.primary.stall_timeout_s: must be a finite number"),
        (("total_timeout_s: 60", "total_timeout_s: .inf"),
         "routing.yaml:9: targets.primary.total_timeout_s: must be a finite number"),
        (("connect_timeout_s: 1", "connect_timeout_s: true"),
         "routing.yaml:6: targets.primary.connect_timeout_s: expected a number"),
        (("headers_timeout_s: 10", "headers_timeout_s: [10]"),
         "routing.yaml:14: targets.backup.headers_timeout_s: expected a number"),
        (("stall_timeout_s: 5", "stall_timeout_s: 90"),
         "routing.yaml:8: targets.primary.stall_timeout_s: 90s is longer than total_timeout_s (60s)"),
        (("ttft_timeout_s: 2.5", "ttft_timout_s: 2.5"), "routing.yaml:7: targets.primary.ttft_timout_s: unknown field"),
        (("prefill: false", "prefill: 'no'"), "routing.yaml:10: targets.primary.prefill: expected true or false"),
        (("prefill: true", "prefill: 1"), "routing.yaml:15: targets.backup.prefill: expected true or false"),
        (("  mid_stream: fail", "  mid_stream: resume"),
         "routing.yaml:18: router.mid_stream: unknown value 'resume'; expected one of continue, restart, fail"),
        (("      mid_stream: restart", "      mid_stream: true"), "routing.yaml:23: router.routes.code.mid_stream:"),
        (("targets: [primary, backup], mid_stream: continue", "targets: [primary, backup], mid_stream: null"),
         "routing.yaml:30: router.routes.qa.mid_stream: unknown value None"),
        (("    prefill: true", "    prefill: true\n    mid_stream: continue"),
         "routing.yaml:16: targets.backup.mid_stream: unknown field"),
        (("breaker: {consecutive_failures: 2, cooldown_s: 15}", "breaker: {consecutive_failures: 0}"),
         "routing.yaml:24: router.routes.code.breaker.consecutive_failures: must be >= 1"),
        (("breaker: {consecutive_failures: 2, cooldown_s: 15}", "breaker: {cooldown_s: -1}"),
         "routing.yaml:24: router.routes.code.breaker.cooldown_s: must be >= 0"),
        (("breaker: {consecutive_failures: 2, cooldown_s: 15}", "breaker: {cooldown: 15}"),
         "routing.yaml:24: router.routes.code.breaker.cooldown: unknown field"),
        (("breaker: off", "breaker:"), "routing.yaml:29: router.routes.chat.breaker: an empty breaker: changes"),
        (("breaker: off", "breaker: on"), "routing.yaml:29: router.routes.chat.breaker: breaker: on changes nothing"),
        (("breaker: off", "breaker: sometimes"), "routing.yaml:29: router.routes.chat.breaker: expected a mapping"),
        (("targets: [primary, backup], mid_stream: continue", "targets: [primary, backup], breaker: off"),
         "router.routes.qa.breaker: a balance node's breakers cannot be turned off"),
        (("retry: {actions: {content_filter: next}}", "retry: {actions: {content_filter: onward}}"),
         "routing.yaml:25: router.routes.code.retry.actions.content_filter: unknown value 'onward'"),
    ],
)
def test_bad_values_name_file_line_and_yaml_path(tmp_path: Path, mutation: tuple[str, str], where: str) -> None:
    old, new = mutation
    assert TREE.count(old) == 1, old
    path = write(tmp_path, TREE.replace(old, new))
    with pytest.raises(evalkit.ConfigError) as parsed:
        parse_routing_config(path)
    assert where in str(parsed.value)
    with pytest.raises(evalkit.ConfigError) as built:  # the builder reads the same validator
        Router.from_config(path)
    assert str(built.value) == str(parsed.value)


def test_a_bad_value_is_exit_code_2_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    path = write(tmp_path, TREE.replace("ttft_timeout_s: 2.5", "ttft_timeout_s: -1"))
    assert main(["export", str(path), "--format", "evalkit"]) == 2
    err = capsys.readouterr().err
    assert "routing.yaml:7: targets.primary.ttft_timeout_s: must be > 0" in err and "Traceback" not in err


# -- building: what each field does to the router tree ------------------------------------------------------


def test_the_tree_carries_deadlines_prefill_mid_stream_and_breakers(tmp_path: Path) -> None:
    router = Router.from_config(write(tmp_path, TREE))
    assert router.mid_stream == "fail"
    code, chat, qa = router.routes["code"], router.routes["chat"], router.routes["qa"]
    primary, backup = code.targets
    assert primary.deadlines == Deadlines(connect_timeout_s=1, ttft_timeout_s=2.5, stall_timeout_s=5,
                                          total_timeout_s=60)
    assert backup.deadlines == Deadlines(headers_timeout_s=10)
    # sim-long is no model the capability data knows (so: no prefill); the config says it takes one.
    assert (primary.accepts_prefill, backup.accepts_prefill) == (False, True)
    assert not router.default.deadlines.armed
    assert (code.mid_stream, chat.mid_stream, qa.mid_stream) == ("restart", "continue", "continue")
    assert router.routes["hedged"].mid_stream == "restart"
    assert code.breakers is not None and {b.settings for b in code.breakers} == {
        BreakerSettings(consecutive_failures=2, cooldown_s=15)}
    assert chat.breakers is None
    single = Router.from_config({"router": {"type": "fallback", "targets": ["ollama:llama3.2"]}})
    assert single.breakers is not None and single.breakers[0].settings == BreakerSettings()  # on by default


# -- behaviour through the emulator ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from evalkit.emulator import Emulator

    with Emulator(seed=0, time_scale=0.0, datasets=()) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").reset()


NO_RETRY = "retries_per_target: 0, backoff_base_s: 0, backoff_cap_s: 0"


def chain_config(emu: Any, *, primary: str = "", backup: str = "", node: str = "", retry: str = NO_RETRY
                 ) -> dict[str, Any]:
    """A two-target chain over the emulator, sim-small (openai) then sim-long (anthropic); extra YAML per part."""
    import yaml

    text = f"""\
    targets:
      primary: {{model: openai:sim-small, base_url: "{emu.openai_base_url}", api_key_env: EVALKIT_TEST_KEY,
                prices: {{input: 1, output: 2}}, {primary}}}
      backup: {{model: anthropic:sim-long, base_url: "{emu.anthropic_base_url}", api_key_env: EVALKIT_TEST_KEY,
               prices: {{input: 1, output: 2}}, {backup}}}
    router: {{type: fallback, targets: [primary, backup],
             retry: {{{retry}}}, {node}}}
    """
    return yaml.safe_load(textwrap.dedent(text).replace(", }", "}"))


def requests_to(emu: Any, model: str) -> int:
    return emu.stats()["models"].get(model, {}).get("requests", 0)


def ask(router: Any, prompt: str = "Tell me a fact.", *, stream: bool = False, calls: int = 1) -> Any:
    """The response to ``prompt`` (a list of ``calls`` responses, sent one after the other, when ``calls`` > 1)."""
    async def run() -> list[Any]:
        async with router:  # one event loop for every call: the providers' connections belong to it
            return [await router.complete(evalkit.ChatRequest.from_prompt(f"{prompt} ({i})", max_tokens=40,
                                                                          stream=stream)) for i in range(calls)]

    responses = asyncio.run(run())
    return responses if calls > 1 else responses[0]


def test_a_ttft_deadline_from_the_config_fails_over_in_its_time(emu: Any) -> None:
    # The primary holds its answer for 10 s; the config gives it 0.5 s to a first token.
    emu.script("sim-small", [{"kind": "timeout", "stall_s": 10}])
    router = Router.from_config(chain_config(emu, primary="ttft_timeout_s: 0.5"))
    started = time.perf_counter()
    response = ask(router, stream=True)
    elapsed = time.perf_counter() - started
    assert response.provider == "anthropic:sim-long" and response.text
    first = response.attempts[0]
    assert first.target == "openai:sim-small" and first.error_kind == "timeout" and "ttft_timeout_s" in first.error
    assert requests_to(emu, "sim-small") == 1  # failed over after its first timeout, not retried
    assert elapsed < 3.0, elapsed


def test_the_chain_breaker_from_the_config_spares_a_down_primary_and_off_does_not(emu: Any) -> None:
    emu.script("sim-small", [{"kind": "500", "times": 50}])
    router = Router.from_config(chain_config(emu, node="breaker: {consecutive_failures: 1, cooldown_s: 60}"))
    assert {r.provider for r in ask(router, calls=5)} == {"anthropic:sim-long"}
    assert requests_to(emu, "sim-small") == 1  # opened after one failure: no more calls during its cooldown
    emu.reset()
    emu.script("sim-small", [{"kind": "500", "times": 50}])
    router = Router.from_config(chain_config(emu, node="breaker: off"))
    assert {r.provider for r in ask(router, calls=5)} == {"anthropic:sim-long"}
    assert requests_to(emu, "sim-small") == 5  # no breakers: every call tries the primary first


def test_content_filter_stops_by_default_and_routes_around_only_when_opted_in(emu: Any) -> None:
    emu.script("sim-small", ["content_filter"])
    with pytest.raises(ProviderError) as caught:
        ask(Router.from_config(chain_config(emu)))
    assert caught.value.kind is ErrorKind.CONTENT_FILTER
    assert requests_to(emu, "sim-long") == 0  # one attempt: the vendor's rejection is the answer
    emu.reset()
    emu.script("sim-small", ["content_filter"])
    opted_in = chain_config(emu, retry=NO_RETRY + ", actions: {content_filter: next}")
    assert ask(Router.from_config(opted_in)).provider == "anthropic:sim-long"


def streamed(router: Any) -> tuple[list[Any], Any]:
    async def run() -> tuple[list[Any], Any]:
        routed = router.stream(evalkit.ChatRequest.from_prompt("Tell me a long fact.", max_tokens=60, stream=True))
        events = [event async for event in routed]
        return events, routed.response

    return asyncio.run(run())


@pytest.mark.parametrize(("prefill", "recovery"), [("prefill: true", "continue"), ("prefill: false", "restart")])
def test_the_config_prefill_decides_between_continuing_and_restarting_a_cut_stream(
        emu: Any, prefill: str, recovery: str) -> None:
    emu.script("sim-small", ["cut"])
    events, response = streamed(Router.from_config(chain_config(emu, backup=prefill)))
    restarts = [e for e in events if isinstance(e, StreamRestart)]
    assert response.provider == "anthropic:sim-long" and response.attempts[-1].recovery == recovery
    assert len(restarts) == (recovery == "restart")
    after = events[events.index(restarts[-1]) + 1:] if restarts else events
    assert "".join(after) == response.text  # the caller's text is the answer, once


def test_mid_stream_fail_from_the_config_ends_a_cut_stream_with_its_error(emu: Any) -> None:
    emu.script("sim-small", ["cut"])
    router = Router.from_config(chain_config(emu, node="mid_stream: fail", backup="prefill: true"))
    with pytest.raises(ProviderError) as caught:
        streamed(router)
    assert caught.value.kind is ErrorKind.STREAM_INTERRUPTED
    assert requests_to(emu, "sim-long") == 0


# -- provider_options -----------------------------------------------------------------------------------------


def test_provider_options_reach_every_provider_the_config_builds(emu: Any) -> None:
    import httpx

    from evalkit.router.config import load_router_config

    seen: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.path)
            return await super().handle_async_request(request)

    emu.script("sim-small", ["500"])
    transport = Recording()
    router = load_router_config(chain_config(emu), provider_options={"transport": transport})
    assert all(t._transport is transport for t in router.targets)  # type: ignore[attr-defined]
    assert ask(router).provider == "anthropic:sim-long"
    assert seen == ["/v1/chat/completions", "/v1/messages"]  # both targets' calls went through it


def test_router_from_config_forwards_provider_options(emu: Any) -> None:
    import httpx

    transport = httpx.AsyncHTTPTransport()
    router = Router.from_config(chain_config(emu), provider_options={"transport": transport})
    assert all(t._transport is transport for t in router.targets)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"deadlines": Deadlines(ttft_timeout_s=1)},
      "routing.yaml:3: targets.primary: provider_options sets 'deadlines', which the config sets for this target"),
     ({"prefill": True}, "targets.primary: provider_options sets 'prefill'"),
     ({"api_key": "sk-x"}, "provider_options cannot set api_key or base_url")],
)
def test_provider_options_never_silently_override_the_config(tmp_path: Path, options: dict[str, Any],
                                                             message: str) -> None:
    from evalkit.router.config import load_router_config

    with pytest.raises(evalkit.ConfigError) as caught:
        load_router_config(write(tmp_path, TREE), provider_options=options)
    assert message in str(caught.value)
