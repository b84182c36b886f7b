"""Layering: packages import each other's public names only, ``report/`` never imports a CLI, one import style.

Every ``import`` statement under ``evalkit/`` is read from the source (module level, inside functions, under
``if TYPE_CHECKING:``), resolved to an absolute module name, and checked against three rules:

* **private** — a module of package A imports from another package B only B's public surface:
  ``from ..B import name`` or ``from ..B.module import name``, never a module or a name with a leading
  underscore (``from ..B._retry import X``, ``from ..B.module import _name``, ``from ..B import _module``).
  Same-package private imports are fine. The top-level private helpers (``evalkit/_json.py``, ``_secret.py``,
  ``_yaml.py``, ...) are shared infrastructure any package may import. The top-level modules
  (``evalkit/cli.py``, ``tokens.py``, ``errors.py``, ...) together form the root package.
* **cli** — no module under ``evalkit/report/`` imports a CLI module (``evalkit.cli`` or ``evalkit.*.cli``):
  the report is a library the CLIs call, not the other way round.
* **style** — no absolute ``from evalkit... import`` / ``import evalkit...`` inside ``evalkit/``: relative
  imports only.

Each rule is also run on planted snippets, so a guard that stopped finding anything would fail here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "evalkit"
ROOT = "evalkit"


@dataclass(frozen=True)
class Violation:
    """One import that breaks a layering rule, located by file and line."""

    rule: str
    file: str
    line: int
    statement: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.statement}  ({self.detail})"


def module_name(path: Path) -> str:
    """``evalkit/router/_retry.py`` -> ``evalkit.router._retry``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(parts: list[str]) -> bool:
    return PACKAGE_DIR.joinpath(*parts[1:]).is_dir()


def _unit(parts: list[str]) -> str:
    """The package a module belongs to for this rule: the first level under ``evalkit``; top-level modules -> root."""
    if len(parts) >= 3 or (len(parts) == 2 and _is_package(parts)):
        return parts[1]
    return ROOT


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_helper(parts: list[str]) -> bool:
    """A top-level private helper module (``evalkit._json``), open to every package."""
    return len(parts) == 2 and _private(parts[1]) and PACKAGE_DIR.joinpath(parts[1] + ".py").is_file()


def _package_of(module: str) -> list[str]:
    parts = module.split(".")
    return parts if PACKAGE_DIR.joinpath(*parts[1:], "__init__.py").is_file() else parts[:-1]


def _base(module: str, node: ast.ImportFrom) -> list[str]:
    """The package a relative import climbs to before descending into ``node.module``."""
    package = _package_of(module)
    return package[: len(package) - (node.level - 1)]


