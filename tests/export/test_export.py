"""Export of routing configs: evalkit YAML, LiteLLM proxy config, Portkey gateway config; keys never inlined."""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalkit.errors import ConfigError
from evalkit.export import GatewayExportWarning, export_config, export_with_notes

from .refusals import assert_refused_alike

# Every gateway export of a task router warns that the gateway cannot run its classifier (the tests at the end
# check that warning); the other tests are about other things.
pytestmark = pytest.mark.filterwarnings("ignore::evalkit.export.GatewayExportWarning")

CONFIG: dict[str, Any] = {
    "version": 1,
    "targets": {
        "strong": {"model": "anthropic:claude-3-5-sonnet-latest", "context_window": 200000},
        "fast": {"model": "openai:gpt-4o-mini", "api_key_env": "MY_OPENAI_KEY", "timeout_s": 20,
                 "limits": {"rpm": 500}},
        "local": {"model": "ollama:llama3.2", "base_url": "http://gpu-box:11434/v1"},
        "flash": {"model": "gemini:gemini-2.0-flash", "prices": {"input": 0.1, "output": 0.4}},
    },
    "router": {
        "type": "task",
        "routes": {
            "code": {"type": "fallback", "targets": ["strong", "fast"], "retry": {"retries_per_target": 2}},
            "simple_qa": {"type": "balance", "targets": ["fast", "local"], "weights": [3, 1]},
            "math": "flash",
        },
        "default": {"type": "fallback", "targets": ["fast", "vllm:qwen2.5", "azure:my-deployment"]},
    },
}

KEY_LIKE = re.compile(r"(?<![A-Za-z])sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}")


def litellm_config() -> dict[str, Any]:
    return yaml.safe_load(export_config(CONFIG, "litellm"))


