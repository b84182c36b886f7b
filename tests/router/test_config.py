"""Router.from_config: YAML routing configs build router trees; bad fields name their YAML path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import evalkit
from evalkit.router import FallbackChain, Router, TaskRouter, WeightedBalancer


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(text))
    return path


TREE = """\
version: 1
targets:
  strong:
    model: openai:gpt-4o
    api_key_env: EVALKIT_TEST_KEY
    context_window: 128000
  fast:
    model: groq:llama-3.1-8b-instant
    api_key_env: EVALKIT_TEST_KEY
    prices: {input: 0.05, output: 0.08}
router:
  type: task
  classifier: {long_document_tokens: 4000}
  routes:
    code:
      type: fallback
      targets: [strong, fast]
      retry: {retries_per_target: 2, deadline_s: 30, actions: {content_filter: stop}}
    simple_qa: {type: balance, targets: [fast, strong], weights: [3, 1], strategy: latency}
  default: fast
"""


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-test-config-key")


def test_builds_the_described_tree(tmp_path: Path) -> None:
    router = Router.from_config(write(tmp_path, TREE))
    assert isinstance(router, TaskRouter)
    code = router.routes["code"]
    assert isinstance(code, FallbackChain) and [t.name for t in code.targets] == ["openai:gpt-4o",
                                                                                   "groq:llama-3.1-8b-instant"]
    assert code.policy.retries_per_target == 2
    assert code.policy.actions[evalkit.ErrorKind.CONTENT_FILTER].value == "stop"
    qa = router.routes["simple_qa"]
    assert isinstance(qa, WeightedBalancer) and qa.weights == (3.0, 1.0) and qa.strategy == "latency"
    assert router.default.name == "groq:llama-3.1-8b-instant"
    assert router.classifier.long_document_tokens == 4000
    assert code.targets[0].context_window == 128000
    assert str(router.default.prices().input) == "0.05"


def test_same_named_target_is_one_provider(tmp_path: Path) -> None:
    router = Router.from_config(write(tmp_path, TREE))
    assert router.routes["code"].targets[1] is router.default


@pytest.mark.parametrize(
    ("mutation", "where"),
    [
        (("targets: [strong, fast]", "targets: [strong, nope]"), "routing.yaml:17: router.routes.code.targets[1]:"),
        (("type: task", "type: magic"), "routing.yaml:12: router.type:"),
        (("weights: [3, 1]", "weights: [3]"), "router.routes.simple_qa.weights:"),
        (("model: openai:gpt-4o\n", "model: gpt-4o\n"), "routing.yaml:4: targets.strong.model:"),
        (("api_key_env: EVALKIT_TEST_KEY\n    context", "api_key: sk-live-123\n    context"),
         "targets.strong.api_key:"),
        (("deadline_s: 30", "deadline_s: -1"), "router.routes.code.retry.deadline_s:"),
        (("deadline_s: 30", "deadlin_s: 30"), "router.routes.code.retry.deadlin_s:"),
        (("content_filter: stop", "content_filter: explode"), "router.routes.code.retry.actions:"),
        (("strategy: latency", "strategy: psychic"), "router.routes.simple_qa:"),
        (("  default: fast\n", ""), "router.default:"),
        (("prices: {input: 0.05, output: 0.08}", "prices: {input: 0.05}"), "targets.fast.prices.output:"),
        (("model: groq:llama-3.1-8b-instant", "model: acme:llama"), "targets.fast.model:"),
    ],
)
def test_bad_fields_name_their_yaml_path(tmp_path: Path, mutation: tuple[str, str], where: str) -> None:
    old, new = mutation
    assert old in TREE
    with pytest.raises(evalkit.ConfigError) as caught:
        Router.from_config(write(tmp_path, TREE.replace(old, new, 1)))
    assert where in str(caught.value)


def test_missing_env_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALKIT_TEST_KEY")
    with pytest.raises(evalkit.ConfigError, match="targets.strong.api_key_env: environment variable"):
        Router.from_config(write(tmp_path, TREE))


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(evalkit.ConfigError, match="routing.yaml:2: not valid YAML"):
        Router.from_config(write(tmp_path, "router: [\n  : :"))


def test_single_target_root_becomes_a_router() -> None:
    router = Router.from_config({"router": "ollama:llama3.2"})
    assert isinstance(router, FallbackChain) and router.targets[0].name == "ollama:llama3.2"


def test_cost_node_with_budget_and_limits(tmp_path: Path) -> None:
    config = """\
    targets:
      cheap: {model: "openai:sim-small", api_key_env: EVALKIT_TEST_KEY, prices: {input: 0.1, output: 0.4},
              limits: {max_in_flight: 4, rpm: 600}}
      dear: {model: "openai:sim-large", api_key_env: EVALKIT_TEST_KEY, prices: {input: 5, output: 15}}
    router:
      type: cost
      min_quality: 0.5
      candidates:
        - {target: cheap, quality: 0.6}
        - {target: dear, quality: 0.9}
    budget: {limit_usd: 2.5, period: day, per_target: {dear: 1}}
    monitor: {window: 1h}
    """
    router = Router.from_config(write(tmp_path, config))
    assert isinstance(router, evalkit.CostAwareRouter)
    assert router.monitor is not None and router.monitor.window_s == 3600
    assert [q.target for q in router.quote(evalkit.ChatRequest.from_prompt("hi", max_tokens=10))] == [
        "openai:sim-small", "openai:sim-large"]


@pytest.mark.parametrize(
    ("bad", "where"),
    [("quality: 0.6}", "router.candidates[0].quality:"), ("max_in_flight: 4,", "targets.cheap.limits:")],
)
def test_cost_and_limit_errors_are_located(tmp_path: Path, bad: str, where: str) -> None:
    base = """\
    targets:
      cheap: {model: "openai:sim-small", api_key_env: EVALKIT_TEST_KEY, prices: {input: 0.1, output: 0.4},
              limits: {max_in_flight: 4, rpm: 600}}
    router:
      type: cost
      candidates:
        - {target: cheap, quality: 0.6}
    """
    broken = base.replace("quality: 0.6}", "quality: 7}") if "quality" in bad else base.replace(
        "max_in_flight: 4,", "max_in_flight: 0,")
    with pytest.raises(evalkit.ConfigError) as caught:
        Router.from_config(write(tmp_path, broken))
    assert where in str(caught.value)