def _resolve(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``ImportFrom`` reads from, as seen from ``module``; ``None`` outside evalkit."""
    if node.level == 0:
        return node.module if node.module and node.module.split(".")[0] == ROOT else None
    base = _base(module, node)
    if not base:
        return None  # beyond the top of evalkit: Python refuses it anyway
    return ".".join(base + (node.module.split(".") if node.module else []))


def _climbs_back_in(module: str, node: ast.ImportFrom) -> bool:
    """``from ..runner._cells import X`` inside ``evalkit/runner/``: out of the package and back in; ``._cells``."""
    package, base = _package_of(module), _base(module, node)
    if node.level == 0 or not base or len(base) >= len(package):
        return False
    first = node.module.split(".")[0] if node.module else None
    entered = [first] if first else [alias.name for alias in node.names]
    return package[len(base)] in entered


def _private_target(importer: list[str], target: list[str]) -> str | None:
    """Why importing module ``target`` from ``importer`` crosses into another package's private part, if it does."""
    if target[0] != ROOT or _unit(target) == _unit(importer) or _is_helper(target):
        return None
    hidden = [part for part in target[1:] if _private(part)]
    return f"private module {'.'.join(target)} of another package" if hidden else None


def _private_name(importer: list[str], target: list[str], name: str) -> str | None:
    """Why ``from target import name`` reaches into another package's private names, if it does."""
    if not _private(name):
        return None
    if _is_helper(target + [name]):
        return None  # ``from .. import _json``: the top-level helper module itself
    if _unit(target) == _unit(importer):
        return None
    return f"private name {name} of {'.'.join(target)}"


def _is_cli(target: list[str]) -> bool:
    return target[0] == ROOT and target[-1] == "cli"


def _cli_name(target: list[str], name: str) -> bool:
    """``from ..runner import cli``: the name is a CLI module."""
    return name == "cli" and PACKAGE_DIR.joinpath(*target[1:], "cli.py").is_file()


def _is_module(parts: list[str]) -> bool:
    """``evalkit.tokens``, ``evalkit.router``: a module or a package of evalkit (not a name inside one)."""
    path = PACKAGE_DIR.joinpath(*parts[1:])
    return path.is_dir() or path.with_suffix(".py").is_file()


def _module_bindings(module: str, tree: ast.AST) -> dict[str, list[str]]:
    """Local names bound to an evalkit module by an import (``from .. import tokens``, ``import evalkit.x as y``)."""
    bound: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update({a.asname: a.name.split(".") for a in node.names
                          if a.asname and a.name.split(".")[0] == ROOT})
        elif isinstance(node, ast.ImportFrom) and (resolved := _resolve(module, node)) is not None:
            for alias in node.names:
                if _is_module(submodule := resolved.split(".") + [alias.name]):
                    bound[alias.asname or alias.name] = submodule
    return bound


def _private_attributes(module: str, tree: ast.AST) -> list[tuple[ast.Attribute, str]]:
    """``tokens._encoding_for`` after ``from .. import tokens``: the same private reach, past the import check."""
    importer = module.split(".")
    bound = _module_bindings(module, tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and (why := _private_name(importer, bound[node.value.id], node.attr)) is not None):
            found.append((node, why))
    return found


def check_source(source: str, module: str, file: str) -> list[Violation]:
    """Every layering violation in one module's source, in line order."""
    tree = ast.parse(source, filename=file)
    importer = module.split(".")
    in_report = len(importer) >= 2 and importer[1] == "report"
    found: list[Violation] = []

    def add(rule: str, node: ast.stmt | ast.expr, detail: str) -> None:
        found.append(Violation(rule, file, node.lineno, ast.unparse(node), detail))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name.split(".")
                if target[0] != ROOT:
                    continue
                add("style", node, "absolute import inside evalkit: use a relative one")
                if (why := _private_target(importer, target)) is not None:
                    add("private", node, why)
                if in_report and _is_cli(target):
                    add("cli", node, "report/ imports a CLI module")
        elif isinstance(node, ast.ImportFrom):
            resolved = _resolve(module, node)
            if resolved is None:
                continue
            target = resolved.split(".")
            if node.level == 0:
                add("style", node, "absolute import inside evalkit: use a relative one")
            elif _climbs_back_in(module, node):
                add("style", node, "leaves its own package and comes back: import from . instead")
            if (why := _private_target(importer, target)) is not None:
                add("private", node, why)
            else:
                for alias in node.names:
                    if (why := _private_name(importer, target, alias.name)) is not None:
                        add("private", node, why)
            if in_report and (_is_cli(target) or any(_cli_name(target, a.name) for a in node.names)):
                add("cli", node, "report/ imports a CLI module")
    for attribute, why in _private_attributes(module, tree):
        add("private", attribute, why)
    return sorted(found, key=lambda v: (v.line, v.rule))


def package_modules() -> list[Path]:
    """Every Python file of the evalkit package, subpackages and lazily imported modules included."""
    return sorted(PACKAGE_DIR.rglob("*.py"))


def package_violations() -> list[Violation]:
    """Every violation in every module of the evalkit package."""
    found: list[Violation] = []
    for path in package_modules():
        rel = path.relative_to(PACKAGE_DIR.parent).as_posix()
        found += check_source(path.read_text(encoding="utf-8"), module_name(path), rel)
    return found


def _listing(found: list[Violation]) -> str:
    return "\n".join(str(v) for v in found)


def test_the_walk_reads_the_whole_package() -> None:
    # A guard that read no file would pass for ever: pin that it reads every layer it speaks about.
    names = {module_name(path) for path in package_modules()}
    assert {"evalkit", "evalkit.cli", "evalkit._json", "evalkit.router", "evalkit.router._retry",
            "evalkit.report.sections", "evalkit.analysis.cli", "evalkit.emulator.answers"} <= names
    assert len(names) > 150


@pytest.mark.parametrize("rule", ["private", "cli", "style"])
def test_evalkit_keeps_its_layers(rule: str) -> None:
    found = [v for v in package_violations() if v.rule == rule]
    assert not found, f"{len(found)} import(s) break the {rule!r} rule:\n{_listing(found)}"


# Planted examples: (module the snippet lives in, source, the rules it must break). An empty tuple means the
# snippet is allowed and must raise nothing.
PLANTED = {
    "relative private module of another package": (
        "evalkit.export._plan", "from ..router._retry import RetryPolicy\n", ("private",)),
    "absolute private module of another package": (
        "evalkit.graders._registry", "from evalkit.datasets._graders import parse_grader\n", ("private", "style")),
    "private name from another package's public module": (
        "evalkit.export._plan", "from ..router.config import _build\n", ("private",)),
    "private module imported as a name": (
        "evalkit.analysis.stats", "from ..router import _task_features\n", ("private",)),
    "private name of a top-level module": (
        "evalkit.router._base", "from ..tokens import _encoding_for\n", ("private",)),
    "top-level module reaching into a package": (
        "evalkit.cli", "from .runner._plan import X\n", ("private",)),
    "lazy import inside a function": (
        "evalkit.export.litellm", "def f():\n    from ..providers._http import send\n    return send\n",
        ("private",)),
    "import under TYPE_CHECKING": (
        "evalkit.analysis.replay",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..router._base import Router\n", ("private",)),
    "plain import statement of a private module": (
        "evalkit.export.litellm", "def f():\n    import evalkit.router._retry\n", ("private", "style")),
    "absolute import of a public name": (
        "evalkit.datasets._loader", "from evalkit.datasets import load\n", ("style",)),
    "absolute import of the package": (
        "evalkit.report.build", "def f():\n    import evalkit\n", ("style",)),
    "private name reached through an imported module": (
        "evalkit.router._worst_case", "from .. import tokens\n\ndef f(m):\n    return tokens._encoding_for(m)\n",
        ("private",)),
    "private module reached through an imported package": (
        "evalkit.export._plan", "from .. import router as r\nPolicy = r._retry.RetryPolicy\n", ("private",)),
    "relative import that leaves its own package and comes back": (
        "evalkit.runner.cli", "def f():\n    from ..runner import RunOptions\n    from ..runner._cells import Shard\n",
        ("style",)),
    "report imports the top-level CLI": (
        "evalkit.report.sections", "from ..cli import main\n", ("cli",)),
    "report imports another package's CLI": (
        "evalkit.report.build", "def f():\n    from ..runner.cli import run_command\n", ("cli",)),
    "report imports a CLI module as a name": (
        "evalkit.report.charts", "from ..analysis import cli\n", ("cli",)),
    "report imports its own CLI": (
        "evalkit.report.sections", "from .cli import report_command\n", ("cli",)),
    "same-package private module": (
        "evalkit.router.config", "from ._retry import RetryPolicy\nfrom . import _base\n", ()),
    "top-level private helpers from anywhere": (
        "evalkit.router.config", "from .._json import loads\nfrom .._yaml import load_yaml\nfrom .. import _secret\n", ()),
    "public names of another package": (
        "evalkit.export._plan", "from ..router import RetryPolicy\nfrom ..router.config import from_config\n", ()),
    "top-level modules share the root package": (
        "evalkit.cli", "from .tokens import _encoding_for\nfrom ._flags import flag\n", ()),
    "dunder names are public": (
        "evalkit.cli", "from ._version import __version__\nfrom .report import __doc__\n", ()),
    "own package's private names through a module": (
        "evalkit.router.config", "from . import _retry, health\nA = _retry.Action\nB = health._state\n", ()),
    "helper module's names through the module": (
        "evalkit.runner.store", "from .. import _json\nx = _json.loads\n", ()),
    "climbing to a sibling package is the normal style": (
        "evalkit.runner.cli", "from ..router import Router\nfrom ..errors import ConfigError\nfrom . import run\n", ()),
    "a CLI may import another CLI": (
        "evalkit.runner.cli", "from ..cli import main\n", ()),
    "third-party imports are not checked": (
        "evalkit.report.build", "import click\nfrom rich._loop import loop_last\n", ()),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_the_guard_catches_planted_imports(case: str) -> None:
    module, source, rules = PLANTED[case]
    found = check_source(source, module, "planted.py")
    assert sorted({v.rule for v in found}) == sorted(rules), _listing(found)
    assert all(v.file == "planted.py" and v.line >= 1 for v in found)


def test_a_violation_names_file_line_and_statement() -> None:
    source = "import os\n\n\ndef f():\n    from ..router._retry import Action as A\n"
    (only,) = check_source(source, "evalkit.export._failover_notes", "evalkit/export/_failover_notes.py")
    assert str(only).startswith("evalkit/export/_failover_notes.py:5: [private] "
                                "from ..router._retry import Action as A")
