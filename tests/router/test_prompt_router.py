"""PromptRouter: per-prompt pass chances, the cheapest target clearing the bar, a portable artifact, composition.

The model here is trained for real (``train_prompt_router``) on a small synthetic run whose outcomes depend
on the prompt's words: ``cheap`` passes arithmetic and fails essays, ``mid`` passes essays, ``strong``
passes everything. The end-to-end test runs the emulator, trains on that run and routes through
``get_provider`` targets on the same emulator.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from evalkit import ChatRequest, ConfigError, get_provider
from evalkit.analysis import load_results_table
from evalkit.analysis.prompt_routing import train_prompt_router
from evalkit.errors import AllTargetsFailed
from evalkit.router import FallbackChain, RetryPolicy
from evalkit.router.prompt import PromptModel, PromptRouter, RoutingRule, order_one, rank_targets

from .fakes import ScriptedProvider, fast_policy

TARGETS = ("cheap", "mid", "strong")
COSTS = {"cheap": "0.0001", "mid": "0.001", "strong": "0.01"}
ARITHMETIC = "Compute {a} plus {b} and give the number only."
ESSAY = "Write a {adj} essay about the {noun} and its history, in three paragraphs."
ADJECTIVES = ("short", "moving", "formal", "playful", "vivid", "sober")
NOUNS = ("river", "castle", "violin", "harbour", "forest", "lantern", "glacier", "market")


def synthetic_run(n: int = 72, seed: int = 3) -> tuple[dict[str, str], pl.DataFrame]:
    """Prompts and a results table in which who passes depends on the kind of prompt (10 % label noise)."""
    rng = random.Random(seed)
    prompts, rows = {}, []
    for i in range(n):
        arithmetic = i % 2 == 0
        item = f"item-{i}"
        prompts[item] = ARITHMETIC.format(a=rng.randint(10, 99), b=rng.randint(10, 99)) if arithmetic else \
            ESSAY.format(adj=rng.choice(ADJECTIVES), noun=rng.choice(NOUNS))
        passes = {"cheap": arithmetic, "mid": not arithmetic, "strong": True}
        for target in TARGETS:
            correct = passes[target] if rng.random() > 0.1 else not passes[target]
            rows.append({"item": item, "task_type": "arithmetic" if arithmetic else "essay", "model": target,
                         "correct": correct, "cost": COSTS[target]})
    return prompts, load_results_table(pl.DataFrame(rows), correct="correct", cost="cost")


@pytest.fixture(scope="module")
def model() -> PromptModel:
    prompts, results = synthetic_run()
    return train_prompt_router(prompts, results, folds=3, seed=0, target_quality=0.85)


def request(text: str, max_tokens: int = 16) -> ChatRequest:
    return ChatRequest.from_prompt(text, max_tokens=max_tokens)


PROBES = [request("Compute 12 plus 30 and give the number only."),
          request("Write a vivid essay about the castle and its history, in three paragraphs."),
          request("Something else entirely: name a colour."),
          ChatRequest(messages=[{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Compute 5 plus 7 and give the number only."}])]


def test_trained_model_sends_each_kind_of_prompt_to_the_cheapest_target_that_passes_it(model: PromptModel):
    assert model.targets == TARGETS
    assert model.costs == tuple(Decimal(COSTS[t]) for t in TARGETS)
    assert model.decide(PROBES[0]).choice == "cheap"  # arithmetic: the cheap target passes it
    assert model.decide(PROBES[1]).choice == "mid"    # essays: cheap fails, mid passes at a tenth of strong's price
    # A system turn never seen in training (every training prompt had one turn) must not swamp the words: the
    # turn-count feature had zero spread in training, and dividing by its rounding-error spread once gave 1e10.
    with_system = model.probabilities(PROBES[3])
    assert ((0.01 < with_system) & (with_system < 0.99)).all() and model.decide(PROBES[3]).choice == "cheap"
    record = model.rule.calibrated_to
    assert record["goal_value"] == 0.85 and record["met"] is True and "held_out" in record


def test_artifact_round_trip_routes_identically(model: PromptModel, tmp_path: Path):
    path = model.save(tmp_path / "router.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["router.json", "router.npz"]
    document = json.loads(path.read_text())
    assert document["format"] == "evalkit.prompt_router" and document["version"] == 1
    assert [t["cost_per_request_usd"] for t in document["targets"]] == [COSTS[t] for t in TARGETS]
    assert document["rule"]["kind"] == "min_quality" and "goal" in document["rule"]["calibrated_to"]
    loaded = PromptModel.load(path)
    for probe in PROBES:
        assert loaded.decide(probe) == model.decide(probe)
        assert loaded.probabilities(probe).tolist() == model.probabilities(probe).tolist()
    assert loaded.rule == model.rule and loaded.costs == model.costs


def _tamper(tmp_path: Path, model: PromptModel, change) -> Path:
    path = model.save(tmp_path / "router.json")
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(format="evalkit.task_classifier"), "format"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d["targets"][1].update(cost_per_request_usd=0.001), "targets[1].cost_per_request_usd"),
    (lambda d: d["targets"][0].update(cost_per_request_usd="-1"), "targets[0].cost_per_request_usd"),
    (lambda d: d["targets"][2].update(name="cheap"), "targets[2].name"),
    (lambda d: d["targets"][0]["calibration"].update(scale=float("nan")), "targets[0].calibration.scale"),
    (lambda d: d["rule"].update(kind="fastest"), "rule.kind"),
    (lambda d: d["rule"].update(value=1.5), "rule.value"),
    (lambda d: d["dense"].update(names=["chars"]), "dense.names"),
    (lambda d: d["dense"].update(scale=[1.0, 0.0]), "dense.scale"),
    (lambda d: d["features"].update(hash_bits=40), "features.hash_bits"),
    (lambda d: d["weights"].update(file="../elsewhere.npz"), "weights.file"),
    (lambda d: d["weights"].update(rows=1), "weights.rows"),
    (lambda d: d["targets"].pop(), "weights"),  # two targets in the JSON, three columns in the weights
])
def test_a_tampered_artifact_is_a_config_error_naming_the_file_and_field(model, tmp_path, change, field):
    path = _tamper(tmp_path, model, change)
    with pytest.raises(ConfigError) as caught:
        PromptModel.load(path)
    assert caught.value.field == field or (field == "weights" and caught.value.field in ("weights", "bias",
                                                                                          "dense_weights"))
    assert caught.value.file is not None and caught.value.file.endswith((".json", ".npz"))


def test_changed_weights_are_refused_by_their_sha256(model: PromptModel, tmp_path: Path):
    path = model.save(tmp_path / "router.json")
    npz = tmp_path / "router.npz"
    data = bytearray(npz.read_bytes())
    data[-1] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as caught:
        PromptModel.load(path)
    assert caught.value.field == "weights.sha256" and caught.value.file == str(path)


def test_weights_holding_a_pickle_are_refused(model: PromptModel, tmp_path: Path):
    import hashlib
    import io

    path = model.save(tmp_path / "router.json")
    buffer = io.BytesIO()
    np.savez(buffer, rows=np.array([object()], dtype=object), weights=np.zeros((1, 3)), bias=np.zeros(3),
             dense_weights=np.zeros((2, 3)))
    (tmp_path / "router.npz").write_bytes(buffer.getvalue())
    document = json.loads(path.read_text())
    document["weights"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError) as caught:
        PromptModel.load(path)
    assert caught.value.field == "weights.file"  # allow_pickle=False: numpy refuses to read it


# -- the rule --------------------------------------------------------------------------------------------


def test_min_quality_sends_to_the_cheapest_target_clearing_the_bar_then_falls_back_along_the_order():
    probs = [0.95, 0.80, 0.60, 0.85]
    costs = [0.010, 0.002, 0.0001, 0.002]
    # cleared: 0 (0.010), 1 (0.002), 3 (0.002): the cheapest first, the tie to the likelier; 2 below the bar last.
    assert order_one(probs, costs, "min_quality", 0.75) == [3, 1, 0, 2]


def test_when_no_target_clears_the_bar_the_most_likely_to_pass_goes_first():
    assert order_one([0.40, 0.55, 0.30], [0.001, 0.010, 0.0001], "min_quality", 0.9) == [1, 0, 2]


def test_unpriced_targets_rank_after_priced_ones_that_clear_the_bar_never_as_free():
    # The unpriced target is the likeliest to pass, yet an unknown price is not $0: priced ones come first.
    assert order_one([0.99, 0.80, 0.90], [None, 0.002, 0.001], "min_quality", 0.75) == [2, 1, 0]
    assert order_one([0.99, 0.80], [None, 0.002], "lambda", 1.0) == [1, 0]


def test_lambda_trades_quality_for_cost():
    probs, costs = [0.9, 0.7], [0.01, 0.0001]
    assert order_one(probs, costs, "lambda", 0.0) == [0, 1]     # λ = 0: quality only
    assert order_one(probs, costs, "lambda", 100.0) == [1, 0]   # 0.9 - 1.0 < 0.7 - 0.01


def test_the_router_and_the_offline_replay_rank_identically_ties_included():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 7))
        probs = np.round(rng.random(n), 1)  # rounded: many ties
        costs = np.where(rng.random(n) < 0.3, np.nan, np.round(rng.random(n), 1))
        kind = "min_quality" if rng.random() < 0.5 else "lambda"
        value = float(np.round(rng.random(), 1)) * (1 if kind == "min_quality" else 3)
        listed = [None if np.isnan(c) else float(c) for c in costs]
        assert order_one(probs.tolist(), listed, kind, value) == rank_targets(probs[None], costs, kind, value)[0].tolist()


def test_a_bar_out_of_range_or_both_rules_are_refused(model: PromptModel):
    with pytest.raises(ConfigError) as caught:
        RoutingRule("min_quality", 1.2)
    assert caught.value.field == "rule.value"
    with pytest.raises(ConfigError) as caught:
        PromptRouter(model, _fakes(), min_quality=0.8, lambda_=1.0)
    assert caught.value.field == "min_quality"


def test_targets_must_match_the_model_by_name_or_count(model: PromptModel):
    fakes = _fakes()
    with pytest.raises(ConfigError, match="no target given for 'strong'") as caught:
        PromptRouter(model, {"cheap": fakes[0], "mid": fakes[1]})
    assert caught.value.field == "targets"
    with pytest.raises(ConfigError, match="expected 3 targets"):
        PromptRouter(model, fakes[:2])


# -- the router ------------------------------------------------------------------------------------------


def _fakes(*scripts: list[str]) -> list[ScriptedProvider]:
    scripts = scripts or ([], [], [])
    return [ScriptedProvider(name, script) for name, script in zip(TARGETS, scripts)]


async def test_the_router_sends_to_its_decision_and_falls_back_along_the_order_on_errors(model: PromptModel):
    cheap, mid, strong = _fakes(["server"], [], [])
    router = PromptRouter(model, {"cheap": cheap, "mid": mid, "strong": strong})
    decision = router.route_for(PROBES[0])
    assert decision.choice == "cheap"
    response = await router.complete(PROBES[0])
    assert [a.target for a in response.attempts] == list(decision.order[:2])
    assert response.attempts[0].error_kind == "server" and response.provider == decision.order[1]
    assert (cheap.calls, mid.calls + strong.calls) == (1, 1)


async def test_a_hand_set_bar_replaces_the_calibrated_one(model: PromptModel):
    fakes = _fakes()
    strict = PromptRouter(model, fakes, min_quality=1.0)  # nothing clears it: the likeliest target goes first
    probs = model.probabilities(PROBES[0])
    assert strict.route_for(PROBES[0]).choice == TARGETS[int(np.argmax(probs))]
    lax = PromptRouter(model, fakes, min_quality=0.0)      # everything clears it: the cheapest
    assert (await lax.complete(PROBES[1])).provider == "cheap"


async def test_max_attempts_and_no_fallback_bound_what_is_sent(model: PromptModel):
    fakes = _fakes(["server"], ["server"], ["server"])
    with pytest.raises(AllTargetsFailed) as caught:
        await PromptRouter(model, fakes, max_attempts=2).complete(PROBES[0])
    assert len([a for a in caught.value.attempts if a.sent]) == 2
    fakes = _fakes(["server"], ["server"], ["server"])
    with pytest.raises(AllTargetsFailed) as caught:
        await PromptRouter(model, fakes, fallback_on_error=False).complete(PROBES[0])
    assert len(caught.value.attempts) == 1


async def test_its_retry_policy_decides_which_errors_end_the_call(model: PromptModel):
    # The default policy moves on after a 500 and stops on a content-filter refusal...
    fakes = _fakes(["content_filter"], [], [])
    with pytest.raises(AllTargetsFailed) as caught:
        await PromptRouter(model, fakes).complete(PROBES[0])
    assert len(caught.value.attempts) == 1
    # ...and the router's own policy overrides both.
    fakes = _fakes(["content_filter"], [], [])
    opted_in = RetryPolicy().with_actions({"content_filter": "next"})
    assert (await PromptRouter(model, fakes, policy=opted_in).complete(PROBES[0])).provider != "cheap"
    fakes = _fakes(["server"], [], [])
    with pytest.raises(AllTargetsFailed) as caught:
        await PromptRouter(model, fakes, policy=RetryPolicy().with_actions({"server": "stop"})).complete(PROBES[0])
    assert len(caught.value.attempts) == 1 and sum(f.calls for f in fakes) == 1


async def test_a_target_whose_window_cannot_hold_the_prompt_is_skipped_without_a_call(model: PromptModel):
    cheap, mid, strong = _fakes()
    cheap.context_window = 8
    response = await PromptRouter(model, [cheap, mid, strong]).complete(PROBES[0])
    assert cheap.calls == 0 and response.attempts[0].error_kind == "context_window"
    assert response.attempts[0].sent is False


async def test_a_prompt_router_composes_inside_a_fallback_chain(model: PromptModel):
    fakes = _fakes(["server"], ["server"], ["server"])
    backup = ScriptedProvider("backup")
    chain = FallbackChain([PromptRouter(model, fakes, max_attempts=1), backup],
                          policy=fast_policy(retries_per_target=0))
    response = await chain.complete(PROBES[1])
    assert response.provider == "backup"
    assert [a.target for a in response.attempts] == [model.decide(PROBES[1]).choice, "backup"]


# -- end to end: a real run on the emulator, trained on, then routed through get_provider targets -----------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_end_to_end_on_the_emulator_run_train_route(tmp_path: Path):
    from evalkit.emulator import Emulator
    from evalkit.emulator.fleet import default_fleet
    from evalkit.runner import RunOptions, run_suite

    specs = ["emulator:sim-small", "emulator:sim-medium", "emulator:sim-reasoner"]
    result = asyncio.run(run_suite("smoke", specs, options=RunOptions(concurrency=16), runs_dir=tmp_path,
                                   run_id="smoke", judge_spec="emulator:sim-large",
                                   emulator={"seed": 0, "time_scale": 0}, progress=False))
    model = train_prompt_router(result.run_dir, result.run_dir, folds=3, seed=0)
    saved = PromptModel.load(model.save(tmp_path / "router.json"))
    assert set(saved.targets) == {"openai:sim-small", "openai:sim-medium", "openai:sim-reasoner"}

    fleet = {m.name: m.price for m in default_fleet().models}

    def provider(name: str, base_url: str) -> object:
        price = fleet[name.partition(":")[2]]
        return get_provider(name, base_url=base_url, api_key="emu-key",
                            prices={"input": price.input, "output": price.output})

    async def route() -> None:
        with Emulator(seed=0, time_scale=0.0, datasets=()) as emu:
            ask = request("Compute 12 plus 30 and give the number only.", max_tokens=1024)
            async with PromptRouter(saved, {n: provider(n, emu.openai_base_url) for n in saved.targets}) as router:
                response = await router.complete(ask)
            assert response.provider == saved.decide(ask).choice and response.text
            assert [a.target for a in response.attempts] == [response.provider]
            # The first choice unreachable (a closed loopback port): the router moves on to its next choice.
            first, second = saved.decide(ask).order[:2]
            dead = f"http://127.0.0.1:{_closed_port()}/v1"
            targets = {n: provider(n, dead if n == first else emu.openai_base_url) for n in saved.targets}
            async with PromptRouter(saved, targets) as router:
                response = await router.complete(ask)
            assert [a.target for a in response.attempts] == [first, second]
            assert response.attempts[0].error_kind == "connection" and response.provider == second

    asyncio.run(route())
