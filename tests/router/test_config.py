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
        (("content_filter: stop", "content_filter: explode"),
         "routing.yaml:18: router.routes.code.retry.actions.content_filter:"),
        (("strategy: latency", "strategy: psychic"), "routing.yaml:19: router.routes.simple_qa.strategy:"),
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
    [("quality: 0.6}", "router.candidates[0].quality:"), ("max_in_flight: 4,", "targets.cheap.limits.max_in_flight:")],
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


# -- one validator: every number is a finite number in range, every setting does something ------------------


@pytest.mark.parametrize(
    ("mutation", "where"),
    [
        (("weights: [3, 1]", 'weights: ["3", 1]'),
         "routing.yaml:19: router.routes.simple_qa.weights[0]: expected a number"),
        (("weights: [3, 1]", "weights: [3, 0]"), "router.routes.simple_qa.weights[1]: must be > 0"),
        (("weights: [3, 1]", "weights: [.nan, 1]"), "router.routes.simple_qa.weights[0]: must be a finite number"),
        (("deadline_s: 30", "deadline_s: .inf"),
         "routing.yaml:18: router.routes.code.retry.deadline_s: must be a finite"),
        (("deadline_s: 30", "deadline_s: 0"), "router.routes.code.retry.deadline_s: must be > 0"),
        (("deadline_s: 30", "deadline_s: '30'"), "router.routes.code.retry.deadline_s: expected a number"),
        (("retries_per_target: 2", "retries_per_target: 2.5"), "retry.retries_per_target: expected a whole number"),
        (("retries_per_target: 2", "retries_per_target: true"), "retry.retries_per_target: expected a whole number"),
        (("version: 1", "version: 2"), "routing.yaml:1: version: only version 1 is supported"),
        (("  default: fast\n", "  default: fast\n  colour: blue\n"), "routing.yaml:21: router.colour: unknown field"),
        (("content_filter: stop", "sparkles: stop"), "retry.actions.sparkles: unknown error kind 'sparkles'"),
        (("context_window: 128000", "context_window: -5"), "targets.strong.context_window: must be >= 1"),
        (("prices: {input: 0.05, output: 0.08}", "prices: {input: .nan, output: 0.08}"),
         "targets.fast.prices.input: must be a finite number >= 0"),
        (("prices: {input: 0.05, output: 0.08}", 'prices: {input: "-1", output: 0.08}'),
         "targets.fast.prices.input: must be a finite number >= 0"),
        (("long_document_tokens: 4000", "long_document_tokens: 1e999"),
         "classifier.long_document_tokens: expected a whole"),
    ],
)
def test_from_config_refuses_bad_numbers_and_settings(tmp_path: Path, mutation: tuple[str, str],
                                                      where: str) -> None:
    old, new = mutation
    assert old in TREE
    with pytest.raises(evalkit.ConfigError) as caught:
        Router.from_config(write(tmp_path, TREE.replace(old, new, 1)))
    assert where in str(caught.value)


COST = """\
targets:
  cheap: {model: "openai:sim-small", api_key_env: EVALKIT_TEST_KEY, prices: {input: 0.1, output: 0.4}}
  dear: {model: "openai:sim-large", api_key_env: EVALKIT_TEST_KEY, prices: {input: 5, output: 15}}
router:
  type: cost
  candidates:
    - {target: cheap, quality: 0.6}
    - {target: dear, quality: 0.9}
budget: {limit_usd: "2.50", per_target: {dear: 1}, max_share_of_remaining: "0.1"}
"""


def test_budget_per_target_caps_apply_to_the_named_target(tmp_path: Path) -> None:
    # per_target is keyed by the config's target name; the ledger sees the served name (provider:model).
    # Before, {dear: 1} was kept under "dear", a name no call ever reserves under: the cap never applied.
    from decimal import Decimal

    router = Router.from_config(write(tmp_path, COST))
    assert router.ledger.per_target == {"openai:sim-large": Decimal(1)}
    assert router.ledger.limit == Decimal("2.50")
    with pytest.raises(evalkit.BudgetExceeded):
        router.ledger.reserve("openai:sim-large", Decimal("1.01"))


def test_max_share_of_remaining_is_read_and_validated(tmp_path: Path) -> None:
    from decimal import Decimal

    from evalkit.router.config import parse_routing_config

    spec = parse_routing_config(write(tmp_path, COST))
    assert spec.budget is not None and spec.budget.max_share_of_remaining == Decimal("0.1")
    router = Router.from_config(write(tmp_path, COST))
    assert router.ledger.max_share_of_remaining == Decimal("0.1")
    for bad in ('"0"', '"1.5"', '".nan"', "-0.1", '"a lot"', "[0.1]"):
        with pytest.raises(evalkit.ConfigError) as caught:
            Router.from_config(write(tmp_path, COST.replace('"0.1"', bad)))
        assert "routing.yaml:9: budget.max_share_of_remaining:" in str(caught.value), bad


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ("router: openai:gpt-4o\nbudget: {limit_usd: 5}\n", "routing.yaml:2: budget: no cost node uses this budget"),
        (COST.replace("per_target: {dear: 1}", "per_target: {nobody: 1}"),
         "budget.per_target.nobody: no cost candidate is 'nobody'"),
        (COST.replace("{target: cheap, quality: 0.6}", "{target: cheap, quality: 0.6, qualty: 1}"),
         "router.candidates[0].qualty: unknown field"),
        (COST.replace("type: cost\n", "type: cost\n  allow_downgrade: 'no'\n"),
         "router.allow_downgrade: expected true or false"),
        (COST.replace("prices: {input: 0.1, output: 0.4}}", "prices: {input: 0.1, output: 0.4},\n"
                      "          limits: {on_saturated: skip, max_wait_s: 5}}"),
         "targets.cheap.limits.max_wait_s: applies only with on_saturated: wait"),
        ('router: {type: fallback, targets: [openai:gpt-4o], name: ""}\n', "router.name: expected a non-empty string"),
    ],
)
def test_settings_that_would_change_nothing_are_refused(tmp_path: Path, config: str, where: str) -> None:
    with pytest.raises(evalkit.ConfigError) as caught:
        Router.from_config(write(tmp_path, config))
    assert where in str(caught.value)


def test_validation_needs_no_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.router.config import TaskSpec, parse_routing_config

    monkeypatch.delenv("EVALKIT_TEST_KEY")
    spec = parse_routing_config(write(tmp_path, TREE))  # checks everything, builds nothing
    assert isinstance(spec.router, TaskSpec) and spec.router.routes["code"].retry.deadline_s == 30
    with pytest.raises(evalkit.ConfigError, match="routing.yaml:5: targets.strong.api_key_env: environment"):
        Router.from_config(write(tmp_path, TREE))


def test_non_utf8_and_alias_bombs_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_bytes(TREE.replace("fast", "f\xe2st").encode("latin-1"))
    with pytest.raises(evalkit.ConfigError, match=r"routing\.yaml:7: not valid UTF-8"):
        Router.from_config(path)
    with pytest.raises(evalkit.ConfigError, match="recursive alias"):
        Router.from_config(write(tmp_path, "router: &r {type: fallback, targets: [*r]}\n"))
