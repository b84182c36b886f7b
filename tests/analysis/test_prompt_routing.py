"""Per-prompt routing, trained and judged honestly: cross-fitted replay, calibration that lands, determinism.

Synthetic runs pin down the mechanism (who scores which item, what a memorising model would show);
RouteLLM's GPT-4 vs Mixtral data in ``../shared`` checks the calibration on real outcomes.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from evalkit import ConfigError
from evalkit.analysis import load_results_table, load_routellm
from evalkit.analysis._prompt_cross import inner_scores, outer_scores, prepare
from evalkit.analysis._prompt_fit import featurize_all, fit_pass_models
from evalkit.analysis.prompt_routing import (
    evaluate_prompt_router,
    routellm_priced,
    routellm_prompts,
    run_prompts,
    train_prompt_router,
)
from tests.shared import shared_path

SHARED = shared_path("data", must_contain=("routellm", "mt_bench"))
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data (RouteLLM's results) is not here")

WORDS = ("amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "heath", "indigo", "jasper", "kelp",
         "lichen", "marble", "nectar", "onyx", "pumice", "quartz", "rust", "slate", "topaz")


def noise_run(n: int = 120, seed: int = 5) -> tuple[dict[str, str], pl.DataFrame]:
    """Outcomes that are pure coin flips, on prompts that are each unique (a rare token per item).

    A model that saw an item can memorise its outcome through its token; nothing carries over to a new item.
    """
    rng = random.Random(seed)
    prompts, rows = {}, []
    for i in range(n):
        item = f"item-{i}"
        tag = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(8))  # letters: digits all fold to 0
        prompts[item] = f"Describe the {rng.choice(WORDS)} sample. Reference code {tag}."
        for target, rate, cost in (("weak", 0.5, "0.001"), ("strong", 0.7, "0.01")):
            rows.append({"item": item, "task_type": "describe", "model": target, "correct": rng.random() < rate,
                         "cost": cost})
    return prompts, load_results_table(pl.DataFrame(rows), correct="correct", cost="cost")


def auc(scores: np.ndarray, passed: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    k = int(passed.sum())
    return float((ranks[passed].sum() - k * (k + 1) / 2) / (k * (len(passed) - k)))


def test_every_model_scores_only_folds_it_was_not_trained_on():
    prompts, results = noise_run()
    report = evaluate_prompt_router(prompts, results, folds=4, seed=1, n_boot=50)
    fits = report.fits
    assert len(fits) == 4 + 4 * 3 // 2  # one outer model per fold, one inner model per pair of folds
    scored_by = {}
    for fit in fits:
        assert fit["scored"], fit
        assert not set(fit["scored"]) & set(fit["trained_on"]), fit
        assert len(fit["trained_on"]) in (2, 3)
        for fold in fit["scored"]:
            scored_by.setdefault(fold, []).append(fit["model"])
    # each fold: scored once by its outer model and once by each of the three pair models that left it out
    assert sorted(len(v) for v in scored_by.values()) == [4, 4, 4, 4]


def test_a_model_that_memorises_its_training_items_shows_nothing_when_cross_fitted():
    prompts, results = noise_run()
    prep = prepare(prompts, results, targets=None, metric="score", folds=4, seed=0, spec=None, l2=1e-6)
    passed = prep.data.scores[:, 0] > 0.5
    everything = np.arange(len(prep.data))
    in_sample = fit_pass_models(prep.features, everything, prep.data.scores, prep.data.weights, 1e-6)
    # The features can memorise: scored on the items it was trained on, the model looks near-perfect ...
    assert auc(in_sample.scores(prep.features, everything)[:, 0], passed) > 0.95
    # ... cross-fitted, it is a coin flip, as the outcomes are.
    assert abs(auc(outer_scores(prep)[:, 0], passed) - 0.5) < 0.15
    for k, scores in inner_scores(prep).items():
        assert np.isnan(scores[prep.fold == k]).all() and not np.isnan(scores[prep.fold != k]).any()
    report = evaluate_prompt_router(prompts, results, folds=4, seed=0, l2=1e-6, n_boot=200)
    oracle, router = report.row("oracle"), report.row("router")
    assert router["quality"] < oracle["quality"] - 0.1  # a leak would let the router reach the oracle
    assert report.metrics["beats_random"] is False


def test_related_items_share_a_fold_so_no_model_scores_a_relative_of_its_training_items():
    prompts, results = noise_run(n=60)
    conversation = {item: f"conv-{int(item.split('-')[1]) // 2}" for item in prompts}  # two turns each
    grouped = prepare(prompts, results, targets=None, metric="score", folds=3, seed=0, spec=None, l2=None,
                      groups=conversation)
    fold_of = dict(zip(grouped.data.item_ids, grouped.fold.tolist()))
    assert all(fold_of[f"item-{2 * i}"] == fold_of[f"item-{2 * i + 1}"] for i in range(30))
    loose = prepare(prompts, results, targets=None, metric="score", folds=3, seed=0, spec=None, l2=None)
    loose_fold = dict(zip(loose.data.item_ids, loose.fold.tolist()))
    assert any(loose_fold[f"item-{2 * i}"] != loose_fold[f"item-{2 * i + 1}"] for i in range(30))


def test_same_seed_same_report_other_seed_other_folds():
    prompts, results = noise_run(n=60)
    first = evaluate_prompt_router(prompts, results, folds=3, seed=4, n_boot=100)
    again = evaluate_prompt_router(prompts, results, folds=3, seed=4, n_boot=100)
    assert first.rows.equals(again.rows) and first.curve.equals(again.curve) and first.routed == again.routed
    assert first.metrics == again.metrics
    other = prepare(prompts, results, targets=None, metric="score", folds=3, seed=5, spec=None, l2=None)
    same = prepare(prompts, results, targets=None, metric="score", folds=3, seed=4, spec=None, l2=None)
    assert not np.array_equal(other.fold, same.fold)
    model_a = train_prompt_router(prompts, results, folds=3, seed=4)
    model_b = train_prompt_router(prompts, results, folds=3, seed=4)
    assert np.array_equal(model_a.weights, model_b.weights) and model_a.rule == model_b.rule


def test_goal_and_rule_arguments_are_checked():
    prompts, results = noise_run(n=30)
    with pytest.raises(ValueError, match="not both"):
        train_prompt_router(prompts, results, folds=3, target_quality=0.8, target_cost=0.01)
    with pytest.raises(ValueError, match="rule must be one of"):
        train_prompt_router(prompts, results, folds=3, rule="fastest")
    with pytest.raises(ValueError, match="needs task_table"):
        evaluate_prompt_router(prompts, results, folds=3, target_quality="task_table", n_boot=10)
    with pytest.raises(ValueError, match="no prompt for item"):
        train_prompt_router({k: v for k, v in list(prompts.items())[1:]}, results, folds=3)


def test_run_prompts_refuses_a_dataset_changed_since_the_run(tmp_path: Path):
    dataset = tmp_path / "suite.jsonl"
    row = {"id": "q1", "task_type": "math", "prompt": "What is 2 + 2?", "reference": 4, "grader": "numeric"}
    dataset.write_text(json.dumps(row) + "\n")
    from evalkit.datasets import load_dataset

    run = tmp_path / "run"
    run.mkdir()
    manifest = {"dataset": {"name": "suite", "path": str(dataset), "sha256": load_dataset(dataset).sha256}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    texts = run_prompts(run)
    assert list(texts) == ["q1"] and texts["q1"].endswith("user\nWhat is 2 + 2?")
    dataset.write_text(json.dumps({**row, "prompt": "What is 3 + 3?"}) + "\n")
    with pytest.raises(ConfigError) as caught:
        run_prompts(run)
    assert caught.value.field == "dataset.sha256" and caught.value.file == str(run / "manifest.json")


def test_a_task_table_is_a_baseline_and_can_be_the_goal():
    prompts, results = noise_run(n=60)
    table = {"describe": "strong", "*": "weak"}
    report = evaluate_prompt_router(prompts, results, folds=3, task_table=table, target_quality="task_table",
                                    n_boot=100)
    row = report.row("task_table")
    assert row["quality"] == pytest.approx(report.row("best")["quality"]) and row["share_best"] == 1.0
    assert all("the task table's" in c["goal"] for c in report.calibration)
    figure = report.figure()
    assert figure.axes and figure.axes[0].get_xlabel() == "USD per request"


# -- on RouteLLM's GPT-4 vs Mixtral results -------------------------------------------------------------------


@needs_shared
def test_routellm_prompts_cover_every_item_the_loader_returns():
    for benchmark in ("gsm8k", "mt_bench"):
        items = set(load_routellm(SHARED, benchmark).get_column("item_id").to_list())
        assert items <= set(routellm_prompts(SHARED, benchmark))
    _, priced = routellm_priced(SHARED, "gsm8k")
    costs = priced.group_by("target").agg(pl.col("cost_usd").cast(pl.Float64).mean()).sort("target").rows()
    assert costs[0][0] == "gpt-4-1106-preview" and costs[0][1] > 10 * costs[1][1] > 0


@pytest.fixture(scope="module")
def gsm8k():
    if SHARED is None:
        pytest.skip("../shared/data (RouteLLM's results) is not here")
    return routellm_priced(SHARED, "gsm8k")


@needs_shared
@pytest.mark.parametrize("goal", [("quality", 0.78), ("cost", 0.0025)])
def test_calibrated_router_lands_where_it_was_calibrated_on_held_out_items(gsm8k, goal):
    """The bar is chosen on four folds and used on the fifth, for each fold; the cross-fitted result must land
    on the goal within sampling error.

    Tolerance: the realised quality is a mean over n = 1,307 items, SE = sqrt(q(1-q)/n) ≈ 0.0115 at q = 0.78;
    the bar itself is estimated on ~1,045 items (same SE again), and the two add: SD ≈ 0.016. 2.5 SD = 0.04.
    Cost: the cost of a routed item is ~$0.0001 or ~$0.0043 (Mixtral or GPT-4), so the mean's SE is the share
    sent to GPT-4's SE (≈ 0.014) × the price gap ≈ $0.00006, doubled for the estimated bar: 2.5 SD ≈ $0.0002.
    """
    prompts, results = gsm8k
    kind, value = goal
    arguments = {"target_quality": value} if kind == "quality" else {"target_cost": value}
    report = evaluate_prompt_router(prompts, results, folds=5, seed=0, n_boot=200, axis="share", **arguments)
    router = report.row("router")
    if kind == "quality":
        assert abs(router["quality"] - value) <= 0.04, report.summary()
    else:
        assert abs(router["cost_per_request_usd"] - value) <= 0.0002, report.summary()
    for fold in report.calibration:
        assert fold["met"] and fold["goal_value"] == value
    # and the router is worth having: above random at the same share of GPT-4 calls
    assert router["quality"] > report.row("random")["quality"]
    assert report.metrics["beats_random"] is True and 0.5 < report.metrics["apgr_low"]
    assert report.metrics["cpt50"] is not None and report.metrics["cpt50"] < 0.5


@needs_shared
def test_trained_model_reproduces_its_held_out_calibration_on_gsm8k(gsm8k, tmp_path: Path):
    from evalkit.router.prompt import PromptModel

    prompts, results = gsm8k
    model = train_prompt_router(prompts, results, folds=5, seed=0, target_quality=0.8)
    record = model.rule.calibrated_to
    assert record["met"] and abs(record["quality"] - 0.8) < 0.02
    assert model.metrics["targets"]["gpt-4-1106-preview"]["auc"] > 0.6  # prompts do say something on GSM8K
    loaded = PromptModel.load(model.save(tmp_path / "gsm8k.json"))
    texts = [prompts[i] for i in list(prompts)[:200]]
    gpt4_share = np.mean([loaded.decide(t).choice == "gpt-4-1106-preview" for t in texts])
    assert math.isclose(gpt4_share, np.mean([model.decide(t).choice == "gpt-4-1106-preview" for t in texts]))
    assert 0.2 < gpt4_share < 1.0  # some prompts go to Mixtral, most to GPT-4 at this bar


def test_featurize_all_matches_what_the_router_computes():
    from evalkit.router._task_features import FeatureSpec, featurize
    from evalkit.router.prompt import dense_features

    texts = ["\ue000user\nhello there", "\ue000system\nBe brief.\n\n\ue000user\nWhat is 2+2?"]
    features = featurize_all(texts, FeatureSpec())
    for i, text in enumerate(texts):
        slots, values, log_length = featurize(text, FeatureSpec())
        row = features.sparse[i]
        assert row.indices.tolist() == slots.tolist() and np.allclose(row.data, values)
        assert features.dense[i].tolist() == list(dense_features(text, log_length))
