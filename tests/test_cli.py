"""The ``evalkit`` command line as a whole: ``--version``, help for every flag, one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from evalkit._version import __version__
from evalkit.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser,
             path: str = "evalkit") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``parser`` and every subcommand parser under it, each with its command line (``evalkit run``)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"evalkit {__version__}\n"


def test_python_dash_m_evalkit_is_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "evalkit", "--version"], capture_output=True, text=True,
                          check=False, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"evalkit {__version__}\n", "")


def test_every_flag_of_every_subcommand_has_help() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            # A subcommand's own line in `evalkit --help` is a pseudo-action of its parent's subparsers.
            for named in [action, *getattr(action, "_choices_actions", [])]:
                if not named.help or named.help == argparse.SUPPRESS or not named.help.strip():
                    missing.append(f"{path} {'/'.join(named.option_strings) or named.dest}")
    assert not missing, "flags without help text: " + ", ".join(missing)


def test_every_subcommand_is_described_for_users_not_by_a_module_docstring() -> None:
    docstrings = {m.__doc__.strip() for name, m in sys.modules.items()
                  if name.startswith("evalkit") and getattr(m, "__doc__", None)}
    problems = []
    for path, parser in _parsers(build_parser()):
        text = (parser.description or "").strip()
        if text in docstrings or "``" in text or ":func:" in text or ":class:" in text:
            problems.append(f"{path}: {text[:60]!r}")
    assert not problems, "subcommand descriptions that are internal docstrings: " + "; ".join(problems)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "evalkit: error: the following arguments are required: COMMAND (see evalkit --help)"),
        (["bogus"], "evalkit: error: argument COMMAND: invalid choice: 'bogus'"),
        (["recommend"], ("evalkit recommend: error: the following arguments are required: run_dir "
                        "(see evalkit recommend --help)")),
        (["merge", "a"], "evalkit merge: error: the following arguments are required: -o/--output"),
    ],
)
def test_a_command_line_mistake_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                      message: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err

