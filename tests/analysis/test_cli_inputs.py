"""``evalkit recommend``, ``replay`` and ``export``: a bad flag or file is one clear error, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.cli import build_parser, main

BOMB = "version: 1\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi")
) + "router: {type: task, routes: {code: *i}, default: openai:gpt-4o}\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--min-quality", "2"], "argument --min-quality: must be a finite number from 0 to 1, got '2'"),
        (["--min-quality", "nan"], "argument --min-quality: must be a finite number from 0 to 1, got 'nan'"),
        (["--min-success", "95"], "argument --min-success: must be a fraction in [0, 1]; for a percentage write 95%"),
        (["--min-success", "150%"], "argument --min-success: a percentage must be in [0%, 100%]"),
        (["--max-p95-latency", "5"], "argument --max-p95-latency: expected a duration with its unit"),
        (["--max-p95-latency", "5 fortnights"], "argument --max-p95-latency: expected a duration with its unit"),
        (["--max-p95-latency", "0s"], "argument --max-p95-latency: must be a positive, finite duration"),
        (["--budget-per-1k-requests", "inf"], "argument --budget-per-1k-requests: must be a finite amount >= 0"),
        (["--budget-per-1k-requests", "-1"], "argument --budget-per-1k-requests: must be a finite amount >= 0"),
    ],
)
def test_bad_recommend_flags_exit_2_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    output = tmp_path / "routing.yaml"
    with pytest.raises(SystemExit) as caught:
        main(["recommend", str(tmp_path / "run"), *flags, "-o", str(output)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize(
    ("flags", "attribute", "value"),
    [
        (["--min-success", "95%"], "min_success", 0.95),
        (["--min-success", "0.9"], "min_success", 0.9),
        (["--max-p95-latency", "5min"], "max_p95_latency", 300_000.0),
        (["--max-p95-latency", "800ms"], "max_p95_latency", 800.0),
        (["--max-p95-latency", "2.5s"], "max_p95_latency", 2500.0),
        (["--min-quality", "0"], "min_quality", 0.0),
    ],
)
def test_recommend_flags_read_units_and_percentages(flags: list[str], attribute: str, value: float) -> None:
    args = build_parser().parse_args(["recommend", "runs/x", *flags])
    assert getattr(args, attribute) == pytest.approx(value)


def test_replay_bootstrap_must_not_be_negative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["replay", str(tmp_path), "--policy", "p.yaml", "--bootstrap", "-5"])
    assert caught.value.code == 2
    assert "argument --bootstrap: must be a whole number >= 0, got '-5'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["replay", "export"])
def test_a_hostile_policy_file_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    policy = tmp_path / "routing.yaml"
    output = tmp_path / "out.yaml"
    for text, message in [(BOMB, "aliases expand this to more than 100,000 nodes"),
                          ("router: &r {type: fallback, targets: [*r]}\n", "recursive alias"),
                          ("router:\n  type: fallback\n  targets: [" + "1" * 5000 + "]\n", "an integer of 5000"),
                          ("version: 1\nrouter: 'caf\xe9'\n", "not valid UTF-8")]:
        policy.write_bytes(text.encode("latin-1"))
        argv = ["replay", str(tmp_path), "--policy", str(policy)] if command == "replay" else \
            ["export", str(policy), "--format", "litellm", "-o", str(output)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"evalkit: error: {policy}:" in err and message in err, err
        assert not output.exists()


def test_replay_refuses_an_invalid_policy_the_way_from_config_does(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text("version: 1\nrouter: {type: balance, targets: [openai:a, openai:b], weights: [1, -1]}\n")
    assert main(["replay", str(tmp_path), "--policy", str(policy)]) == 2
    assert f"{policy}:2: router.weights[1]: must be > 0" in capsys.readouterr().err
    policy.write_text("version: 1\nrouter: {type: hedge, targets: [openai:a, openai:b]}\n")
    assert main(["replay", str(tmp_path), "--policy", str(policy)]) == 2
    assert f"{policy}:2: router: hedge nodes cannot be replayed" in capsys.readouterr().err


def test_export_to_an_unwritable_place_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text("version: 1\nrouter: openai:gpt-4o\n")
    assert main(["export", str(policy), "-o", str(tmp_path / "missing" / "out.yaml")]) == 2
    assert "cannot write: No such file or directory" in capsys.readouterr().err
