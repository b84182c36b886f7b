"""The recommender: what it picks, why it rejects, and that its YAML runs in evalkit's own router."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

import evalkit
from evalkit.analysis.recommend import parse_latency_ms, recommend
from evalkit.runner import RunOptions, results_df, run_suite
from evalkit.runner.schema import result_schema


def cells(task: str, target: str, *, n: int = 100, passes: int | None = None, errors: int = 0,
          latency_ms: float = 200.0, cost: str | None = "0.001", prompt_tokens: int = 100,
          score: float | None = None) -> list[dict[str, Any]]:
    """``n`` result rows of one (task, target): ``passes`` of the answered ones pass."""
    answered = n - errors
    passes = answered if passes is None else passes
    rows = []
    for i in range(n):
        ok = i < answered
        rows.append({
            "run_id": "run-1", "item_id": f"{task}-{i}", "task_type": task, "target": target, "repeat": 0,
            "status": "ok" if ok else "error", "error_kind": None if ok else "server",
            "latency_ms": latency_ms * (0.5 + i / n), "input_tokens": prompt_tokens, "n_attempts": 1,
            "cost_usd": None if cost is None else Decimal(cost),
            "passed": (i < passes) if ok else None,
            "score": (score if score is not None else float(i < passes)) if ok else None,
        })
    return rows


def frame(*groups: list[dict[str, Any]]) -> pl.DataFrame:
    rows = [row for group in groups for row in group]
    return pl.DataFrame(rows, schema=result_schema())


def test_cheapest_eligible_target_is_chosen_and_the_others_say_why() -> None:
    results = frame(cells("qa", "openai:cheap", cost="0.001"),
                    cells("qa", "anthropic:dear", cost="0.010"),
                    cells("qa", "gemini:cheapest", cost="0.0001", passes=60))
    row = recommend(results, min_quality=0.8).row("qa")
    assert row.target == "openai:cheap" and row.meets_bar and row.warning is None
    assert row.cost_per_success == Decimal("0.001")
    assert row.n == 100 and row.quality == 1.0 and 0.95 < row.quality_low < 1.0 == row.quality_high
    assert row.rejected["gemini:cheapest"].startswith("quality LCB 0.50 < 0.80")
    assert row.rejected["anthropic:dear"].startswith("eligible but $0.01/success vs $0.001")


def test_a_target_missing_the_latency_slo_is_rejected_with_the_reason() -> None:
    results = frame(cells("qa", "openai:slow", cost="0.0001", latency_ms=5000.0),
                    cells("qa", "anthropic:fast", cost="0.002", latency_ms=300.0))
    table = recommend(results, max_p95_latency_ms="5s")
    row = table.row("qa")
    assert row.target == "anthropic:fast"
    assert row.rejected["openai:slow"] == "p95 7.2 s > 5 s"
    assert row.p95_latency_ms is not None and row.p95_latency_ms <= 5000


def test_success_rate_and_budget_are_slos_too() -> None:
    results = frame(cells("qa", "openai:flaky", cost="0.0001", errors=20),
                    cells("qa", "anthropic:pricey", cost="0.01"),
                    cells("qa", "gemini:ok", cost="0.001"))
    row = recommend(results, min_success=0.95, budget_per_1k_requests="2.00").row("qa")
    assert row.target == "gemini:ok"
    assert "success 80% < 95%" in row.rejected["openai:flaky"]
    assert row.rejected["anthropic:pricey"] == "$10 per 1k requests > $2.00"


def test_when_nothing_meets_the_bar_the_best_available_is_recommended_with_a_warning() -> None:
    results = frame(cells("code", "openai:a", passes=50), cells("code", "anthropic:b", passes=70),
                    cells("qa", "openai:a"), cells("qa", "anthropic:b"))
    table = recommend(results, min_quality=0.9)
    code = table.row("code")
    assert not code.meets_bar and code.target == "anthropic:b"
    assert code.warning and "no target meets the bar for code" in code.warning and "anthropic:b" in code.warning
    assert table.row("qa").meets_bar
    assert table.warnings[0] == code.warning and len(table.warnings) == 2
    assert "no target meets the bar for the default route" in table.warnings[1]
    assert f"# WARNING: {code.warning}" in table.to_yaml()


def test_fallbacks_prefer_another_provider() -> None:
    results = frame(cells("qa", "openai:a", cost="0.001"), cells("qa", "openai:b", cost="0.002"),
                    cells("qa", "anthropic:c", cost="0.004"), cells("qa", "openai:d", cost="0.003"))
    row = recommend(results, fallback_length=2).row("qa")
    assert row.target == "openai:a"
    assert row.fallbacks == ("anthropic:c", "openai:b")


def test_a_one_provider_chain_gets_another_provider_in_its_last_slot() -> None:
    results = frame(cells("qa", "openai:a", cost="0.001"), cells("qa", "openai:b", cost="0.002"),
                    cells("qa", "gemini:weak", passes=40))
    assert recommend(results, fallback_length=2).row("qa").fallbacks == ("openai:b", "gemini:weak")
    assert recommend(results, fallback_length=1).row("qa").fallbacks == ("openai:b",)


def test_a_context_window_too_small_for_the_task_is_left_out_of_the_chain() -> None:
    results = frame(cells("long_document", "openai:a", prompt_tokens=50_000),
                    cells("long_document", "anthropic:small-window", prompt_tokens=50_000),
                    cells("long_document", "gemini:big-window", prompt_tokens=50_000, cost="0.01"))
    windows = {"anthropic:small-window": 32_000, "gemini:big-window": 1_000_000}
    row = recommend(results, context_windows=windows).row("long_document")
    assert row.max_input_tokens == 50_000
    assert "anthropic:small-window" not in row.chain
    assert row.fallbacks == ("gemini:big-window",)
    assert row.rejected["anthropic:small-window"] == "context window 32,000 < 50,000 prompt tokens"
    assert any("openai:a" in note and "assumed large enough" in note for note in row.notes)


def test_unpriced_targets_rank_after_priced_ones_and_say_so() -> None:
    results = frame(cells("qa", "vllm:local", cost=None), cells("qa", "openai:priced", cost="0.01"))
    row = recommend(results).row("qa")
    assert row.target == "openai:priced"
    assert row.rejected["vllm:local"] == "eligible but unpriced (ranked after priced targets)"
    assert any("unpriced" in note and "vllm:local" in note for note in row.notes)
    only_unpriced = recommend(frame(cells("qa", "vllm:local", cost=None))).row("qa")
    assert only_unpriced.cost_per_success is None and only_unpriced.cost_per_1k_requests is None


def test_score_metric_uses_a_lower_bound_on_the_mean_score() -> None:
    results = frame(cells("chat", "openai:a", score=0.9, cost="0.001"),
                    cells("chat", "openai:b", score=0.7, cost="0.0001"))
    row = recommend(results, metric="score", min_quality=0.8).row("chat")
    assert row.target == "openai:a" and row.quality == pytest.approx(0.9)
    assert row.rejected["openai:b"].startswith("quality LCB 0.70 < 0.80")


def test_the_default_route_pools_every_task_type() -> None:
    results = frame(cells("qa", "openai:a", cost="0.001"), cells("code", "openai:a", cost="0.001"),
                    cells("qa", "anthropic:b", cost="0.01"), cells("code", "anthropic:b", cost="0.01"))
    table = recommend(results)
    assert table.default.task_type == "*" and table.default.n == 200 and table.default.target == "openai:a"
    frame_ = table.to_frame()
    assert frame_["task_type"].to_list() == ["code", "qa", "*"]
    assert frame_.schema["cost_per_success"] == pl.Decimal(38, 12)
    assert frame_.filter(pl.col("task_type") == "qa")["rejected"].to_list()[0][0]["target"] == "anthropic:b"
    assert table.run_id == "run-1"


def test_render_prints_the_chain_and_the_reasons() -> None:
    from rich.console import Console

    results = frame(cells("qa", "openai:a", cost="0.001"), cells("qa", "gemini:b", passes=10))
    console = Console(record=True, width=200)
    console.print(recommend(results).render())
    text = console.export_text()
    assert "openai:a → gemini:b" in text and "quality LCB" in text and "(default)" in text


def test_to_config_refuses_inline_keys_and_asks_how_to_reach_emulator_targets() -> None:
    table = recommend(frame(cells("qa", "emulator:sim-small")))
    with pytest.raises(ValueError, match="say how to reach it"):
        table.to_config()
    with pytest.raises(ValueError, match="keys never go in configs"):
        table.to_config({"emulator:sim-small": {"model": "openai:sim-small", "api_key": "sk-x"}})
    config = table.to_config({"emulator:sim-small": {"model": "openai:sim-small", "api_key_env": "K"}})
    assert config["targets"]["emulator:sim-small"] == {"model": "openai:sim-small", "api_key_env": "K"}


def test_latency_limits_parse_from_durations() -> None:
    assert parse_latency_ms("5s") == 5000 and parse_latency_ms("800ms") == 800
    assert parse_latency_ms(1200) == 1200 and parse_latency_ms("1500") == 1500
    with pytest.raises(ValueError):
        parse_latency_ms("soon")


# -- round trip: a real emulator run → YAML → Router.from_config → the router serves the emulator ----------

FLEET = ["emulator:sim-large", "emulator:sim-medium", "emulator:sim-small", "emulator:sim-fast",
         "emulator:sim-reasoner", "emulator:sim-long"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    result = asyncio.run(run_suite("smoke", FLEET, runs_dir=runs, judge_spec="emulator:sim-large",
                                   emulator={"seed": 0, "time_scale": 0.0}, options=RunOptions(concurrency=16),
                                   progress=False))
    return result.run_dir


def emulator_targets(emu: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """How to reach each recorded target (``wire:model``) on a running emulator, at the fleet's prices."""
    urls = {"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url, "gemini": emu.gemini_base_url}
    out = {}
    for name in names:
        wire, model = name.split(":")
        price = emu.fleet.get(model).price
        out[name] = {"base_url": urls[wire], "api_key_env": "EVALKIT_TEST_EMULATOR_KEY",
                     "prices": {"input": float(price.input), "output": float(price.output)}}
    return out


def fleet_windows() -> dict[str, int]:
    from evalkit.emulator import default_fleet

    return {f"{spec.wires[0]}:{spec.name}": spec.context_window for spec in default_fleet()}


def test_round_trip_recommend_yaml_router_serves_the_recommended_targets(
        smoke_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.emulator import Emulator

    results = results_df(smoke_run)
    table = recommend(smoke_run, min_quality=0.5, max_p95_latency_ms="10s", context_windows=fleet_windows())
    assert {r.task_type for r in table.rows} == set(results["task_type"].unique())
    monkeypatch.setenv("EVALKIT_TEST_EMULATOR_KEY", "emulator-key")
    with Emulator(seed=0, time_scale=0.0) as emu:
        names = sorted(results["target"].unique())
        path = tmp_path / "routing.yaml"
        path.write_text(table.to_yaml(emulator_targets(emu, names)))
        assert "emulator-key" not in path.read_text()
        assert yaml.safe_load(path.read_text()) == table.to_config(emulator_targets(emu, names))
        router = evalkit.Router.from_config(path)
        assert {task: [t.name for t in chain.targets] for task, chain in router.routes.items()} == {
            row.task_type: list(row.chain) for row in table.rows}

        async def serve(task: str) -> str:
            request = evalkit.ChatRequest.from_prompt("Say hello.", max_tokens=1000, metadata={"task_type": task})
            return (await router.complete(request)).provider

        async def serve_all() -> dict[str, str]:
            try:
                return {row.task_type: await serve(row.task_type) for row in table.rows}
            finally:
                await router.aclose()

        served = asyncio.run(serve_all())
    assert served == {row.task_type: row.target for row in table.rows}
