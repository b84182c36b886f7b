"""Validation problems and the one error that reports all of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["DatasetError", "Problem", "ProblemLog", "json_type_name"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a dataset file, located as precisely as possible.

    ``line`` is the line in the file for JSONL and CSV, the 1-based row number
    for Parquet, and ``None`` for problems with the file as a whole.
    """

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        # Same shape as ConfigError's own prefix, so CLI output looks alike.
        return str(ConfigError(self.message, file=self.file, line=self.line, field=self.field))


class DatasetError(ConfigError):
    """A dataset file failed validation; ``problems`` lists every problem found.

    Its message has one ``file:line: field: problem`` line per problem, so the
    user can fix the whole file in one pass instead of one error per run.
    """

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(problems)
        first = self.problems[0]
        if len(self.problems) == 1:
            super().__init__(first.message, file=first.file, line=first.line, field=first.field)
            return
        count = f"{len(self.problems)} problems in dataset:\n"
        super().__init__(count + "\n".join(str(p) for p in self.problems), file=first.file)

    def __reduce__(self) -> tuple[type[DatasetError], tuple[tuple[Problem, ...]]]:
        # Rebuild from the problems (not the message) when pickled, e.g. by a process pool.
        return (type(self), (self.problems,))


class ProblemLog:
    """Collects problems for one file; rows report through :meth:`add`."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line: int | None, field: str | None, message: str) -> None:
        """Record one problem."""
        self.problems.append(Problem(self.file, line, field, message))

    def raise_if_any(self) -> None:
        """Raise a single :class:`DatasetError` listing everything recorded."""
        if self.problems:
            # File-level problems first, then by line; the sort is stable within a line.
            ordered = sorted(self.problems, key=lambda p: -1 if p.line is None else p.line)
            raise DatasetError(ordered)


def json_type_name(value: Any) -> str:
    """The JSON name of a Python value's type, for messages users understand."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
