"""Grading a cell's answer: one grader per distinct spec; a grading failure is a reason, not a crash."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ProviderError
from ._rows import clipped

if TYPE_CHECKING:
    from ..datasets import Item
    from ..graders import Grader
    from ..providers import Provider

__all__ = ["JUDGE_REFUSED", "NO_JUDGE", "UNGRADED", "GraderCache", "needs_judge"]



def _spec_key(spec: Mapping[str, Any]) -> tuple[tuple[str, Any], ...] | str:
    """A hashable key for a grader spec; cheap for flat specs, JSON for nested ones (labels, schemas)."""
    try:
        key = tuple(sorted(spec.items()))
        hash(key)  # a list or dict value (labels, a schema) makes it unhashable
        return key
    except TypeError:
        return json.dumps(spec, sort_keys=True, default=str)


UNGRADED = "ungraded: "
"""How ``grade_reason`` starts when an answer could not be graded here (no sandbox, no judge)."""

NO_JUDGE = f"{UNGRADED}no judge (--no-judge)"
"""The ``grade_reason`` of a judge-graded answer in a run started with ``--no-judge``."""

JUDGE_REFUSED = "judge failed: budget_exceeded"
"""The ``grade_reason`` when the spend cap left nothing for the judge: the run stops asking new cells."""


def needs_judge(item: Item) -> bool:
    """Whether ``item`` is graded by an LLM judge."""
    grader = item.grader
    return (grader.get("type") if isinstance(grader, Mapping) else grader) == "judge"


class GraderCache:
    """One grader per distinct spec; grading failures become a reason, not a crash.

    ``no_judge``: judge-graded answers are left ungraded (:data:`NO_JUDGE`)
    instead of being sent to a judge.
    """

    def __init__(self, judge: Provider | None, *, unsafe_code_exec: bool = False, no_judge: bool = False) -> None:
        self.judge = judge
        self.unsafe_code_exec = unsafe_code_exec
        self.no_judge = no_judge
        self._graders: dict[tuple[tuple[str, Any], ...] | str, Grader] = {}

    async def grade(self, item: Item, output: str) -> dict[str, Any]:
        """The grade columns of ``item``'s answer ``output``: score, passed, grade_reason, judge_cost_usd."""
        from ..graders import SandboxUnavailable, grader_for

        ungraded = {"score": None, "passed": None, "judge_cost_usd": None}
        if self.no_judge and needs_judge(item):
            return {**ungraded, "grade_reason": NO_JUDGE}
        try:
            key = _spec_key(item.grader)
            grader = self._graders.get(key)
            if grader is None:
                grader = self._graders[key] = grader_for(item.grader, judge=self.judge,
                                                         unsafe_code_exec=self.unsafe_code_exec)
            grade = await grader.grade(item, output)
        except ProviderError as exc:
            return {**ungraded, "grade_reason": f"judge failed: {exc.kind.value}"}
        except SandboxUnavailable as exc:  # no isolation here and no permission to run without: not a verdict
            return {**ungraded, "grade_reason": clipped(f"{UNGRADED}{exc}", 300)}
        except Exception as exc:  # noqa: BLE001 - a grader bug must not lose the answer
            return {**ungraded, "grade_reason": clipped(f"grader error: {type(exc).__name__}: {exc}", 300)}
        details = grade.details or {}
        return {"score": float(grade.score), "passed": bool(grade.passed),
                "grade_reason": clipped(grade.reason, 300), "judge_cost_usd": details.get("judge_cost_usd")}


_GraderCache = GraderCache  # the name regrade imports
