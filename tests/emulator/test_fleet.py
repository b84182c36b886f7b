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


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("input: 1", "input: .nan"), "models[0].price.input", "must be a finite number"),
        (("output: 2", "output: .inf"), "models[0].price.output", "must be a finite number"),
        (("output: 2", "output: 1.0e+999"), "models[0].price.output", "must be a finite number"),
        (("output: 2", "output: 1e999"), "models[0].price.output", "below 10^16"),
        (("output: 2", 'output: "NaN"'), "models[0].price.output", "below 10^16"),
        (("ttft_ms: 100", "ttft_ms: .nan"), "models[0].latency.ttft_ms.median", "must be a finite number"),
        (("tokens_per_s: 50", "tokens_per_s: .inf"), "models[0].latency.tokens_per_s.median", "must be a finite"),
        (("default: 0.5", "default: .nan"), "models[0].skills.default", "must be a finite number"),
        (("skills: {default: 0.5}", "skills: {default: 0.5}\n    faults: {rate_limit: .nan}"),
         "models[0].faults.rate_limit", "must be a finite number"),
        (("skills: {default: 0.5}", "skills: {default: 0.5}\n    faults: {retry_after_s: .inf}"),
         "models[0].faults.retry_after_s", "must be a finite number"),
        (("skills: {default: 0.5}", "skills: {default: 0.5}\n    script: [{kind: '429', retry_after: .inf}]"),
         "models[0].script[0].retry_after", "must be a finite number"),
        (("context_window: 1000", "context_window: " + "9" * 400), "models[0].context_window", "an integer of 400"),
    ],
)
def test_every_fleet_number_is_finite_and_bounded(tmp_path: Path, edit: tuple[str, str], field: str,
                                                  message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(("models:" + MINIMAL_MODEL).replace(*edit), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_fleet(path)
    assert info.value.field == field and info.value.file == str(path) and info.value.line is not None
    assert message in str(info.value)


def test_hostile_fleet_files_are_config_errors(tmp_path: Path) -> None:
    cases = {
        "recursive.yaml": ("models: &m [*m]\n", "recursive alias"),
        "deep.yaml": ("models: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than"),
        "latin1.yaml": ("models:\n  - name: caf\xe9\n", "not valid UTF-8"),
        "deep.toml": ("models = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        "huge.toml": ("version = " + "1" * 5000 + "\n", "not valid TOML: Exceeds the limit"),
        "latin1.toml": ('version = "caf\xe9"\n', "not valid UTF-8"),
        "nan.toml": ("[[models]]\nname = 't'\nwires = ['openai']\ncontext_window = 100\nprice = {input = nan, "
                     "output = 1}\nskills = {math = 0.9}\nlatency = {ttft_ms = 10, tokens_per_s = 100}\n",
                     "models[0].price.input: must be a finite number"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        with pytest.raises(ConfigError) as info:
            load_fleet(path)
        assert message in str(info.value) and str(path) in str(info.value), name
        assert "use sys.set_int_max_str_digits" not in str(info.value)


def test_a_script_step_repeated_a_billion_times_is_refused_not_expanded(tmp_path: Path) -> None:
    # [step] * 10**9 is 8 GB of pointers: run under a memory cap so a regression fails instead of swapping.
    from tests.bounded import run_bounded

    path = tmp_path / "fleet.yaml"
    path.write_text("models:" + MINIMAL_MODEL + "    script: [{kind: '429', times: 1000000000}]\n", encoding="utf-8")
    outcome = run_bounded(f"""
        from evalkit.emulator.fleet import load_fleet
        from evalkit.errors import ConfigError
        try:
            load_fleet({str(path)!r})
        except ConfigError as exc:
            print("refused:", exc)
        """, memory_mb=1024, timeout_s=60)
    assert not outcome.timed_out and outcome.returncode == 0, outcome.stderr[-2000:]
    assert f"{path}:8: models[0].script[0].times: must be between 0 and 10000" in outcome.stdout