def deployments(config: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [d["litellm_params"] for d in config["model_list"] if d["model_name"] == group]


def test_litellm_export_has_a_group_per_target_and_per_task_route_with_fallbacks() -> None:
    config = litellm_config()
    assert deployments(config, "fast") == [{"model": "openai/gpt-4o-mini", "api_key": "os.environ/MY_OPENAI_KEY",
                                            "timeout": 20, "rpm": 500}]
    assert deployments(config, "strong") == [{"model": "anthropic/claude-3-5-sonnet-latest",
                                              "api_key": "os.environ/ANTHROPIC_API_KEY"}]
    code = deployments(config, "task-code")
    assert code == [{**deployments(config, "strong")[0], "tags": ["code"]}]
    settings = config["router_settings"]
    assert {"task-code": ["fast"]} in settings["fallbacks"]
    assert {"default": ["vllm:qwen2.5", "azure:my-deployment"]} in settings["fallbacks"]
    assert settings["num_retries"] == 2 and settings["timeout"] == 60.0
    assert settings["routing_strategy"] == "simple-shuffle"


def test_litellm_export_maps_providers_endpoints_weights_and_model_info() -> None:
    config = litellm_config()
    qa = deployments(config, "task-simple_qa")
    assert [(d["model"], d["weight"], d["tags"]) for d in qa] == [
        ("openai/gpt-4o-mini", 3.0, ["simple_qa"]), ("ollama_chat/llama3.2", 1.0, ["simple_qa"])]
    assert deployments(config, "local")[0] == {"model": "ollama_chat/llama3.2", "api_base": "http://gpu-box:11434"}
    assert deployments(config, "vllm:qwen2.5")[0] == {"model": "hosted_vllm/qwen2.5",
                                                     "api_base": "http://localhost:8000/v1"}
    assert deployments(config, "azure:my-deployment")[0] == {
        "model": "azure/my-deployment", "api_key": "os.environ/AZURE_OPENAI_API_KEY",
        "api_base": "os.environ/AZURE_OPENAI_ENDPOINT", "api_version": "2024-10-21"}
    info = {d["model_name"]: d.get("model_info") for d in config["model_list"]}
    assert info["strong"] == {"max_input_tokens": 200000}
    assert info["flash"] == {"input_cost_per_token": pytest.approx(1e-7), "output_cost_per_token": pytest.approx(4e-7)}
    header = export_config(CONFIG, "litellm").splitlines()[0]
    assert header.startswith("#") and 'model="task-<type>"' in header


def test_portkey_export_is_a_conditional_config_of_nested_fallback_and_loadbalance_targets() -> None:
    config = json.loads(export_config(CONFIG, "portkey"))
    strategy = config["strategy"]
    assert strategy["mode"] == "conditional" and strategy["default"] == "route-default"
    assert strategy["conditions"][0] == {"query": {"metadata.task_type": {"$eq": "code"}}, "then": "route-code"}
    routes = {t["name"]: t for t in config["targets"]}
    assert set(routes) == {"route-code", "route-simple_qa", "route-math", "route-default"}
    code = routes["route-code"]
    assert code["strategy"] == {"mode": "fallback"}
    assert code["targets"][0] == {"provider": "anthropic", "virtual_key": "<ANTHROPIC_API_KEY>",
                                  "override_params": {"model": "claude-3-5-sonnet-latest"},
                                  "retry": {"attempts": 2}}
    assert code["targets"][1]["request_timeout"] == 20000
    mix = routes["route-simple_qa"]
    assert mix["strategy"] == {"mode": "loadbalance"} and [t["weight"] for t in mix["targets"]] == [3.0, 1.0]
    assert mix["targets"][1] == {"provider": "ollama", "override_params": {"model": "llama3.2"},
                                 "custom_host": "http://gpu-box:11434", "weight": 1.0}
    assert routes["route-math"]["provider"] == "google"


def test_portkey_virtual_keys_fill_the_placeholders_by_env_var_or_target() -> None:
    text = export_config(CONFIG, "portkey", virtual_keys={"ANTHROPIC_API_KEY": "anthropic-prod", "fast": "oai-vk"})
    config = json.loads(text)
    code = {t["name"]: t for t in config["targets"]}["route-code"]["targets"]
    assert [t["virtual_key"] for t in code] == ["anthropic-prod", "oai-vk"]


def test_a_config_that_is_not_a_task_router_exports_as_its_root_chain() -> None:
    config = {"version": 1, "router": {"type": "fallback", "targets": ["openai:gpt-4o", "groq:llama-3.3-70b"]}}
    portkey = json.loads(export_config(config, "portkey"))
    assert portkey["strategy"] == {"mode": "fallback"}
    assert [t["provider"] for t in portkey["targets"]] == ["openai", "groq"]
    litellm = yaml.safe_load(export_config(config, "litellm"))
    assert litellm["router_settings"]["fallbacks"] == [{"default": ["groq:llama-3.3-70b"]}]


def test_evalkit_format_is_the_config_itself_and_a_file_keeps_its_comments(tmp_path: Path) -> None:
    assert yaml.safe_load(export_config(CONFIG, "evalkit")) == CONFIG
    path = tmp_path / "routing.yaml"
    path.write_text("# chosen by evalkit recommend\n" + yaml.safe_dump(CONFIG, sort_keys=False))
    assert export_config(path, "evalkit") == path.read_text()
    assert yaml.safe_load(export_config(path, "litellm")) == litellm_config()


def test_keys_are_env_references_only_never_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-live-" + "Q" * 40
    for name in ("MY_OPENAI_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(name, secret)
    for fmt in ("evalkit", "litellm", "portkey"):
        text = export_config(CONFIG, fmt)
        assert secret not in text and not KEY_LIKE.search(text), fmt
    litellm = litellm_config()
    keys = {d["litellm_params"].get("api_key") for d in litellm["model_list"]} - {None}
    assert keys and all(k.startswith("os.environ/") for k in keys)


def test_an_inline_key_or_an_unsupported_node_is_refused() -> None:
    inline = {**CONFIG, "targets": {**CONFIG["targets"], "fast": {"model": "openai:gpt-4o-mini", "api_key": "x"}}}
    with pytest.raises(ConfigError, match=r"targets\.fast\.api_key: keys never go in configs"):
        export_config(inline, "litellm")
    hedge = {"version": 1, "router": {"type": "hedge", "targets": ["openai:gpt-4o"]}}
    with pytest.raises(ConfigError, match="router: a hedge node has no gateway equivalent"):
        export_config(hedge, "portkey")
    with pytest.raises(ConfigError, match="unknown format"):
        export_config(CONFIG, "nginx")


# -- LiteLLM itself accepts the export --------------------------------------------------------------------




@pytest.mark.filterwarnings("ignore::UserWarning:pydantic._internal._generate_schema")
def test_litellm_router_loads_the_export_and_falls_back_on_the_emulator(
        litellm_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.emulator import Emulator

    monkeypatch.setenv("EVALKIT_TEST_EMULATOR_KEY", "emulator-key")
    with Emulator(seed=0, time_scale=0.0) as emu:
        config = {"version": 1, "targets": {
            "openai:sim-small": {"model": "openai:sim-small", "base_url": emu.openai_base_url,
                                 "api_key_env": "EVALKIT_TEST_EMULATOR_KEY"},
            "anthropic:sim-long": {"model": "anthropic:sim-long", "base_url": emu.anthropic_base_url,
                                   "api_key_env": "EVALKIT_TEST_EMULATOR_KEY"}},
            "router": {"type": "task",
                       "routes": {"code": {"type": "fallback", "targets": ["openai:sim-small", "anthropic:sim-long"]}},
                       "default": "anthropic:sim-long"}}
        exported = yaml.safe_load(export_config(config, "litellm"))
        router = litellm_module.Router(model_list=exported["model_list"], **exported["router_settings"])
        emu.script("sim-small", [{"kind": "500", "times": 10}])  # the primary is down: LiteLLM must fall back

        async def ask(group: str) -> str:
            reply = await router.acompletion(model=group, messages=[{"role": "user", "content": "Say hi."}],
                                             max_tokens=20)
            return reply.model

        assert asyncio.run(ask("task-code")).endswith("sim-long")
        assert emu.stats()["models"]["sim-small"]["by_status"] == {"500": 2}  # one try and num_retries=1 retry
        emu.reset()
        assert asyncio.run(ask("task-code")).endswith("sim-small")


# -- one validator: export refuses exactly what Router.from_config refuses -------------------------------------


def _with(path: str, value: Any) -> dict[str, Any]:
    """CONFIG with the value at a dotted path replaced (a deep copy)."""
    config = json.loads(json.dumps(CONFIG))
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return config


LAX_BEFORE = [  # what export accepted (or crashed on) while Router.from_config refused it
    ("version", 2, "version: only version 1 is supported"),
    ("router.routes.code.retry.deadline_s", -1, "router.routes.code.retry.deadline_s: must be > 0"),
    ("router.routes.code.retry.deadlin_s", 5, "router.routes.code.retry.deadlin_s: unknown field"),
    ("router.routes.code.retry.actions", {"timeout": "explode"}, "retry.actions.timeout: unknown value 'explode'"),
    ("router.routes.simple_qa.weights", [3, 0], "router.routes.simple_qa.weights[1]: must be > 0"),
    ("router.routes.simple_qa.weights", ["heavy", 1], "router.routes.simple_qa.weights[0]: expected a number"),
    ("router.routes.simple_qa.weights", [float("nan"), 1], "weights[0]: must be a finite number"),
    ("router.routes.simple_qa.strategy", "psychic", "router.routes.simple_qa.strategy: unknown value"),
    ("router.colour", "blue", "router.colour: unknown field"),
    ("targets.fast.timeout_s", float("inf"), "targets.fast.timeout_s: must be a finite number"),
    ("targets.fast.limits", {"rpm": -5}, "targets.fast.limits.rpm: must be > 0"),
    ("targets.flash.prices", {"input": "free", "output": 0.4}, "targets.flash.prices.input: expected a number"),
]


@pytest.mark.parametrize(("path", "value", "message"), LAX_BEFORE)
def test_export_refuses_what_from_config_refuses(path: str, value: Any, message: str) -> None:
    assert_refused_alike(_with(path, value), message)


def test_export_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(_with("router.routes.simple_qa.weights", [3, 0]), sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        export_config(path, "litellm")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "weights" in text) + 2
    assert caught.value.file == str(path) and caught.value.line == line
    assert caught.value.field == "router.routes.simple_qa.weights[1]"


def test_export_needs_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MY_OPENAI_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert "os.environ/MY_OPENAI_KEY" in export_config(CONFIG, "litellm")


COST_CONFIG: dict[str, Any] = {
    "version": 1,
    "targets": {"cheap": {"model": "openai:gpt-4o-mini"}, "dear": {"model": "openai:gpt-4o"}},
    "router": {"type": "cost", "candidates": [{"target": "cheap", "quality": 0.6}, {"target": "dear", "quality": 0.9}]},
    "budget": {"limit_usd": "25", "max_share_of_remaining": "0.1"},
}


def test_a_budget_is_refused_by_gateway_formats_and_kept_by_evalkits() -> None:
    for fmt in ("litellm", "portkey"):
        with pytest.raises(ConfigError, match="budget: gateways have no equivalent of evalkit's budget ledger"):
            export_config(COST_CONFIG, fmt)
    assert yaml.safe_load(export_config(COST_CONFIG, "evalkit"))["budget"]["max_share_of_remaining"] == "0.1"
    bad_share = {**COST_CONFIG, "budget": {"limit_usd": "25", "max_share_of_remaining": "2"}}
    with pytest.raises(ConfigError, match=r"budget\.max_share_of_remaining: must be in \(0, 1\]"):
        export_config(bad_share, "evalkit")


def test_provider_options_a_gateway_cannot_carry_are_refused() -> None:
    config = _with("targets.fast.options", {"headers": {"OpenAI-Organization": "org-1"}})
    with pytest.raises(ConfigError, match=r"targets\.fast\.options\.headers: gateway exports cannot carry"):
        export_config(config, "litellm")
    assert "headers" in export_config(config, "evalkit")


# -- the task classifier stays behind: the export says so ------------------------------------------------------


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A routing YAML whose task node names a learned classifier trained on the smoke suite, and its report."""
    from evalkit.analysis.classifier_training import examples_from_dataset, train_task_classifier
    from evalkit.datasets import load_dataset

    folder = tmp_path_factory.mktemp("learned")
    examples = examples_from_dataset(load_dataset("smoke"))
    model, report = train_task_classifier(examples.texts, examples.labels, ids=examples.ids)
    model.save(folder / "routing.classifier.json")
    config = json.loads(json.dumps(CONFIG))
    config["router"]["classifier"] = {"file": "routing.classifier.json"}
    path = folder / "routing.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, report


def header_of(text: str) -> str:
    """The leading comment block, joined into one line of prose."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return " ".join(lines)


def test_litellm_header_names_the_learned_classifier_its_accuracy_and_what_the_gateway_does_instead(
        learned: tuple[Path, Any]) -> None:
    # Before: the header only said how to pick a route; the classifier the config names vanished silently.
    path, report = learned
    with pytest.warns(GatewayExportWarning) as caught:
        text = export_config(path, "litellm")
    header = header_of(text)
    assert "The task classifier is not exported" in header and "LiteLLM cannot run it" in header
    assert "learned task classifier routing.classifier.json" in header
    assert f"accuracy {report.accuracy:.1%}, macro accuracy {report.macro_accuracy:.1%}" in header
    assert f"below confidence {report.abstain_below:.2f} it abstains" in header
    assert 'the caller names the task route, model="task-<type>"' in header
    assert [str(w.message) for w in caught] == list(export_with_notes(path, "litellm").notes)
    assert str(caught[0].message) in header
    # The comments change nothing LiteLLM reads.
    assert yaml.safe_load(text) == yaml.safe_load(export_with_notes(CONFIG, "litellm").text)


def test_litellm_header_names_the_keyword_rules_and_a_config_override_of_the_threshold(
        learned: tuple[Path, Any], tmp_path: Path) -> None:
    assert "task type with its keyword rules, and LiteLLM cannot run it" in header_of(
        export_with_notes(CONFIG, "litellm").text)
    path, _ = learned
    config = yaml.safe_load(path.read_text())
    config["router"]["classifier"]["min_confidence"] = 0.9
    moved = tmp_path / "deploy" / "routing.yaml"
    moved.parent.mkdir()
    config["router"]["classifier"]["file"] = str(path.parent / "routing.classifier.json")
    moved.write_text(yaml.safe_dump(config, sort_keys=False))
    header = header_of(export_with_notes(moved, "litellm").text)
    assert "below confidence 0.90 it abstains" in header  # the config's threshold is the one the router uses
    shown = header.split("learned task classifier ")[1].split(" ")[0]
    assert shown == str(path.parent / "routing.classifier.json"), "outside the config's folder: its full path"


def test_portkey_export_adds_no_key_and_the_note_says_what_routes_instead(learned: tuple[Path, Any]) -> None:
    # Portkey's JSON has no comments, and its gateway strips (or, for "options", refuses) top-level keys it does
    # not know: the note travels beside the config, never inside it.
    path, report = learned
    with pytest.warns(GatewayExportWarning) as caught:
        text = export_config(path, "portkey")
    assert set(json.loads(text)) == {"strategy", "targets"}
    assert json.loads(text) == json.loads(export_with_notes(CONFIG, "portkey").text)
    [note] = [str(w.message) for w in caught if "classifier" in str(w.message)]
    assert "Portkey cannot run it" in note and f"accuracy {report.accuracy:.1%}" in note
    assert 'x-portkey-metadata: {"task_type": "<type>"}' in note and "takes route-default" in note


def test_nothing_is_noted_when_no_classifier_is_left_behind() -> None:
    # A chain that opts in to routing around content filters: the one rule a gateway's fallbacks cannot carry
    # (evalkit's default, stop) is not in play, so nothing is left behind (tests/export/test_export_failover.py).
    chain = {"version": 1, "router": {"type": "fallback", "targets": ["openai:gpt-4o", "groq:llama-3.3-70b"],
                                      "retry": {"actions": {"content_filter": "next"}}}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fmt in ("litellm", "portkey"):
            assert export_with_notes(chain, fmt).notes == ()
            export_config(chain, fmt)
        assert export_with_notes(CONFIG, "evalkit").notes == ()  # evalkit's own format keeps the classifier
    assert not [w for w in caught if issubclass(w.category, GatewayExportWarning)]
    assert "not exported" not in export_config(chain, "litellm")


def test_export_refuses_a_broken_classifier_file_as_router_from_config_does(learned: tuple[Path, Any],
                                                                             tmp_path: Path) -> None:
    import shutil

    import evalkit

    path, _ = learned
    for name in ("routing.classifier.json", "routing.classifier.npz"):
        shutil.copy(path.parent / name, tmp_path / name)
    local = "ollama:llama3.2"  # needs no key, so Router.from_config gets as far as the classifier
    (tmp_path / "routing.yaml").write_text(yaml.safe_dump({"version": 1, "router": {
        "type": "task", "classifier": {"file": "routing.classifier.json"}, "routes": {"code": local},
        "default": local}}))
    model = json.loads((tmp_path / "routing.classifier.json").read_text())
    model["format"] = "somebody.else"
    (tmp_path / "routing.classifier.json").write_text(json.dumps(model))
    with pytest.raises(ConfigError) as from_config:
        evalkit.Router.from_config(tmp_path / "routing.yaml")
    for fmt in ("litellm", "portkey"):
        with pytest.raises(ConfigError) as exported:
            export_config(tmp_path / "routing.yaml", fmt)
        assert str(exported.value) == str(from_config.value) and "format" in str(exported.value)


def test_evalkit_export_on_the_command_line_tells_the_user_what_the_gateway_cannot_run(
        learned: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    path, _ = learned
    out = tmp_path / "portkey.json"
    with warnings.catch_warnings(record=True) as caught:  # printed as a note, or shown as a warning
        warnings.simplefilter("always")
        assert main(["export", str(path), "--format", "portkey", "-o", str(out)]) == 0
    said = capsys.readouterr().err + " ".join(str(w.message) for w in caught)
    assert "The task classifier is not exported" in said and "Portkey cannot run it" in said
    assert set(json.loads(out.read_text())) == {"strategy", "targets"}


def test_a_prompt_node_is_refused_by_gateway_formats_and_kept_by_evalkits(tmp_path: Path) -> None:
    # A gateway cannot run the per-prompt router's model either: the node is refused with its path, not dropped.
    (tmp_path / "router.json").write_text("{}")  # parsing checks the file is there; only building reads it
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "router": {
        "type": "task", "default": "openai:gpt-4o",
        "routes": {"code": {"type": "prompt", "model": "router.json",
                            "targets": {"cheap": "openai:gpt-4o-mini", "strong": "openai:gpt-4o"}}}}}))
    for fmt in ("litellm", "portkey"):
        with pytest.raises(ConfigError, match="router.routes.code: a prompt node has no gateway equivalent"):
            export_config(path, fmt)
    assert export_config(path, "evalkit") == path.read_text()
