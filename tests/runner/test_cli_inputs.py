"""Bad input to ``evalkit run`` gets one clear message naming file, line and field, exit code 2, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import main

GOOD = {"id": "q1", "task_type": "factual_qa", "prompt": "What is 2+2?", "reference": "4",
        "grader": {"type": "numeric"}}


def jsonl(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def with_(**changes: object) -> dict:
    row = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            row.pop(key, None)
        else:
            row[key] = value
    return row


# (case id, file name, file text or None, extra CLI args, text the message must contain)
CASES = [
    ("missing-file", None, None, [], "not found"),
    ("empty-file", "s.jsonl", "", [], "s.jsonl"),
    ("bad-json", "s.jsonl", jsonl(GOOD, "{not json"), [], "s.jsonl:2"),
    ("not-object", "s.jsonl", jsonl(GOOD, "[1, 2]"), [], "s.jsonl:2"),
    ("no-id", "s.jsonl", jsonl(with_(id=None)), [], "s.jsonl:1: id"),
    ("dup-id", "s.jsonl", jsonl(GOOD, GOOD), [], "s.jsonl:2: id"),
    ("no-task-type", "s.jsonl", jsonl(with_(task_type=None)), [], "s.jsonl:1: task_type"),
    ("messages-and-prompt", "s.jsonl", jsonl(with_(messages=[{"role": "user", "content": "x"}])), [],
     "s.jsonl:1"),
    ("no-prompt", "s.jsonl", jsonl(with_(prompt=None)), [], "s.jsonl:1"),
    ("bad-role", "s.jsonl", jsonl(with_(prompt=None, messages=[{"role": "wizard", "content": "x"}])), [],
     "s.jsonl:1: messages"),
    ("unknown-grader", "s.jsonl", jsonl(with_(grader={"type": "vibes"})), [], "s.jsonl:1: grader"),
    ("label-no-labels", "s.jsonl", jsonl(with_(grader={"type": "label"})), [], "s.jsonl:1: grader"),
    ("bad-regex", "s.jsonl", jsonl(with_(grader={"type": "regex", "pattern": "(["})), [], "s.jsonl:1: grader"),
    ("code-no-entry", "s.jsonl", jsonl(with_(grader={"type": "code_exec", "tests": "x"})), [],
     "s.jsonl:1: grader"),
    ("judge-bad-mode", "s.jsonl", jsonl(with_(grader={"type": "judge", "mode": "vibes"})), [],
     "s.jsonl:1: grader"),
    ("no-reference", "s.jsonl", jsonl(with_(reference=None)), [], "s.jsonl:1: reference"),
    ("unknown-extension", "s.txt", "hello", [], "s.txt"),
    ("csv-missing-column", "s.csv", "id,prompt\nq1,hi\n", [], "s.csv"),
    ("unknown-provider", "ok.jsonl", jsonl(GOOD), ["--targets", "acme:model"], "unknown provider"),
    ("target-no-colon", "ok.jsonl", jsonl(GOOD), ["--targets", "gpt4"], "provider:model"),
    ("config-not-found", "ok.jsonl", jsonl(GOOD), ["--targets", "nope.yaml"], "nope.yaml"),
    ("unknown-emulated-model", "ok.jsonl", jsonl(GOOD), ["--targets", "emulator:sim-nope"], "sim-nope"),
    ("duplicate-target", "ok.jsonl", jsonl(GOOD), ["--targets", "emulator:sim-small,emulator:sim-small"],
     "listed twice"),
    ("repeats-zero", "ok.jsonl", jsonl(GOOD), ["--repeats", "0"], "--repeats"),
    ("concurrency-negative", "ok.jsonl", jsonl(GOOD), ["--concurrency", "-1"], "--concurrency"),
    ("shard-out-of-range", "ok.jsonl", jsonl(GOOD), ["--shard", "3/2"], "--shard"),
    ("shard-garbage", "ok.jsonl", jsonl(GOOD), ["--shard", "half"], "--shard"),
    ("resume-not-a-run", "ok.jsonl", jsonl(GOOD), ["--resume", "."], "manifest.json"),
    ("replay-missing-cassette", "ok.jsonl", jsonl(GOOD), ["--replay", "missing.yaml"], "missing.yaml"),
    ("no-api-key", "ok.jsonl", jsonl(GOOD), ["--targets", "openai:gpt-4o-mini"], "OPENAI_API_KEY"),
    # Numbers that are not finite or out of range, and empty values, never start a run.
    ("time-scale-nan", "ok.jsonl", jsonl(GOOD), ["--time-scale", "nan"], "--time-scale"),
    ("time-scale-inf", "ok.jsonl", jsonl(GOOD), ["--time-scale", "inf"], "--time-scale"),
    ("time-scale-negative", "ok.jsonl", jsonl(GOOD), ["--time-scale", "-1"], "--time-scale"),
    ("temperature-inf", "ok.jsonl", jsonl(GOOD), ["--temperature", "inf"], "--temperature"),
    ("temperature-nan", "ok.jsonl", jsonl(GOOD), ["--temperature", "nan"], "--temperature"),
    ("temperature-too-high", "ok.jsonl", jsonl(GOOD), ["--temperature", "7"], "--temperature"),
    ("max-tokens-huge", "ok.jsonl", jsonl(GOOD), ["--max-tokens", "9" * 40], "--max-tokens"),
    ("repeats-huge", "ok.jsonl", jsonl(GOOD), ["--repeats", "1" + "0" * 5000], "--repeats"),
    ("seed-huge", "ok.jsonl", jsonl(GOOD), ["--seed", "1" + "0" * 30], "--seed"),
    ("seed-not-whole", "ok.jsonl", jsonl(GOOD), ["--seed", "1.5"], "--seed"),
    ("targets-empty", "ok.jsonl", jsonl(GOOD), ["--targets", ""], "--targets"),
    ("targets-only-commas", "ok.jsonl", jsonl(GOOD), ["--targets", " , ,"], "--targets"),
    ("judge-empty", "ok.jsonl", jsonl(GOOD), ["--judge", ""], "--judge"),
    ("suite-empty", "ok.jsonl", jsonl(GOOD), ["--suite", ""], "--suite"),
    ("runs-dir-empty", "ok.jsonl", jsonl(GOOD), ["--runs-dir", " "], "--runs-dir"),
    ("shard-empty", "ok.jsonl", jsonl(GOOD), ["--shard", ""], "--shard"),
    ("fleet-empty", "ok.jsonl", jsonl(GOOD), ["--fleet", ""], "--fleet"),
    ("record-empty", "ok.jsonl", jsonl(GOOD), ["--record", ""], "--record"),
    # A run id is one directory name: nothing outside --runs-dir is ever written.
    ("run-id-parent", "ok.jsonl", jsonl(GOOD), ["--run-id", "../../escaped"], "--run-id"),
    ("run-id-nested", "ok.jsonl", jsonl(GOOD), ["--run-id", "a/b"], "--run-id"),
    ("run-id-absolute", "ok.jsonl", jsonl(GOOD), ["--run-id", "{tmp}/escaped-run"], "--run-id"),
    ("run-id-dotdot", "ok.jsonl", jsonl(GOOD), ["--run-id", ".."], "--run-id"),
    ("run-id-empty", "ok.jsonl", jsonl(GOOD), ["--run-id", ""], "--run-id"),
]

ROUTING_CASES = [
    ("routing-not-yaml", "router: [\n  : :", "r.yaml:2"),
    ("routing-unknown-node", "router: {type: magic, targets: [a]}", "r.yaml:1: router.type"),
    ("routing-unknown-target", "router: {type: fallback, targets: [ghost]}", "router.targets[0]"),
    ("routing-inline-key", "targets:\n  a: {model: 'openai:x', api_key: sk-live}\nrouter: a",
     "r.yaml:2: targets.a.api_key"),
]


def run_cli(tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    try:
        code = main(["run", "--no-progress", "--runs-dir", "runs", *args])
    except SystemExit as exit_:  # argparse reports bad flags this way
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("case", "name", "text", "extra", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], case: str, name: str | None,
                                              text: str | None, extra: list[str], expected: str) -> None:
    suite = tmp_path / (name or "absent.jsonl")
    if text is not None:
        suite.write_text(text)
    before = _tree(tmp_path.parent)
    extra = [arg.replace("{tmp}", str(tmp_path)) for arg in extra]
    code, err = run_cli(tmp_path, ["--suite", str(suite), *extra], monkeypatch, capsys)
    assert code == 2, err
    assert expected in err
    assert err.count("error:") == 1, f"one message, not a traceback: {err}"
    assert not (tmp_path / "runs").exists(), "nothing is half-written"
    assert _tree(tmp_path.parent) == before, "nothing written elsewhere"


def _tree(folder: Path) -> set[Path]:
    """Everything under ``folder`` but pytest's own cache."""
    return {p for p in folder.rglob("*") if ".pytest_cache" not in p.parts}


