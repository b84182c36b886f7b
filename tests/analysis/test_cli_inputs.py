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
        # A quality bar written as a percentage: refused with both ways to say 80 %.
        (["--min-quality", "80"], ("argument --min-quality: must be a fraction in [0, 1] or a percentage like 95%; "
                                  "for 80 % write 0.8 or 80%, got '80'")),
        (["--min-quality", "2"], ("argument --min-quality: must be a fraction in [0, 1] or a percentage like 95%; "
                                 "for 2 % write 0.02 or 2%, got '2'")),
        (["--min-quality", "-0.1"], ("argument --min-quality: must be a fraction in [0, 1] or a percentage like 95%, "
                                    "got '-0.1'")),
        (["--min-quality", "nan"], "argument --min-quality: expected a finite number, got 'nan'"),
        (["--min-quality", "inf"], "argument --min-quality: expected a finite number, got 'inf'"),
        (["--min-quality", "high"], "argument --min-quality: expected a number, got 'high'"),
        # 95 read as a fraction would be a 9500 % bar.
        (["--min-success", "95"], ("argument --min-success: must be a fraction in [0, 1] or a percentage like 95%; "
                                  "for 95 % write 0.95 or 95%, got '95'")),
        (["--min-success", "150%"], "argument --min-success: a percentage must be in [0%, 100%], got '150%'"),
        (["--min-success", "-5%"], "argument --min-success: a percentage must be in [0%, 100%], got '-5%'"),
        (["--min-success", "-5"], "argument --min-success: must be a fraction in [0, 1]"),
        (["--min-success", "nan%"], "argument --min-success: expected a finite number, got 'nan%'"),
        (["--min-success", "inf"], "argument --min-success: expected a finite number, got 'inf'"),
        # A bare number could be ms or s: refused, with the unit spelled out for this number.
        (["--max-p95-latency", "5"], ("argument --max-p95-latency: a bare number has no unit: write 5ms, 5s or 5min; "
                                     "got '5'")),
        (["--max-p95-latency", "2.5"], "write 2.5ms, 2.5s or 2.5min"),
        (["--max-p95-latency", "5 fortnights"], ("argument --max-p95-latency: unknown unit 'fortnights': "
                                                "use ms, s or min")),
        (["--max-p95-latency", "5h"], "argument --max-p95-latency: unknown unit 'h'"),
        (["--max-p95-latency", "fast"], "argument --max-p95-latency: expected a duration with its unit"),
        (["--max-p95-latency", "0s"], "argument --max-p95-latency: must be a positive, finite duration, got '0s'"),
        # "-5s" was taken for an unknown flag ("expected one argument") before the parser read it as a value.
        (["--max-p95-latency", "-5s"], "argument --max-p95-latency: must be a positive, finite duration, got '-5s'"),
        (["--max-p95-latency", "nans"], "argument --max-p95-latency: must be a positive, finite duration"),
        (["--max-p95-latency", "infms"], "argument --max-p95-latency: must be a positive, finite duration"),
        (["--max-p95-latency", "1e400s"], "argument --max-p95-latency: must be a positive, finite duration"),
        (["--max-p95-latency", "1e307min"], "argument --max-p95-latency: must be a positive, finite duration"),
        (["--budget-per-1k-requests", "-1"], ("argument --budget-per-1k-requests: must be a finite amount >= 0, "
                                             "got '-1'")),
        (["--budget-per-1k-requests", "inf"], "argument --budget-per-1k-requests: must be a finite amount >= 0"),
        (["--budget-per-1k-requests", "NaN"], "argument --budget-per-1k-requests: must be a finite amount >= 0"),
        (["--budget-per-1k-requests", "$5"], "argument --budget-per-1k-requests: expected an amount of USD"),
        (["--seed", "1.5"], "argument --seed: expected a whole number, got '1.5'"),
        (["--seed", "-1"], "argument --seed: must be a whole number >= 0, got '-1'"),
    ],
)
def test_bad_recommend_flags_are_one_line_exit_2_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    output = tmp_path / "routing.yaml"
    with pytest.raises(SystemExit) as caught:
        main(["recommend", str(tmp_path / "run"), *flags, "-o", str(output)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("evalkit recommend: error: ") and message in err, err
    assert err.count("\n") == 1, err  # one line: no usage block, no traceback
    assert not output.exists()


@pytest.mark.parametrize(
    ("flags", "attribute", "value"),
    [
        (["--min-success", "95%"], "min_success", 0.95),
        (["--min-success", "0.9"], "min_success", 0.9),
        (["--min-quality", "80%"], "min_quality", 0.8),
        (["--min-quality", "0"], "min_quality", 0.0),
        (["--max-p95-latency", "5min"], "max_p95_latency", 300_000.0),
        (["--max-p95-latency", "2m"], "max_p95_latency", 120_000.0),
        (["--max-p95-latency", "800ms"], "max_p95_latency", 800.0),
        (["--max-p95-latency", "2.5s"], "max_p95_latency", 2500.0),
        (["--max-p95-latency", "5 s"], "max_p95_latency", 5000.0),
        (["--max-p95-latency", "1e3ms"], "max_p95_latency", 1000.0),
        (["--max-p95-latency=.5S"], "max_p95_latency", 500.0),
    ],
)
def test_recommend_flags_read_units_and_percentages(flags: list[str], attribute: str, value: float) -> None:
    args = build_parser().parse_args(["recommend", "runs/x", *flags])
    assert getattr(args, attribute) == pytest.approx(value)


def test_recommend_states_the_bars_it_was_given(smoke_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``5min`` once crashed with a traceback, and ``95`` was read as 9500 %: the YAML says what was applied."""
    assert main(["recommend", str(smoke_run), "--classifier", "keywords", "--max-p95-latency", "5min",
                 "--min-success", "95%", "--min-quality", "80%"]) == 0
    out = capsys.readouterr().out
    assert "# bar: quality LCB (95%, passed) >= 0.80; success >= 95%; p95 <= 300 s" in out.splitlines()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run: two emulated models on the smoke suite, no delays."""
    import asyncio

    from evalkit.runner import run_suite

    runs = tmp_path_factory.mktemp("runs")
    result = asyncio.run(run_suite("smoke", ["emulator:sim-small", "emulator:sim-fast"], runs_dir=runs,
                                   judge_spec="emulator:sim-large", emulator={"seed": 0, "time_scale": 0.0},
                                   progress=False))
    return result.run_dir


@pytest.mark.parametrize(("flag", "value"), [("--bootstrap", "-5"), ("--seed", "-1")])
def test_replay_numbers_must_not_be_negative(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
                                             value: str) -> None:
    """``replay --seed -1`` got as far as numpy's generator: a ValueError traceback."""
    with pytest.raises(SystemExit) as caught:
        main(["replay", str(tmp_path), "--policy", "p.yaml", flag, value])
    assert caught.value.code == 2
    assert f"argument {flag}: must be a whole number >= 0, got '{value}'" in capsys.readouterr().err


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
