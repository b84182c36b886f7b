"""``evalkit emulate`` and import hygiene."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import main

from .helpers import get

REPO = Path(__file__).parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_emulate_prints_its_base_url_first_and_stops_on_sigint() -> None:
    cmd = [
        sys.executable,
        "-m",
        "evalkit.cli",
        "emulate",
        "--port",
        "0",
        "--time-scale",
        "0",
        "--no-datasets",
    ]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO
    ) as proc:
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "no base URL within 30 s"
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            models = get(f"{base_url}/v1/models", headers={"authorization": "Bearer k"}).json()
            assert "sim-large" in [m["id"] for m in models["data"]]
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
        assert code == 0, proc.stderr.read()


def test_bad_fleet_file_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "models:\n  - name: x\n    wires: [telnet]\n    price: {input: 1, output: 1}\n    context_window: 10\n"
        "    latency: {ttft_ms: 1, tokens_per_s: 1}\n    skills: {default: 0.5}\n",
        encoding="utf-8",
    )
    assert main(["emulate", "--fleet", str(fleet)]) == 2
    err = capsys.readouterr().err
    assert f"{fleet}:3: models[0].wires[0]: unknown wire format 'telnet'" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--time-scale", "-1"], "argument --time-scale: must be a finite number >= 0, got '-1'"),
        (["--time-scale", "nan"], "argument --time-scale: must be a finite number >= 0, got 'nan'"),
        (["--time-scale", "inf"], "argument --time-scale: must be a finite number >= 0, got 'inf'"),
        (["--stall-s", "inf"], "argument --stall-s: must be a finite number > 0, got 'inf'"),
        (["--stall-s", "0"], "argument --stall-s: must be a finite number > 0, got '0'"),
        (["--port", "70000"], "argument --port: must be a whole number from 0 to 65535"),
    ],
)
def test_bad_flags_exit_2_before_serving(capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["emulate", *flags, "--no-datasets"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


_ROW = b'{"id": "a", "task_type": "math", "reference": 1, "grader": "numeric", "prompt": "x"'
"""A valid dataset row, left open for a hostile field."""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_ROW + b', "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
         ":1: invalid JSON: nested deeper than 100 levels"),
        (_ROW + b"}\n" + _ROW.replace(b'"x"', b'"\xff"') + b"}\n", ":2: not valid UTF-8 (invalid start byte at byte"),
        (_ROW + b', "n": ' + b"9" * 5000 + b"}\n", ":1: invalid JSON: an integer of 5000 digits"),
    ],
    ids=["deep", "not-utf8", "huge-int"],
)
def test_hostile_dataset_rows_exit_2_before_serving(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    content: bytes, message: str) -> None:
    # These took `evalkit emulate --dataset` down with a RecursionError / UnicodeDecodeError traceback.
    dataset = tmp_path / "hostile.jsonl"
    dataset.write_bytes(content)
    assert main(["emulate", "--dataset", str(dataset), "--time-scale", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{dataset}{message}" in err and "Traceback" not in err


def test_contradicting_flags_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # --no-datasets used to win silently over --dataset: a flag that changed nothing.
    assert main(["emulate", "--no-datasets", "--dataset", str(tmp_path / "a.jsonl")]) == 2
    assert "--dataset and --no-datasets contradict each other" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_importing_evalkit_does_not_load_the_server() -> None:
    code = (
        "import sys, evalkit, evalkit.emulator, evalkit.emulator.fleet as f; f.default_fleet();"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'evalkit.emulator.server') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"
