"""A ``prompt`` node in a routing config: the per-prompt router's model file and a node per target it names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import evalkit
from evalkit.errors import ConfigError
from evalkit.router import FallbackChain, PromptModel, PromptRouter

from .test_prompt_router import model  # noqa: F401  (the module-scoped trained model fixture)


@pytest.fixture(autouse=True)
def _keys(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")


def _config(folder: Path, node: str) -> Path:
    path = folder / "routing.yaml"
    path.write_text("router:\n" + textwrap.indent(textwrap.dedent(node), "  "))
    return path


NODE = """\
type: prompt
model: router.json
targets:
  cheap: openai:gpt-4o-mini
  mid: openai:gpt-4.1-mini
  strong: {type: fallback, targets: [openai:gpt-4o, openai:gpt-4.1]}
"""


def test_a_prompt_node_builds_the_router_over_its_nodes(model: PromptModel, tmp_path: Path) -> None:  # noqa: F811
    model.save(tmp_path / "router.json")
    router = evalkit.Router.from_config(_config(tmp_path, NODE + "max_attempts: 2\nmin_quality: 0.7\n"))
    assert isinstance(router, PromptRouter)
    assert [t.name for t in router.targets[:2]] == ["openai:gpt-4o-mini", "openai:gpt-4.1-mini"]
    assert isinstance(router.targets[2], FallbackChain)
    prompt = evalkit.ChatRequest.from_prompt("Compute 12 plus 30 and give the number only.")
    assert router.route_for(prompt) is not None


@pytest.mark.parametrize(("extra", "field", "says"), [
    ("min_quality: 0.7\nlambda: 3\n", "router.lambda", "not both"),
    ("min_quality: 1.5\n", "router.min_quality", "between 0 and 1"),
    ("max_attempts: 0\n", "router.max_attempts", ""),
    ("bar: 1\n", "router.bar", "unknown field"),
])
def test_a_bad_prompt_node_is_one_located_error(model: PromptModel, tmp_path: Path,  # noqa: F811
                                                extra: str, field: str, says: str) -> None:
    model.save(tmp_path / "router.json")
    with pytest.raises(ConfigError) as caught:
        evalkit.Router.from_config(_config(tmp_path, NODE + extra))
    assert caught.value.field == field and says in str(caught.value)


def test_targets_that_are_not_the_models_are_an_error_at_the_targets(model: PromptModel,  # noqa: F811
                                                                     tmp_path: Path) -> None:
    model.save(tmp_path / "router.json")
    with pytest.raises(ConfigError) as caught:
        evalkit.Router.from_config(_config(tmp_path, NODE.replace("  mid:", "  middle:")))
    assert caught.value.field == "router.targets" and "mid" in str(caught.value)
    assert caught.value.file and caught.value.file.endswith("routing.yaml")


def test_a_missing_model_file_is_an_error_at_the_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        evalkit.Router.from_config(_config(tmp_path, NODE))
    assert caught.value.field == "router.model" and "no such file" in str(caught.value)


def test_replay_refuses_a_prompt_node_and_names_the_honest_evaluation(model: PromptModel,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    from evalkit.analysis.replay import policy_from_config

    model.save(tmp_path / "router.json")
    with pytest.raises(ConfigError) as caught:
        policy_from_config(_config(tmp_path, NODE))
    assert caught.value.field == "router" and "evaluate_prompt_router" in str(caught.value)
