"""``grader_for``: the grader a dataset item's spec names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ._base import Grader
from ._classify import LabelGrader, SlotF1Grader
from ._code_exec import CodeExecGrader
from ._json import JSONGrader, JSONSchemaGrader
from ._judge import JudgeGrader
from ._match import (
    AliasGrader,
    ExactGrader,
    MCQGrader,
    NormalizedGrader,
    NumericGrader,
    RegexGrader,
)

__all__ = ["GRADER_CLASSES", "grader_for"]

GRADER_CLASSES: Mapping[str, type] = {
    cls.name: cls
    for cls in (
        ExactGrader,
        NormalizedGrader,
        AliasGrader,
        NumericGrader,
        MCQGrader,
        LabelGrader,
        SlotF1Grader,
        RegexGrader,
        JSONGrader,
        JSONSchemaGrader,
        CodeExecGrader,
        JudgeGrader,
    )
}


def grader_for(spec: Mapping[str, Any] | str, *, judge: Any = None, unsafe_code_exec: bool = False) -> Grader:
    """The grader for a spec such as ``item.grader`` (``{"type": "numeric"}``, or just ``"numeric"``).

    The spec is checked the way the dataset loader checks it; a bad spec is a
    :class:`~evalkit.ConfigError` naming the field. ``judge`` (a provider or a
    router) is required for ``judge`` specs and ignored by the others.
    ``unsafe_code_exec`` lets ``code_exec`` graders run model-written code
    without isolation where no sandbox works (see :class:`CodeExecGrader`);
    without it they raise :class:`~evalkit.graders.SandboxUnavailable` there.
    """
    from ..datasets import parse_grader  # the loader's checks are the one definition

    checked, issues = parse_grader(spec)
    if checked is None:
        raise ConfigError("; ".join(f"{field}: {message}" for field, message in issues))
    build: Callable[..., Grader] = GRADER_CLASSES[checked["type"]].from_spec
    if checked["type"] == "judge":
        return build(checked, judge=judge)
    if checked["type"] == "code_exec":
        return build(checked, unsafe=unsafe_code_exec)
    return build(checked)
