"""``evalkit run --stream`` reads each answer as it arrives, so broken streams are recovered and recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl

from evalkit.emulator import Emulator
from evalkit.runner import RunOptions, attempts_df, results_df, run_suite

from .test_run import EMU, small_suite

FLEET = """\
version: 1
models:
  - name: sim-x
    wires: [openai, anthropic]
    price: {input: 1.0, output: 2.0}
    context_window: 100000
    latency: {ttft_ms: 1, tokens_per_s: 100000}
    output_tokens: 40
    skills: {default: 0.9}
"""


def test_a_streamed_run_records_each_cut_and_its_continuation_as_attempts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUN_STREAM_KEY", "sk-test-RUN-STREAM-0000")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    with Emulator(fleet, seed=1, time_scale=0.0, datasets=()) as emu:
        config = tmp_path / "routing.yaml"
        config.write_text(f"""\
version: 1
targets:
  primary:
    model: openai:sim-x
    base_url: {emu.base_url_for("openai")}
    api_key_env: RUN_STREAM_KEY
    prices: {{input: 1, output: 2}}
    options: {{headers: {{"x-evalkit-fault": "cut", "x-evalkit-after-tokens": "3"}}}}
  backup:
    model: anthropic:sim-x
    base_url: {emu.base_url_for("anthropic")}
    api_key_env: RUN_STREAM_KEY
    prices: {{input: 1, output: 2}}
    prefill: true             # an emulator model: the capability data knows Claude models, not sim-x
router: {{type: fallback, targets: [primary, backup], retry: {{retries_per_target: 0}}}}
""")
        suite = small_suite(tmp_path, n_per_type=1)
        result = asyncio.run(run_suite(suite, [str(config)], runs_dir=tmp_path / "runs", judge_spec="emulator:sim-large",
                                       options=RunOptions(concurrency=4, stream=True), emulator=EMU, progress=False))
    results, attempts = results_df(result.run_dir), attempts_df(result.run_dir)
    assert (results["status"] == "ok").all() and (results["served_by"] == "anthropic:sim-x").all()
    cut = attempts.filter(pl.col("error_kind") == "stream_interrupted")
    continued = attempts.filter(pl.col("recovery") == "continue")
    assert cut.height == continued.height == results.height, "one cut and one continuation per cell"
    assert (continued["join_at"] > 0).all() and continued["error_kind"].is_null().all()
    assert cut["cost_usd"].is_not_null().all(), "the cut attempt is billed for what it generated"
    assert (results["n_attempts"] == 2).all()