@pytest.mark.parametrize(("case", "yaml_text", "expected"), ROUTING_CASES, ids=[c[0] for c in ROUTING_CASES])
def test_bad_routing_config_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], case: str, yaml_text: str,
                                    expected: str) -> None:
    (tmp_path / "ok.jsonl").write_text(jsonl(GOOD))
    (tmp_path / "r.yaml").write_text(yaml_text)
    code, err = run_cli(tmp_path, ["--suite", "ok.jsonl", "--targets", "r.yaml"], monkeypatch, capsys)
    assert code == 2 and expected in err, err
    assert not (tmp_path / "runs").exists()


def fleet_yaml(name: str, price: str = "{input: 1, output: 2}", faults: str = "{}") -> str:
    """A one-model fleet file."""
    return (f"version: 1\nmodels:\n  - name: {name}\n    wires: [openai]\n    price: {price}\n"
            "    context_window: 8000\n    latency: {ttft_ms: {median: 100}, tokens_per_s: {median: 50}}\n"
            f"    skills: {{default: 0.5}}\n    faults: {faults}\n")


@pytest.mark.parametrize(("fleet_text", "expected"), [
    (None, "fleet.yaml"),
    (fleet_yaml("sim-x", price="{input: -1, output: 1}"), "fleet.yaml:5: models[0].price.input"),
], ids=["missing", "negative-price"])
def test_bad_fleet_file_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                fleet_text: str | None, expected: str) -> None:
    (tmp_path / "ok.jsonl").write_text(jsonl(GOOD))
    if fleet_text is not None:
        (tmp_path / "fleet.yaml").write_text(fleet_text)
    code, err = run_cli(tmp_path, ["--suite", "ok.jsonl", "--fleet", "fleet.yaml"], monkeypatch, capsys)
    assert code == 2 and expected in err, err
    assert not (tmp_path / "runs").exists()


