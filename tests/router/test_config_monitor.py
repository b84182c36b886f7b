"""A config's one monitor hears from every node: nested breakers' openings reach its counters and Prometheus
text, and every attempt is recorded exactly once however deep the node that sent it.

The providers are real HTTP providers built from YAML; their transport (``provider_options``) answers like an
OpenAI-compatible server: 500 for the models named ``down-*``, an answer for the others.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from evalkit import ChatRequest
from evalkit.router import FallbackChain, Router, TaskRouter, WeightedBalancer
from evalkit.router.monitor import Monitor


class OpenAICompatible(httpx.AsyncBaseTransport):
    """A chat-completions endpoint in memory: ``down-*`` models answer 500, the others answer; calls are counted."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        self.calls[model] += 1
        if model.startswith("down-"):
            return httpx.Response(500, json={"error": {"message": "internal error", "type": "server_error"}})
        return httpx.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"hello from {model}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})


TARGETS = """\
version: 1
monitor: {window: 1h}
targets:
  down-a: {model: "openai:down-a", api_key_env: EVALKIT_TEST_KEY, base_url: "http://llm.test/v1",
           prices: {input: 1, output: 2}}
  down-b: {model: "openai:down-b", api_key_env: EVALKIT_TEST_KEY, base_url: "http://llm.test/v1",
           prices: {input: 1, output: 2}}
  up: {model: "openai:up", api_key_env: EVALKIT_TEST_KEY, base_url: "http://llm.test/v1",
           prices: {input: 1, output: 2}}
"""

NESTED_BALANCER = TARGETS + """\
router:
  type: task
  routes:
    code: up
  default:
    type: fallback
    breaker: off
    retry: {retries_per_target: 0}
    targets:
      - {type: balance, targets: [down-a, down-b], breaker: {consecutive_failures: 1, cooldown_s: 600}}
      - up
"""

FALLBACK_IN_A_ROUTE = TARGETS + """\
router:
  type: task
  routes:
    code:
      type: fallback
      breaker: {consecutive_failures: 1, cooldown_s: 600}
      retry: {retries_per_target: 0}
      targets: [down-a, up]
  default: up
"""

BALANCER_AT_THE_ROOT = TARGETS + """\
router: {type: balance, targets: [down-a, down-b, up], breaker: {consecutive_failures: 1, cooldown_s: 600}}
"""


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-test-monitor-key")


def build(tmp_path: Path, text: str) -> tuple[Router, Monitor, OpenAICompatible]:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    transport = OpenAICompatible()
    router = Router.from_config(path, provider_options={"transport": transport})
    assert router.monitor is not None
    return router, router.monitor, transport


def counter(text: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """One counter family of Prometheus exposition text: {sorted label pairs: value}."""
    out = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{family}\{{(.*)\}} (\S+)", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(1))))
            out[labels] = float(match.group(2))
    return out


def opens(monitor: Monitor) -> dict[str, float]:
    """The breaker openings the monitor exports, by target."""
    found = counter(monitor.to_prometheus(), "evalkit_circuit_breaker_opens_total")
    return {dict(labels)["target"]: value for labels, value in found.items()}


def attempts(monitor: Monitor) -> dict[tuple[str, str], float]:
    """``evalkit_attempts_total`` by (target, error_kind)."""
    found = counter(monitor.to_prometheus(), "evalkit_attempts_total")
    return {(dict(labels)["provider"] + ":" + dict(labels)["model"], dict(labels)["error_kind"]): value
            for labels, value in found.items()}


def request(task: str | None = None) -> ChatRequest:
    metadata: dict[str, Any] = {} if task is None else {"task_type": task}
    return ChatRequest.from_prompt("Say hello.", max_tokens=8, metadata=metadata)


async def test_a_balancer_nested_in_a_config_reports_its_breaker_openings(tmp_path: Path) -> None:
    router, monitor, transport = build(tmp_path, NESTED_BALANCER)
    assert isinstance(router, TaskRouter)
    chain = router.default
    assert isinstance(chain, FallbackChain)
    balancer = chain.targets[0]
    assert isinstance(balancer, WeightedBalancer) and balancer.monitor is None  # nested: records no attempt

    response = await router.complete(request())

    assert response.text == "hello from up"
    assert [h.breaker.opens for h in balancer.health] == [1, 1]
    assert opens(monitor) == {"openai:down-a": 1, "openai:down-b": 1}
    summary = {row["model"]: row["breaker_opens"] for row in monitor.summary_df().to_dicts()}
    assert summary == {"down-a": 1, "down-b": 1, "up": 0}
    # Each attempt once: two 500s in the balancer, one answer from the chain's second target.
    assert transport.calls == {"down-a": 1, "down-b": 1, "up": 1}
    assert attempts(monitor) == {("openai:down-a", "server"): 1, ("openai:down-b", "server"): 1,
                                 ("openai:up", "none"): 1}
    assert len(monitor) == 3
    await router.aclose()


async def test_a_fallback_in_a_task_route_reports_its_breaker_openings(tmp_path: Path) -> None:
    router, monitor, transport = build(tmp_path, FALLBACK_IN_A_ROUTE)
    assert isinstance(router, TaskRouter)
    code = router.routes["code"]
    assert isinstance(code, FallbackChain) and code.breakers is not None

    await router.complete(request("code"))
    second = await router.complete(request("code"))  # the open circuit skips down-a: nothing sent to it

    assert second.text == "hello from up"
    assert code.breakers[0].opens == 1
    assert opens(monitor) == {"openai:down-a": 1}
    assert transport.calls == {"down-a": 1, "up": 2}
    assert attempts(monitor) == {("openai:down-a", "server"): 1, ("openai:down-a", "circuit_open"): 1,
                                 ("openai:up", "none"): 2}
    await router.aclose()


async def test_a_breaker_keeping_root_counts_each_opening_once(tmp_path: Path) -> None:
    router, monitor, transport = build(tmp_path, BALANCER_AT_THE_ROOT)
    assert isinstance(router, WeightedBalancer) and router.monitor is monitor

    for _ in range(3):  # whichever order the balancer draws, both down targets fail once and open
        await router.complete(request())

    assert opens(monitor) == {name: 1 for name in ("openai:down-a", "openai:down-b")
                              if transport.calls[name.split(":")[1]]}
    assert sum(h.breaker.opens for h in router.health) == sum(opens(monitor).values())
    assert attempts(monitor)[("openai:up", "none")] == 3
    await router.aclose()
