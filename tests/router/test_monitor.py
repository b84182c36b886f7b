"""Monitor: events over a rolling window, per-model summaries and Prometheus counters."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

import evalkit
from evalkit import Attempt, Cost, Usage
from evalkit.router import BreakerSettings, FallbackChain, WeightedBalancer
from evalkit.router.monitor import EVENT_COLUMNS, Monitor, parse_window, split_target

from .fakes import ScriptedProvider, fast_policy

REQ = evalkit.ChatRequest.from_prompt("hello", max_tokens=10, metadata={"task_type": "chat"})
ZERO = Decimal(0)


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def served(target: str = "openai:gpt-4o", *, latency_ms: float = 800.0, ttft_ms: float | None = 200.0,
           cost: str | None = "0.003", depth: int = 0) -> Attempt:
    return Attempt(target=target, latency_ms=latency_ms, ttft_ms=ttft_ms,
                   usage=Usage(input_tokens=1000, cached_input_tokens=200, output_tokens=300, reasoning_tokens=50),
                   cost=None if cost is None else Cost(Decimal(cost), ZERO, ZERO, ZERO, ZERO, source="test"),
                   depth=depth)


def failed(target: str = "anthropic:claude", kind: str = "rate_limit", latency_ms: float = 100.0) -> Attempt:
    return Attempt(target=target, error_kind=kind, error="slow down", latency_ms=latency_ms)


def skipped(target: str, reason: str = "circuit_open") -> Attempt:
    return Attempt(target=target, error_kind=reason, sent=False)


def row(summary: pl.DataFrame, provider: str, model: str) -> dict:
    rows = summary.filter((pl.col("provider") == provider) & (pl.col("model") == model)).to_dicts()
    assert len(rows) == 1, summary
    return rows[0]


# -- windows and names -------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("15m", 900.0), ("24h", 86400.0), ("7d", 604800.0), ("90s", 90.0),
                                           ("1.5h", 5400.0), ("3600", 3600.0), (30, 30.0), (0.5, 0.5)])
def test_windows_parse_to_seconds(text, seconds) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("bad", ["", "h", "-1h", "0", "soon", "5y", float("nan"), float("inf")])
def test_bad_windows_are_rejected(bad) -> None:
    with pytest.raises(ValueError):
        parse_window(bad)


def test_targets_split_into_provider_and_model_but_router_names_do_not() -> None:
    assert split_target("openrouter:meta/llama-3:8b") == ("openrouter", "meta/llama-3:8b")
    assert split_target("primary") == ("primary", "")
    assert split_target("fallback(openai:gpt-4o, anthropic:claude)") == (
        "fallback(openai:gpt-4o, anthropic:claude)", "")


# -- events ------------------------------------------------------------------------------------

async def test_a_router_with_a_monitor_records_every_attempt() -> None:
    monitor = Monitor(clock=FakeClock())
    chain = FallbackChain([ScriptedProvider("a:one", ["server"]), ScriptedProvider("b:two")],
                          policy=fast_policy(retries_per_target=0), monitor=monitor)
    await chain.complete(REQ)
    events = monitor.events_df()
    assert events.columns == list(EVENT_COLUMNS)
    assert events.select("target", "provider", "model", "task_type", "success", "error_kind", "depth").rows() == [
        ("a:one", "a", "one", "chat", False, "server", 0),
        ("b:two", "b", "two", "chat", True, None, 1),
    ]
    assert events["input_tokens"].to_list() == [None, 10]
    assert events["cost_usd"].to_list() == [None, Decimal("0.001")]


async def test_a_refusal_is_a_failed_call_whose_bill_reaches_the_monitor() -> None:
    """A 200 refusal is counted as a failure of its target, and the tokens it was billed are in the cost."""
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "c", "model": "gpt-4o", "usage": {
            "prompt_tokens": 1000, "completion_tokens": 0}, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None},
             "finish_reason": "content_filter"}]})

    refuser = evalkit.get_provider("openai:gpt-4o", api_key="sk-test-MONITOR-000000", base_url="http://m.invalid",
                                   transport=httpx.MockTransport(refuse), prices={"input": 2.5, "output": 10})
    monitor = Monitor()
    # Routing around a refusal is an explicit opt-in (by default it ends the call).
    policy = fast_policy().with_actions({"content_filter": "next"})
    chain = FallbackChain([refuser, ScriptedProvider("b")], policy=policy, monitor=monitor)
    response = await chain.complete(REQ)
    assert response.provider == "b" and response.attempts[0].error_kind == "content_filter"
    refused = next(row for row in monitor.summary_df().iter_rows(named=True) if row["model"] == "gpt-4o")
    assert (refused["calls"], refused["successes"]) == (1, 0)
    assert refused["cost_usd"] == Decimal("0.0025")  # 1000 prompt tokens at $2.5/M, billed though refused


def test_events_keep_usage_cost_and_skips() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([skipped("x:small", "context_window"), served()], REQ)
    first, second = monitor.events_df().to_dicts()
    assert (first["sent"], first["error_kind"], first["success"]) == (False, "context_window", False)
    assert (second["input_tokens"], second["cached_input_tokens"], second["output_tokens"],
            second["reasoning_tokens"], second["tokens_exact"]) == (1000, 200, 300, 50, True)
    assert second["cost_usd"] == Decimal("0.003") and second["ttft_ms"] == 200.0


def test_memory_stays_bounded_over_a_million_events() -> None:
    clock = FakeClock()
    monitor = Monitor(window="1h", max_events=10_000, clock=clock)
    batch = [failed(), served(depth=1)] * 50
    for _ in range(10_000):  # 1,000,000 attempts, a second apart per batch
        monitor.record(batch, REQ)
        clock.now += 1.0
        assert len(monitor) <= 10_000
    assert len(monitor) == 10_000
    assert monitor.events_df().height == 10_000


def test_events_older_than_the_window_leave_the_summary() -> None:
    clock = FakeClock()
    monitor = Monitor(window="1h", clock=clock)
    monitor.record([served("old:model")], REQ)
    clock.now += 1800
    monitor.record([served("new:model")], REQ)
    assert set(monitor.summary_df()["provider"]) == {"old", "new"}
    assert monitor.summary_df(window="15m")["provider"].to_list() == ["new"]
    clock.now += 1801  # the first event is now 1h and 1s old
    assert monitor.summary_df()["provider"].to_list() == ["new"]
    assert monitor.events_df()["target"].to_list() == ["new:model"]
    clock.now += 3601
    assert monitor.summary_df().is_empty()


# -- summaries ---------------------------------------------------------------------------------

def test_summary_counts_calls_successes_percentiles_tokens_cost_and_fallbacks() -> None:
    monitor = Monitor(clock=FakeClock())
    for latency in (100.0, 200.0, 300.0, 400.0):
        monitor.record([failed(), served(latency_ms=latency * 2, ttft_ms=latency, depth=1)], REQ)
    monitor.record([skipped("anthropic:claude"), served()], REQ)
    monitor.breaker_opened("anthropic:claude")

    summary = monitor.summary_df()
    claude = row(summary, "anthropic", "claude")
    assert (claude["calls"], claude["successes"], claude["success_rate"]) == (4, 0, 0.0)
    assert claude["breaker_opens"] == 1 and claude["cost_usd"] is None
    gpt = row(summary, "openai", "gpt-4o")
    assert (gpt["calls"], gpt["successes"], gpt["success_rate"], gpt["fallbacks"]) == (5, 5, 1.0, 4)
    assert gpt["p50_latency_ms"] == 600.0 and gpt["p95_latency_ms"] == 800.0
    assert gpt["p50_ttft_ms"] == 200.0
    assert (gpt["input_tokens"], gpt["cached_input_tokens"], gpt["output_tokens"]) == (5000, 1000, 1500)
    assert gpt["cost_usd"] == Decimal("0.015")


def test_empty_window_gives_an_empty_frame_with_the_same_schema() -> None:
    clock = FakeClock()
    monitor = Monitor(window="1h", clock=clock)
    empty = monitor.summary_df()
    monitor.record([served(), failed()], REQ)
    full = monitor.summary_df()
    assert empty.is_empty() and empty.schema == full.schema
    assert monitor.events_df().schema == Monitor().events_df().schema


def test_only_skips_give_a_null_success_rate_not_a_division_by_zero() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([skipped("x:y", "saturated"), skipped("x:y", "budget_exceeded")], REQ)
    summary = row(monitor.summary_df(), "x", "y")
    assert summary["calls"] == 0 and summary["success_rate"] is None and summary["p50_latency_ms"] is None


def test_router_names_keep_the_whole_name_as_provider() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([skipped("fallback(a:b, c:d)")], REQ)
    assert monitor.summary_df().select("provider", "model").rows() == [("fallback(a:b, c:d)", "")]


def test_breaker_opens_count_only_inside_the_window() -> None:
    clock = FakeClock()
    monitor = Monitor(window="1h", clock=clock)
    monitor.breaker_opened("a:b", at=clock.now - 7200)
    monitor.breaker_opened("a:b")
    assert row(monitor.summary_df(), "a", "b")["breaker_opens"] == 1
    assert 'evalkit_circuit_breaker_opens_total{target="a:b"} 2' in monitor.to_prometheus()


async def test_a_nested_node_reports_its_openings_through_on_breaker_open_and_each_attempt_counts_once() -> None:
    # A tree built by hand: the root holds the monitor (it records the flattened attempts), the inner balancer
    # reports its breaker's openings to the same monitor; it has no monitor itself, so nothing is recorded twice.
    monitor = Monitor(clock=FakeClock())
    down = ScriptedProvider("a:down", default="server")
    inner = WeightedBalancer([down], breaker=BreakerSettings(consecutive_failures=1),
                             on_breaker_open=monitor.breaker_opened)
    root = FallbackChain([inner, ScriptedProvider("b:up")], policy=fast_policy(retries_per_target=0), breaker=None,
                         monitor=monitor)
    await root.complete(REQ)
    assert inner.health[0].breaker.opens == 1
    text = monitor.to_prometheus()
    assert 'evalkit_circuit_breaker_opens_total{target="a:down"} 1' in text
    assert monitor.events_df().select("target", "error_kind").rows() == [("a:down", "server"), ("b:up", None)]


def test_reset_forgets_events_and_counters() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([served()], REQ)
    monitor.breaker_opened("openai:gpt-4o")
    monitor.reset()
    assert len(monitor) == 0 and monitor.summary_df().is_empty()
    assert "openai" not in monitor.to_prometheus()


# -- Prometheus --------------------------------------------------------------------------------

def samples(text: str) -> dict[tuple[str, frozenset], float]:
    parser = pytest.importorskip("prometheus_client.parser")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in parser.text_string_to_metric_families(text) for s in family.samples}


def labels(target: str = "openai:gpt-4o", **extra: str) -> frozenset:
    provider, model = split_target(target)
    return frozenset({"target": target, "provider": provider, "model": model, **extra}.items())


def test_prometheus_text_parses_back_to_the_recorded_counts() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([failed(latency_ms=100.0), served(latency_ms=800.0, depth=1)], REQ)
    monitor.record([skipped("anthropic:claude"), served(latency_ms=3000.0, ttft_ms=None)], REQ)
    monitor.breaker_opened("anthropic:claude")
    got = samples(monitor.to_prometheus())

    assert got[("evalkit_requests_total", labels(outcome="success"))] == 2
    assert got[("evalkit_requests_total", labels("anthropic:claude", outcome="error"))] == 1
    assert got[("evalkit_attempts_total", labels("anthropic:claude", error_kind="circuit_open"))] == 1
    assert got[("evalkit_attempts_total", labels(error_kind="none"))] == 2
    assert got[("evalkit_tokens_total", labels(category="input"))] == 2000
    assert got[("evalkit_cost_usd_total", labels())] == pytest.approx(0.006)
    assert got[("evalkit_fallbacks_total", labels())] == 1
    assert got[("evalkit_circuit_breaker_opens_total", frozenset({"target": "anthropic:claude"}.items()))] == 1
    latency = "evalkit_attempt_latency_seconds"
    assert got[(f"{latency}_bucket", labels(le="1.0"))] == 1
    assert got[(f"{latency}_bucket", labels(le="5.0"))] == 2
    assert got[(f"{latency}_bucket", labels(le="+Inf"))] == got[(f"{latency}_count", labels())] == 2
    assert got[(f"{latency}_sum", labels())] == pytest.approx(3.8)
    assert got[(f"{latency}_bucket", labels("anthropic:claude", le="0.1"))] == 1  # le is inclusive
    assert got[("evalkit_attempt_ttft_seconds_count", labels())] == 1


def test_every_family_has_help_and_type_lines() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([served()], REQ)
    lines = monitor.to_prometheus().splitlines()
    families = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    assert {line.split()[2] for line in lines if line.startswith("# HELP")} == families
    for line in lines:
        if not line.startswith("#"):
            name = line.split("{")[0]
            assert any(name == f or name.startswith(f + "_") for f in families), line


def test_label_values_are_escaped() -> None:
    nasty = 'we\\ird:mo"del\nv2'
    monitor = Monitor(clock=FakeClock())
    monitor.record([served(nasty)], REQ)
    text = monitor.to_prometheus()
    assert 'model="mo\\"del\\nv2"' in text and 'provider="we\\\\ird"' in text
    assert samples(text)[("evalkit_requests_total", labels(nasty, outcome="success"))] == 1


def test_counters_never_decrease_when_events_leave_the_window() -> None:
    clock = FakeClock()
    monitor = Monitor(window="1m", max_events=3, clock=clock)
    before = None
    for _ in range(5):
        monitor.record([failed(), served()], REQ)
        clock.now += 120
        now = samples(monitor.to_prometheus())
        if before is not None:
            assert all(now[key] >= value for key, value in before.items())
        before = now
    assert before[("evalkit_requests_total", labels(outcome="success"))] == 5
    assert monitor.summary_df().is_empty()


def test_cost_accumulates_exactly_in_decimal() -> None:
    monitor = Monitor(clock=FakeClock())
    for _ in range(10):
        monitor.record([served(cost="0.1")], REQ)
    assert 'evalkit_cost_usd_total{target="openai:gpt-4o",provider="openai",model="gpt-4o"} 1.0\n' in (
        monitor.to_prometheus())
    assert row(monitor.summary_df(), "openai", "gpt-4o")["cost_usd"] == Decimal(1)


def test_unpriced_targets_report_no_cost_rather_than_zero() -> None:
    monitor = Monitor(clock=FakeClock())
    monitor.record([served("local:llama", cost=None)], REQ)
    assert row(monitor.summary_df(), "local", "llama")["cost_usd"] is None
    assert "evalkit_cost_usd_total{" not in monitor.to_prometheus()


def test_importing_evalkit_does_not_import_polars() -> None:
    import subprocess
    import sys

    code = "import sys, evalkit, evalkit.router.monitor; print('polars' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