def test_a_faulty_fleet_gives_error_rows_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.runner import attempts_df, results_df

    (tmp_path / "ok.jsonl").write_text(jsonl(*[with_(id=f"q{i}") for i in range(10)]))
    (tmp_path / "fleet.yaml").write_text(fleet_yaml("sim-flaky", faults="{server: 1.0}"))
    # No --judge: a fleet without sim-large judges with its own first model.
    code, err = run_cli(tmp_path, ["--suite", "ok.jsonl", "--fleet", "fleet.yaml", "--time-scale", "0"],
                        monkeypatch, capsys)
    assert code == 3, "every cell failed: the run exits 3, with rows, not a crash"
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = results_df(run_dir)
    assert results["target"].unique().to_list() == ["openai:sim-flaky"]
    assert results["status"].unique().to_list() == ["error"] and results["error_kind"].unique().to_list() == ["server"]
    assert attempts_df(run_dir).height >= results.height
    assert (results["latency_ms"] > 0).all(), "the time spent on a failed call is recorded, not 0 ms"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["emulator"]["fleet"] == str(tmp_path / "fleet.yaml")


def test_a_fleet_no_target_uses_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.jsonl").write_text(jsonl(GOOD))
    (tmp_path / "fleet.yaml").write_text(fleet_yaml("sim-x"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, err = run_cli(tmp_path, ["--suite", "ok.jsonl", "--fleet", "fleet.yaml", "--targets", "openai:gpt-4o-mini",
                                   "--judge", "openai:gpt-4o-mini"], monkeypatch, capsys)
    assert code == 2 and "fleet.yaml: --fleet" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("run_id", ["../escaped", "a/b", "{tmp}/escaped-run", "..", "", "x" * 200])
def test_run_suite_refuses_a_run_id_that_is_not_one_directory_name(tmp_path: Path, run_id: str) -> None:
    """The Python API checks what the CLI checks: no run directory outside ``runs_dir``."""
    import asyncio

    from evalkit.errors import ConfigError
    from evalkit.runner import run_suite

    (tmp_path / "ok.jsonl").write_text(jsonl(GOOD))
    before = _tree(tmp_path.parent)
    with pytest.raises(ConfigError, match="--run-id"):
        asyncio.run(run_suite(tmp_path / "ok.jsonl", ["emulator:sim-small"], runs_dir=tmp_path / "runs",
                              run_id=run_id.replace("{tmp}", str(tmp_path)),
                              emulator={"seed": 0, "time_scale": 0}, progress=False))
    assert _tree(tmp_path.parent) == before


@pytest.mark.parametrize(("field", "value"), [("temperature", float("nan")), ("temperature", float("inf")),
                                              ("repeats", 0), ("concurrency", 10**100), ("max_tokens", 2.5),
                                              ("seed", float("nan"))])
def test_run_options_refuse_numbers_that_are_not_finite_or_out_of_range(field: str, value: object) -> None:
    from evalkit.errors import ConfigError
    from evalkit.runner import RunOptions

    with pytest.raises(ConfigError, match=field):
        RunOptions(**{field: value})


def test_regrade_and_merge_refuse_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = (["regrade", str(tmp_path), "--time-scale", "nan"], ["regrade", ""], ["merge", str(tmp_path), "-o", ""])
    for args in bad:
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2
        assert capsys.readouterr().err.count("error:") == 1


@pytest.mark.parametrize("judge", ["emulator:sim-large", "openai:gpt-4o-mini"])
def test_regrade_time_scale_paces_an_emulated_judge_or_is_an_error(
        judge: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # --time-scale was accepted by regrade and changed nothing.
    import contextlib

    from evalkit.runner import session

    (tmp_path / "manifest.json").write_text(json.dumps(
        {"config": {"judge": judge, "emulator": {"seed": 3, "time_scale": 0.02}}}))
    used: list[object] = []

    @contextlib.contextmanager
    def recording_emulator(specs, judge_spec, settings):
        used.append(settings)
        raise KeyboardInterrupt  # stop before any grading: only the settings matter here
        yield

    monkeypatch.setattr(session, "_maybe_emulator", recording_emulator)
    if judge.startswith("emulator:"):
        with pytest.raises(KeyboardInterrupt):
            main(["regrade", str(tmp_path), "--time-scale", "0.5"])
        assert used == [{"seed": 3, "time_scale": 0.5}]
    else:
        assert main(["regrade", str(tmp_path), "--time-scale", "0.5"]) == 2
        assert "--time-scale: only paces an emulated judge" in capsys.readouterr().err
        assert used == []
