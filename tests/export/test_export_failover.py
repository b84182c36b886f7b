"""Exports of the streams and failover settings: evalkit's YAML keeps them all; LiteLLM and Portkey carry the
deadlines they have a setting for and name, with YAML paths, each setting they leave behind."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

import evalkit
from evalkit.export import GatewayExportWarning, export_config, export_with_notes
from evalkit.router.config import parse_routing_config

from .refusals import assert_refused_alike

# Gateway exports of CONFIG warn about what they leave behind; the tests that are about those notes check them.
pytestmark = pytest.mark.filterwarnings("ignore::evalkit.export.GatewayExportWarning")

CONFIG: dict[str, Any] = {
    "version": 1,
    "targets": {
        "primary": {"model": "openai:gpt-4o-mini", "timeout_s": 30, "connect_timeout_s": 1, "headers_timeout_s": 3,
                    "ttft_timeout_s": 2.5, "stall_timeout_s": 5, "total_timeout_s": 60, "prefill": False},
        "backup": {"model": "anthropic:claude-3-5-haiku-latest", "ttft_timeout_s": 4, "prefill": True},
        "local": {"model": "ollama:llama3.2", "timeout_s": 20},
    },
    "router": {
        "type": "fallback", "targets": ["primary", "backup", "local"], "mid_stream": "restart",
        "breaker": {"consecutive_failures": 3, "cooldown_s": 30},
    },
}


def notes_of(config: dict[str, Any], fmt: str) -> tuple[str, ...]:
    return export_with_notes(config, fmt).notes


def test_the_evalkit_format_round_trips_every_new_field(tmp_path: Path) -> None:
    config = json.loads(json.dumps(CONFIG))
    config["router"] = {"type": "task", "mid_stream": "fail", "default": CONFIG["router"],
                        "routes": {"code": {"type": "fallback", "targets": ["backup", "local"], "breaker": "off",
                                            "retry": {"actions": {"content_filter": "next"}}},
                                   "chat": {"type": "fallback", "targets": ["local", "primary"], "breaker": False}}}
    text = export_config(config, "evalkit")
    assert yaml.safe_load(text) == config
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    before, after = parse_routing_config(config), parse_routing_config(path)
    for name in CONFIG["targets"]:
        old, new = before.targets[name], after.targets[name]
        assert (new.deadlines, new.prefill, new.timeout_s) == (old.deadlines, old.prefill, old.timeout_s)
    assert after.targets["primary"].deadlines == evalkit.Deadlines(1, 3, 2.5, 5, 60)
    root = after.router
    assert root.mid_stream == "fail" and root.default.mid_stream == "restart"  # type: ignore[union-attr]
    assert root.default.breaker == before.router.default.breaker  # type: ignore[union-attr]
    code, chat = root.routes["code"], root.routes["chat"]  # type: ignore[union-attr]
    assert code.breaker_off and chat.breaker_off  # "off" written as a string (JSON) or YAML's false
    assert code.retry.actions[evalkit.ErrorKind.CONTENT_FILTER].value == "next"
    assert export_config(path, "evalkit") == text  # a file is exported as written


def test_litellm_carries_ttft_as_stream_timeout_and_total_as_timeout() -> None:
    exported = yaml.safe_load(export_config(CONFIG, "litellm"))
    params = {d["model_name"]: d["litellm_params"] for d in exported["model_list"]}
    assert params["primary"]["timeout"] == 60 and params["primary"]["stream_timeout"] == 2.5
    assert params["backup"]["stream_timeout"] == 4 and "timeout" not in params["backup"]
    assert params["local"]["timeout"] == 20 and "stream_timeout" not in params["local"]  # timeout_s, as before


def test_portkey_carries_total_as_request_timeout() -> None:
    exported = json.loads(export_config(CONFIG, "portkey"))
    primary, backup, local = exported["targets"]
    assert primary["request_timeout"] == 60_000 and "request_timeout" not in backup
    assert local["request_timeout"] == 20_000


REPLACED = "targets.primary.timeout_s (total_timeout_s is exported in its place)"


@pytest.mark.parametrize(("fmt", "gateway", "deadlines_left"), [
    ("litellm", "LiteLLM", ["targets.primary.connect_timeout_s", "targets.primary.headers_timeout_s",
                            "targets.primary.stall_timeout_s", REPLACED]),
    ("portkey", "Portkey", ["targets.primary.connect_timeout_s", "targets.primary.headers_timeout_s",
                            "targets.primary.ttft_timeout_s", "targets.primary.stall_timeout_s", REPLACED,
                            "targets.backup.ttft_timeout_s"]),
])
def test_each_setting_a_gateway_cannot_express_is_named_with_its_path(fmt: str, gateway: str,
                                                                       deadlines_left: list[str]) -> None:
    deadlines, prefill, mid_stream, breaker, content_filter = notes_of(CONFIG, fmt)
    named = deadlines.split("Not exported: ")[1].split(f". {gateway}")[0].split(", ")
    assert named == deadlines_left
    assert "targets.primary.prefill (false), targets.backup.prefill (true)" in prefill
    assert "router.mid_stream (restart)" in mid_stream and f"{gateway}'s own behaviour applies" in mid_stream
    assert "router.breaker (settings)" in breaker
    assert "content_filter: stop, the default, at router;" in content_filter
    with pytest.warns(GatewayExportWarning) as caught:
        export_config(CONFIG, fmt)
    assert [str(w.message) for w in caught] == [deadlines, prefill, mid_stream, breaker, content_filter]


def test_the_exported_files_gain_no_unknown_keys() -> None:
    # The notes travel beside the file; the files keep only keys each gateway knows.
    litellm = yaml.safe_load(export_config(CONFIG, "litellm"))
    portkey = json.loads(export_config(CONFIG, "portkey"))
    keys = {k for d in litellm["model_list"] for k in d["litellm_params"]}
    assert keys <= {"model", "api_key", "api_base", "timeout", "stream_timeout", "rpm", "tpm", "weight", "tags"}
    assert {k for t in portkey["targets"] for k in t} <= {"provider", "virtual_key", "override_params",
                                                          "custom_host", "retry", "request_timeout"}
    assert set(portkey) == {"strategy", "targets"}


def test_a_chain_that_opts_in_to_routing_around_content_filters_gets_no_content_filter_note() -> None:
    opted_in = json.loads(json.dumps(CONFIG))
    opted_in["router"]["retry"] = {"actions": {"content_filter": "next"}}
    assert not any("Content-filter" in n for n in notes_of(opted_in, "litellm"))
    single = {"version": 1, "router": {"type": "fallback", "targets": ["openai:gpt-4o"]}}
    assert notes_of(single, "portkey") == ()  # one target: there is nothing to route around to


def test_breaker_off_and_mid_stream_in_nested_nodes_are_named() -> None:
    config = {"version": 1, "router": {
        "type": "task", "default": "openai:gpt-4o",
        "routes": {"code": {"type": "fallback", "breaker": False, "targets": [
            {"type": "balance", "mid_stream": "fail", "targets": ["openai:gpt-4o", "groq:llama-3.3-70b"]},
            "anthropic:claude-3-5-haiku-latest"]}}}}
    notes = " ".join(notes_of(config, "litellm"))
    assert "router.routes.code.targets[0].mid_stream (fail)" in notes
    assert "router.routes.code.breaker (off)" in notes and "allowed_fails" in notes


@pytest.mark.parametrize("fmt", ["litellm", "portkey"])
def test_a_balance_nodes_retry_rules_are_named_as_not_exported(fmt: str) -> None:
    config = {"version": 1, "router": {"type": "balance", "targets": ["openai:gpt-4o", "groq:llama-3.3-70b"],
                                       "retry": {"actions": {"server": "stop"}}}}
    assert any("Not exported: router.retry.actions" in n for n in notes_of(config, fmt))
    del config["router"]["retry"]
    assert not any("retry.actions" in n for n in notes_of(config, fmt))


@pytest.mark.parametrize(("path", "value", "message"), [
    (("targets", "primary", "ttft_timeout_s"), 0, "targets.primary.ttft_timeout_s: must be > 0"),
    (("targets", "primary", "stall_timeout_s"), 120,
     "targets.primary.stall_timeout_s: 120s is longer than total_timeout_s (60s)"),
    (("targets", "backup", "prefill"), "yes", "targets.backup.prefill: expected true or false"),
    (("router", "mid_stream"), "resume", "router.mid_stream: unknown value 'resume'"),
    (("router", "breaker"), None, "router.breaker: an empty breaker: changes nothing"),
])
def test_exports_refuse_the_bad_values_router_from_config_refuses(path: tuple[str, ...], value: Any,
                                                                  message: str) -> None:
    bad = json.loads(json.dumps(CONFIG))
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert_refused_alike(bad, message)


def test_evalkit_export_on_the_command_line_prints_what_the_gateway_leaves_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    source = tmp_path / "routing.yaml"
    source.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    out = tmp_path / "litellm.yaml"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", str(source), "--format", "litellm", "-o", str(out)]) == 0
    said = capsys.readouterr().err + " ".join(str(w.message) for w in caught)
    assert "targets.primary.stall_timeout_s" in said and "router.mid_stream (restart)" in said
    header = [line for line in out.read_text().splitlines() if line.startswith("#")]
    assert any("stall_timeout_s" in line for line in header)  # the LiteLLM file's header says it too
