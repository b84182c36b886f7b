"""The built-in fleet and fleet-file validation."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from evalkit.emulator.fleet import TASK_TYPES, WIRES, default_fleet, load_fleet, parse_fleet_text
from evalkit.errors import ConfigError

MINIMAL_MODEL = """
  - name: m
    wires: [openai]
    price: {input: 1, output: 2}
    context_window: 1000
    latency: {ttft_ms: 100, tokens_per_s: 50}
    skills: {default: 0.5}
"""


def test_default_fleet_serves_every_wire_with_at_least_two_models() -> None:
    fleet = default_fleet()
    for wire in WIRES:
        assert len(fleet.serving(wire)) >= 2, wire


def test_default_fleet_uses_neutral_names_and_full_skills() -> None:
    for model in default_fleet():
        assert re.fullmatch(r"sim-[a-z]+", model.name)
        assert set(TASK_TYPES) | {"default"} <= set(model.skills)
        assert all(0.0 <= p <= 1.0 for p in model.skills.values())


def test_prices_are_decimals_per_million_tokens() -> None:
    price = default_fleet().model("sim-large").price
    assert (price.input, price.cached_input, price.output) == (Decimal(10), Decimal(10), Decimal(30))
    assert price.cost(1_000_000, 1_000_000) == Decimal(40)
    small = default_fleet().model("sim-small").price
    assert (
        small.cost(2_000, 0, cached_input_tokens=1_000)
        == (Decimal("0.25") * 1000 + Decimal("0.03") * 1000) / 10**6
    )
    prices = small.as_prices()
    assert prices.cached_input == Decimal("0.03") and prices.output == Decimal("1.25")


def test_unknown_model_is_a_key_error_naming_the_fleet() -> None:
    with pytest.raises(KeyError, match="sim-large"):
        default_fleet().model("gpt-4o")


def test_defaults_merge_into_models_one_level_deep() -> None:
    fleet = parse_fleet_text(
        "defaults:\n  faults: {rate_limit: 0.1, retry_after_s: 4}\nmodels:"
        + MINIMAL_MODEL
        + "    faults: {server: 0.2}\n"
    )
    plan = fleet.model("m").faults
    assert plan.rates == {"429": 0.1, "500": 0.2}
    assert plan.retry_after_s == 4


def test_toml_fleet(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[[models]]\nname = "t"\nwires = ["gemini"]\ncontext_window = 2048\n'
        "price = {input = 0.5, output = 1.5}\nskills = {math = 0.9}\n"
        "latency = {ttft_ms = 10, tokens_per_s = 100}\n",
        encoding="utf-8",
    )
    model = load_fleet(path).model("t")
    assert model.wires == ("gemini",)
    assert model.skill("math") == 0.9 and model.skill("code") == 0.9  # default = mean of listed skills
    assert model.price.cached_input == model.price.input


def test_script_in_fleet_file_expands_times() -> None:
    fleet = parse_fleet_text("models:" + MINIMAL_MODEL + "    script: [{kind: rate_limit, times: 2}, ok]\n")
    assert [s.kind for s in fleet.model("m").faults.script] == ["429", "429", None]


@pytest.mark.parametrize(
    ("edit", "field", "line"),
    [
        (("input: 1", "input: -1"), "models[0].price.input", 4),
        (("input: 1", "input: cheap"), "models[0].price.input", 4),
        (("[openai]", "[openai, azure]"), "models[0].wires[1]", 3),
        (("default: 0.5", "default: 1.5"), "models[0].skills.default", 7),
        (("default: 0.5", "poetry: 0.5"), "models[0].skills.poetry", 7),
        (("context_window: 1000", "context_window: 0"), "models[0].context_window", 5),
        (("context_window: 1000", "context_windw: 1000"), "models[0].context_windw", 5),
        (
            ("tokens_per_s: 50", "tokens_per_s: {median: 50, spread: -1}"),
            "models[0].latency.tokens_per_s.spread",
            6,
        ),
        (
            ("skills: {default: 0.5}", "skills: {default: 0.5}\n    faults: {rate_limit: 0.8, server: 0.4}"),
            "models[0].faults",
            8,
        ),
        (
            ("skills: {default: 0.5}", "skills: {default: 0.5}\n    faults: {meltdown: 0.1}"),
            "models[0].faults.meltdown",
            8,
        ),
        (("skills: {default: 0.5}", "skills: {default: 0.5}\n    script: [teapot]"), "models[0].script", 8),
    ],
)
def test_bad_fleet_files_name_file_line_and_field(
    tmp_path: Path, edit: tuple[str, str], field: str, line: int
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(("models:" + MINIMAL_MODEL).replace(*edit), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_fleet(path)
    assert info.value.field == field
    assert info.value.file == str(path)
    assert info.value.line == line
    assert str(path) in str(info.value) and field in str(info.value)


def test_missing_required_key_and_duplicate_names() -> None:
    with pytest.raises(ConfigError) as info:
        parse_fleet_text("models:" + MINIMAL_MODEL.replace("    context_window: 1000\n", ""))
    assert info.value.field == "models[0].context_window"
    with pytest.raises(ConfigError) as info:
        parse_fleet_text("models:" + MINIMAL_MODEL + MINIMAL_MODEL)
    assert info.value.field == "models[1].name"


def test_syntax_errors_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        parse_fleet_text("models: [\n", source="x.yaml")
    assert info.value.file == "x.yaml" and info.value.line is not None
    with pytest.raises(ConfigError, match="cannot read fleet file"):
        load_fleet(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError) as info:
        parse_fleet_text("version: 2\nmodels:" + MINIMAL_MODEL)
    assert info.value.field == "version"
