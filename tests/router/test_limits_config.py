"""A routing config's ``limits:`` block: adaptive in-flight limits parse, and bad settings name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import evalkit
from evalkit.router import FallbackChain, LimitedTarget, Router

CONFIG = """\
version: 1
targets:
  fast:
    model: openai:gpt-4o-mini
    api_key_env: EVALKIT_TEST_KEY
    limits: {LIMITS}
router: {type: fallback, targets: [fast]}
"""


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-test-limits-config")


def write(tmp_path: Path, limits: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(textwrap.dedent(CONFIG).replace("{LIMITS}", limits))
    return path


def leaf(router: object) -> LimitedTarget:
    assert isinstance(router, FallbackChain)
    target = router.targets[0]
    assert isinstance(target, LimitedTarget)
    return target


def test_an_adaptive_limit_from_yaml_starts_at_its_ceiling(tmp_path: Path) -> None:
    limited = leaf(Router.from_config(write(tmp_path, "{max_in_flight: 32, adaptive: true}")))
    assert limited.limits.adaptive and limited.limits.min_in_flight == 1
    assert limited.allowed_in_flight == 32 and limited.decreases == 0
    limited = leaf(Router.from_config(write(tmp_path, "{max_in_flight: 32, adaptive: true, min_in_flight: 4, "
                                                      "on_saturated: wait, max_wait_s: 60}")))
    assert (limited.limits.min_in_flight, limited.limits.on_saturated, limited.limits.max_wait_s) == (4, "wait", 60)
    fixed = leaf(Router.from_config(write(tmp_path, "{max_in_flight: 8, adaptive: false}")))
    assert not fixed.limits.adaptive and fixed.allowed_in_flight == 8


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("{adaptive: true, rpm: 500}", "routing.yaml:6: targets.fast.limits.adaptive: needs max_in_flight"),
        ('{max_in_flight: 8, adaptive: "yes"}', "routing.yaml:6: targets.fast.limits.adaptive: expected true or false"),
        ("{max_in_flight: 8, min_in_flight: 2}",
         "routing.yaml:6: targets.fast.limits.min_in_flight: applies only with adaptive: true"),
        ("{max_in_flight: 8, adaptive: true, min_in_flight: 9}",
         "routing.yaml:6: targets.fast.limits.min_in_flight: 9 is above max_in_flight (8)"),
        ("{max_in_flight: 8, adaptive: true, min_in_flight: 0}",
         "routing.yaml:6: targets.fast.limits.min_in_flight: must be >= 1"),
        ("{max_in_flight: 8, adaptive: true, min_in_flight: 1.5}",
         "routing.yaml:6: targets.fast.limits.min_in_flight: expected a whole number"),
        ("{max_in_flight: 8, adaptve: true}", "routing.yaml:6: targets.fast.limits.adaptve: unknown field"),
    ],
)
def test_bad_adaptive_settings_name_file_line_and_field(tmp_path: Path, limits: str, message: str) -> None:
    with pytest.raises(evalkit.ConfigError) as caught:
        Router.from_config(write(tmp_path, limits))
    assert message in str(caught.value)
