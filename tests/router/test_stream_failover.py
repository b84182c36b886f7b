"""Streaming failover, scenario by scenario, against the emulator on loopback (issue 14's matrix).

Every stream fault the emulator injects × the three wires × streamed (read as it arrives) and
not × a Python-built ``FallbackChain`` and a tree built from YAML. The primary and the backup
are the same emulator model on two different wires, so a continuation from a prefill joins
seamlessly and the complete answer is known exactly: the model's healthy answer, asked first.
Checked each time: the caller gets that whole answer (a reader who applies each
``StreamRestart`` ends up showing exactly it), never a truncated success; the call ends within
its deadlines (every fault would hold it for ``HOLD_S`` otherwise); the attempts are bounded
and the server saw no request the router did not record; and the next call is healthy.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import evalkit
from evalkit.router import FallbackChain, RetryPolicy

WIRES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
NEXT_WIRE = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}
HOLD_S = 3.0  # how long a slow or stalled fault holds the stream
DEADLINE_S = 0.4
BOUND_S = 2.5  # a call that waited for the hold would take at least HOLD_S
KEY = "sk-test-STREAM-FAILOVER-0000"
FAULTS: dict[str, dict[str, str]] = {
    "slow_first_token": {"x-evalkit-fault": "slow_first_token", "x-evalkit-ttft-s": str(HOLD_S)},
    "stall_after_n": {"x-evalkit-fault": "stall", "x-evalkit-after-tokens": "4", "x-evalkit-stall-s": str(HOLD_S)},
    "cut_after_n": {"x-evalkit-fault": "cut", "x-evalkit-after-tokens": "4"},
    "malformed_at_n": {"x-evalkit-fault": "malformed", "x-evalkit-after-tokens": "4"},
    "missing_done": {"x-evalkit-fault": "no_done"},
    "backup_rejects_prefill": {"x-evalkit-fault": "cut", "x-evalkit-after-tokens": "4"},
}
FLEET = """\
version: 1
models:
  - name: sim-x
    wires: [openai, anthropic, gemini]
    price: {input: 1.0, output: 2.0}
    context_window: 100000
    latency: {ttft_ms: 1, tokens_per_s: 100000}
    output_tokens: 24
    skills: {default: 0.9}
  - name: sim-down
    wires: [openai]
    price: {input: 1.0, output: 2.0}
    context_window: 100000
    latency: {ttft_ms: 1, tokens_per_s: 100000}
    output_tokens: 8
    skills: {default: 0.9}
"""


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory):
    from evalkit.emulator import Emulator

    fleet = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet.write_text(FLEET)
    with Emulator(fleet, seed=5, time_scale=0.0, datasets=()) as emulator:
        yield emulator


DEADLINES = evalkit.Deadlines(headers_timeout_s=DEADLINE_S, ttft_timeout_s=DEADLINE_S,
                              stall_timeout_s=DEADLINE_S, total_timeout_s=2.0)
POLICY = RetryPolicy(retries_per_target=0, max_attempts=4, deadline_s=10.0, backoff_base_s=0.0, backoff_cap_s=0.0)


def _pair(emu: Any, wire: str, fault: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The primary's and the backup's target settings (as ``get_provider`` keywords)."""
    backup_headers = {"x-evalkit-prefill": "reject"} if fault == "backup_rejects_prefill" else {}
    primary = {"target": f"{WIRES[wire]}:sim-x", "base_url": emu.base_url_for(wire), "headers": FAULTS[fault]}
    other = NEXT_WIRE[wire]
    backup = {"target": f"{WIRES[other]}:sim-x", "base_url": emu.base_url_for(other), "headers": backup_headers}
    return primary, backup


def _chain(emu: Any, wire: str, fault: str, tmp_path: Path) -> Any:
    providers = [evalkit.get_provider(t["target"], api_key=KEY, base_url=t["base_url"], headers=t["headers"],
                                      deadlines=DEADLINES, prefill=True) for t in _pair(emu, wire, fault)]
    return FallbackChain(providers, policy=POLICY, breaker=None)


def _config(emu: Any, wire: str, fault: str, tmp_path: Path) -> Any:
    lines = ["version: 1", "targets:"]
    for name, t in zip(("primary", "backup"), _pair(emu, wire, fault)):
        headers = ", ".join(f'"{k}": "{v}"' for k, v in t["headers"].items())
        lines += [f"  {name}:", f"    model: {t['target']}", f"    base_url: {t['base_url']}",
                  "    api_key_env: STREAM_FAILOVER_KEY", f"    options: {{headers: {{{headers}}}}}", "    prefill: true",
                  f"    headers_timeout_s: {DEADLINE_S}", f"    ttft_timeout_s: {DEADLINE_S}",
                  f"    stall_timeout_s: {DEADLINE_S}", "    total_timeout_s: 2.0"]
    lines += ["router:", "  type: fallback", "  targets: [primary, backup]", "  mid_stream: continue",
              "  breaker: off", "  retry: {retries_per_target: 0, max_attempts: 4, deadline_s: 10}"]
    path = tmp_path / "routing.yaml"
    path.write_text("\n".join(lines) + "\n")
    return evalkit.Router.from_config(path)


