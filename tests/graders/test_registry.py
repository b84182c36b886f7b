"""grader_for, the Grade type, the Grader protocol and the import cost of evalkit.graders."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evalkit.datasets import GRADER_TYPES
from evalkit.errors import ConfigError
from evalkit.graders import GRADER_CLASSES, Grade, Grader, grader_for

from .support import default_suite


def test_every_dataset_grader_type_has_a_grader_class():
    assert set(GRADER_CLASSES) == set(GRADER_TYPES)
    for name, cls in GRADER_CLASSES.items():
        assert cls.name == name and cls.__doc__


def test_every_bundled_item_gets_a_grader_that_satisfies_the_protocol():
    judge = type("Judge", (), {"name": "j", "complete": lambda self, request: None})()
    for item in default_suite().items:
        grader = grader_for(item.grader, judge=judge)
        assert isinstance(grader, Grader)
        assert grader.name == item.grader_type


def test_a_bare_type_name_is_a_spec():
    assert grader_for("numeric").name == "numeric"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "nope"}, "unknown grader type 'nope'"),
        ({"type": "label"}, "grader.labels: is required"),
        ({"type": "regex", "pattern": "("}, "grader.pattern: does not compile"),
        ({"type": "code_exec", "tests": "x = 1", "entry_point": "f"}, "defines check"),
        ({"type": "judge", "mode": "pairwise"}, "grader.mode"),
        ({"type": "numeric", "tolerance": -1}, "grader.tolerance"),
        (42, "must be a grader type name"),
    ],
)
def test_bad_specs_are_config_errors_naming_the_field(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        grader_for(spec)


def test_grade_scores_must_lie_in_the_unit_interval():
    assert Grade(1, True, "ok").score == 1.0
    for bad in (1.5, -0.1, float("nan"), "1"):
        with pytest.raises(ValueError):
            Grade(bad, False, "bad")


def test_grade_is_frozen_and_reasons_are_one_short_line():
    grade = Grade.wrong("line one\nline two " + "x" * 500)
    assert "\n" not in grade.reason and len(grade.reason) <= 200
    with pytest.raises(AttributeError):
        grade.score = 1.0  # type: ignore[misc]


def test_importing_the_graders_loads_nothing_heavy():
    code = "import evalkit.graders, sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & {"jsonschema", "httpx", "ctypes", "numpy", "tiktoken", "yaml"}