async def _ask(router: Any, request: evalkit.ChatRequest, streamed: bool) -> tuple[Any, str | None]:
    """The outcome, and for a streamed call what a reader applying each restart shows at the end."""
    if not streamed:
        try:
            return await router.complete(request), None
        except evalkit.ProviderError as exc:
            return exc, None
    shown = ""
    stream = router.stream(request)
    try:
        async for item in stream:
            if isinstance(item, evalkit.StreamRestart):
                assert item.discarded == len(shown), "a restart discards exactly what was shown"
                shown = ""
            else:
                shown += item
    except evalkit.ProviderError as exc:
        return exc, shown
    return stream.response, shown


@pytest.mark.parametrize("build", [_chain, _config], ids=["chain", "config"])
@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("wire", sorted(WIRES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_ends_in_the_whole_answer_within_the_deadlines(emu: Any, fault: str, wire: str, streamed: bool,
                                                               build: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_FAILOVER_KEY", KEY)
    emu.reset()
    request = evalkit.ChatRequest.from_prompt(f"Explain {fault} on {wire}, please.", max_tokens=24, seed=3)
    reference = asyncio.run(_healthy_answer(emu, request))

    async def scenario() -> tuple[Any, str | None, float, Any]:
        async with asyncio.timeout(30), build(emu, wire, fault, tmp_path) as router:  # a hang fails, never blocks CI
            started = time.monotonic()
            outcome, shown = await _ask(router, request.replace(stream=streamed), streamed)
            elapsed = time.monotonic() - started
            emu.reset()  # the next call, without a fault, is healthy
            next_call = await router.targets[1].complete(request)
            return outcome, shown, elapsed, next_call

    outcome, shown, elapsed, next_call = asyncio.run(scenario())
    assert elapsed < BOUND_S, f"{elapsed:.2f}s: a deadline did not end the wait"
    assert isinstance(outcome, evalkit.ChatResponse), f"expected a recovered answer, got {outcome!r}"
    assert outcome.text == reference, "the whole answer, never a truncated or spliced one"
    assert outcome.finish_reason in (evalkit.FinishReason.STOP, evalkit.FinishReason.LENGTH)
    if streamed:
        assert shown == reference, "what the reader shows, restarts applied, is the answer"
    sent = [a for a in outcome.attempts if a.sent]
    assert 1 <= len(sent) <= 3
    assert [a.error_kind is None for a in sent] == ([True] if fault == "missing_done" else [False, True]) or (
        fault == "backup_rejects_prefill" and streamed), [(a.target, a.error_kind) for a in sent]
    assert sent[-1].recovery == _expected_recovery(fault, streamed), [(a.error_kind, a.recovery) for a in sent]
    assert emu.stats()["models"].get("sim-x", {}).get("requests", 0) <= 1, "only the health check after reset"
    assert next_call.text == reference


def _expected_recovery(fault: str, streamed: bool) -> str | None:
    """How the serving attempt took over: text had been shown only on a streamed call broken mid-answer."""
    if not streamed or fault in ("missing_done", "slow_first_token"):
        return None
    return "restart" if fault == "backup_rejects_prefill" else "continue"


async def _healthy_answer(emu: Any, request: evalkit.ChatRequest) -> str:
    async with evalkit.get_provider("openai:sim-x", api_key=KEY, base_url=emu.base_url_for("openai")) as p:
        return (await p.complete(request)).text


def test_a_primary_down_for_a_window_is_skipped_then_returned_to(emu: Any) -> None:
    """An outage window on the primary: the fallback serves with bounded probing, then the primary again."""
    emu.reset()
    request = evalkit.ChatRequest.from_prompt("Name a colour.", max_tokens=8, stream=True)

    async def scenario() -> tuple[list[str], int]:
        primary = evalkit.get_provider("openai:sim-down", api_key=KEY, base_url=emu.base_url_for("openai"))
        backup = evalkit.get_provider("anthropic:sim-x", api_key=KEY, base_url=emu.base_url_for("anthropic"))
        emu.script("sim-down", [{"kind": "503", "for_s": 1.0}])
        chain = FallbackChain([primary, backup], policy=POLICY,
                              breaker=evalkit.router.BreakerSettings(consecutive_failures=2, cooldown_s=0.3))
        served = []
        async with chain:
            for _ in range(30):
                served.append((await chain.complete(request)).provider)
                await asyncio.sleep(0.05)
        return served, emu.stats()["models"]["sim-down"]["by_status"].get("503", 0)

    served, refused = asyncio.run(scenario())
    assert "anthropic:sim-x" in served and served[-1] == "openai:sim-down", "back to the primary after its outage"
    # 1 s of outage, a 0.3 s cooldown: 2 failures to open, then about one probe per cooldown.
    # Without breakers every one of the ~17 calls inside the window would have reached it first.
    assert 2 <= refused <= 2 + 1.0 / 0.3 + 2, f"{refused} requests reached the down primary"
