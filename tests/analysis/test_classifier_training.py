"""Training the task classifier: cross-validation that never scores an item with a model that saw it."""

from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import evalkit
from evalkit.analysis import classifier_training
from evalkit.analysis._classifier_fit import (
    choose_threshold,
    fit_temperature,
    lbfgs,
    softmax,
    template_free_copies,
)
from evalkit.analysis.classifier_training import (
    examples_from_dataset,
    examples_from_run,
    train_task_classifier,
)
from evalkit.datasets import load_dataset
from evalkit.errors import ConfigError
from evalkit.router.classifier import request_text
from tests.shared import REPO, shared_path


@pytest.fixture(scope="module")
def default_examples() -> classifier_training.TrainingExamples:
    return examples_from_dataset(load_dataset("default"))


@pytest.fixture(scope="module")
def default_model(default_examples):  # type: ignore[no-untyped-def]
    texts, labels, ids = default_examples
    return train_task_classifier(texts, labels, ids=ids, folds=5, seed=0)


def _random_items(n: int, labels: int, seed: int, copies: int = 1) -> tuple[list[str], list[str]]:
    """Texts of made-up words, each text its own words, labels at random: nothing to learn across items."""
    rng = random.Random(seed)
    texts, names = [], []
    for i in range(n):
        text = " ".join("".join(rng.choice("bcdfghjklmnpqrstvwz") for _ in range(8)) for _ in range(12))
        label = f"type{rng.randrange(labels)}"
        texts += [text] * copies
        names += [label] * copies
    return texts, names


def test_default_suite_cross_validated_report(default_model, default_examples) -> None:  # type: ignore[no-untyped-def]
    model, report = default_model
    texts, labels, ids = default_examples
    assert report.macro_accuracy >= 0.95  # the target, measured by 5-fold cross-validation
    assert report.labels == tuple(sorted(set(labels))) == model.labels
    assert sum(map(sum, report.confusion)) == report.n == len(texts)
    counts = Counter(labels)
    for i, label in enumerate(report.labels):
        assert report.per_label[label].support == counts[label] == sum(report.confusion[i])
        assert report.per_label[label].recall == report.confusion[i][i] / counts[label]
    agree = [p == t for p, t in zip(report.cross_fit_predictions, labels)]
    assert report.accuracy == sum(agree) / len(agree)
    assert report.ids == ids
    text = report.to_text()
    assert all(label in text for label in report.labels) and "macro accuracy" in text
    summary = json.loads(json.dumps(report.to_dict()))
    assert summary["macro_accuracy"] == report.macro_accuracy and "items" not in summary
    assert len(report.to_dict(items=True)["items"]["prediction"]) == len(texts)
    assert model.metrics == report.to_dict()


def _held_out_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("_task_items", REPO / "benchmarks" / "_task_items.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHARED_DATA = shared_path("data", must_contain=("humaneval", "gsm8k", "banking77", "squality"))


@pytest.mark.skipif(SHARED_DATA is None, reason="source data not found at <repo>/../shared/data or /work/shared/data")
def test_items_of_the_same_sources_not_in_the_suite_are_routed_to_their_task(default_model,  # type: ignore[no-untyped-def]
                                                                             default_examples) -> None:
    model, _ = default_model
    rows = _held_out_module().held_out_items(SHARED_DATA, set(default_examples.ids), per_source=30)
    assert rows and not {row["id"] for row in rows} & set(default_examples.ids)
    by_type: dict[str, list[bool]] = {}
    for row in rows:
        label = model(evalkit.ChatRequest(messages=row["messages"]))  # None (abstained) counts as a miss
        by_type.setdefault(row["task_type"], []).append(label == row["task_type"])
    assert set(by_type) == {"code", "math", "factual_qa", "classification", "long_document"}  # MT-Bench: none left
    assert sum(map(sum, by_type.values())) / len(rows) >= 0.90
    assert all(sum(hits) / len(hits) >= 0.90 for hits in by_type.values()), {
        t: sum(h) / len(h) for t, h in by_type.items()}


def test_cross_fitted_predictions_come_from_models_that_did_not_see_the_item(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    texts, labels = _random_items(40, 3, seed=1)
    texts += ["solve 2 + 2", "solve 3 + 5", "write a poem", "write a song"] * 3
    labels += ["math", "math", "creative", "creative"] * 3  # duplicates: same text, same fold
    fits = []
    real_fit = classifier_training._Trainer.fit

    def spy(self, subset, label_names):  # type: ignore[no-untyped-def]
        model = real_fit(self, subset, label_names)
        fits.append((set(subset.tolist()), model))
        return model

    monkeypatch.setattr(classifier_training._Trainer, "fit", spy)
    _, report = train_task_classifier(texts, labels, folds=4, seed=3)
    fold_of = np.array(report.fold_of)
    assert len(fits) == 4 + 1 and fits[-1][0] == set(range(len(texts)))  # one model per fold, then the final one
    for fold, (trained_on, model) in enumerate(fits[:-1]):
        scored = set(np.flatnonzero(fold_of == fold).tolist())
        assert scored and not scored & trained_on and scored | trained_on == set(range(len(texts)))
        for i in scored:
            assert model.labels[int(np.argmax(model.logits(texts[i])))] == report.cross_fit_predictions[i]
    for text in set(texts):
        assert len({report.fold_of[i] for i, t in enumerate(texts) if t == text}) == 1
    for label in set(labels):  # stratified: each fold holds its share of every label's texts, give or take one
        per_fold = Counter(f for f, _ in {(f, t) for f, t, l in zip(report.fold_of, texts, labels) if l == label})
        assert max(per_fold.values()) - min(per_fold.get(f, 0) for f in range(4)) <= 1


def test_an_item_the_model_memorised_is_not_scored_by_that_model() -> None:
    """Random labels on texts that share nothing: a model that saw an item knows it, one that did not guesses.

    Each text comes twice (a duplicate is the item itself), so folds that split
    duplicates would leak just as scoring an item with its own model would.
    """
    texts, labels = _random_items(60, 3, seed=7, copies=2)
    model, report = train_task_classifier(texts, labels, folds=5, seed=0, template_weight=0.0)
    in_sample = np.mean([model.predict(t).best == label for t, label in zip(texts, labels)])
    assert in_sample >= 0.95
    assert report.accuracy <= 0.6  # chance is 1/3; a leak would score as the in-sample model does


def test_same_seed_same_model_and_report(default_examples) -> None:  # type: ignore[no-untyped-def]
    texts, labels, _ = default_examples
    subset = list(range(0, 300, 3))
    run = [train_task_classifier([texts[i] for i in subset], [labels[i] for i in subset], folds=3, seed=s)
           for s in (5, 5, 6)]
    (m1, r1), (m2, r2), (_, r3) = run
    assert np.array_equal(m1.rows, m2.rows) and np.array_equal(m1.weights, m2.weights)
    assert np.array_equal(m1.bias, m2.bias) and m1.temperature == m2.temperature
    assert r1 == r2
    assert r1.fold_of != r3.fold_of  # another seed deals other folds


def test_training_texts_are_what_the_request_carries(default_examples) -> None:  # type: ignore[no-untyped-def]
    dataset = load_dataset("default")
    for item, text in zip(dataset, default_examples.texts):
        assert text == request_text(evalkit.ChatRequest(messages=item.messages))
        assert item.id not in text  # nothing a request does not carry
    banking = next(i for i, item in enumerate(dataset) if item.id.startswith("banking77"))
    assert default_examples.texts[banking].startswith("\ue000system\nYou are an intent classifier")


def test_examples_from_a_run_directory_check_the_dataset(tmp_path: Path) -> None:
    smoke = load_dataset("smoke")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"config": {"suite": "smoke"}, "dataset": {"sha256": smoke.sha256}}))
    texts, labels, ids = examples_from_run(tmp_path)
    assert ids == tuple(item.id for item in smoke) and len(texts) == len(labels) == len(smoke)
    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"suite": "smoke"}, "dataset": {"sha256": "0"}}))
    with pytest.raises(ConfigError) as caught:
        examples_from_run(tmp_path)
    assert caught.value.field == "sha256"
    with pytest.raises(ConfigError, match="not a run directory"):
        examples_from_run(tmp_path / "elsewhere")


def test_template_free_copies_drop_the_shared_wrapper_and_keep_the_case() -> None:
    wrap = "Solve this math word problem. Give the answer on the last line."
    texts = [request_text(evalkit.ChatRequest.from_prompt(f"{wrap}\n\n{case}")) for case in (
        "Tom has 3 apples and buys 4 more.", "A train leaves at 9 and arrives at 11.", "Sam reads 12 pages a day.")]
    texts.append(request_text(evalkit.ChatRequest.from_prompt("Write a haiku about rain.")))
    copies = template_free_copies(texts)
    assert copies[0] == "\ue000user\nTom has 3 apples and buys 4 more."
    assert copies[3] is None  # nothing shared: no copy
    system = [request_text(evalkit.ChatRequest(messages=[{"role": "system", "content": "Label the intent."},
                                                         {"role": "user", "content": case}]))
              for case in ("I lost my card", "My transfer failed", "How do I top up?")]
    assert template_free_copies(system) == [f"\ue000user\n{c}" for c in
                                            ("I lost my card", "My transfer failed", "How do I top up?")]


def test_the_abstain_threshold_rule() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, True, True, False, True])
    assert choose_threshold(confidence, correct, target_accuracy=0.8, min_confidence=0.5)[0] == 0.6
    assert choose_threshold(confidence, correct, target_accuracy=0.9, min_confidence=0.5)[0] == 0.8
    assert choose_threshold(confidence, correct, target_accuracy=0.8, min_confidence=0.75)[0] == 0.75
    threshold, rule = choose_threshold(confidence, ~correct, target_accuracy=0.9, min_confidence=0.5)
    assert threshold == 1.0 and "abstains on every request" in rule
    tie = choose_threshold(np.array([0.9, 0.9]), np.array([True, False]), target_accuracy=0.9, min_confidence=0.5)
    assert tie[0] == 1.0  # tied confidences are accepted or refused together


def test_temperature_scaling_softens_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    scores = rng.normal(size=(400, 3))
    scores[np.arange(400), y] += 1.0
    temperature = fit_temperature(scores * 10, y)  # ten times too sure
    assert 5 < temperature < 20
    nll = lambda t: -np.log(softmax(scores * 10, t)[np.arange(400), y]).mean()
    assert nll(temperature) < nll(1.0)


def test_a_fixed_threshold_and_the_deployed_predictions(default_examples) -> None:  # type: ignore[no-untyped-def]
    texts, labels, _ = default_examples
    model, report = train_task_classifier(texts[::4], labels[::4], folds=3, abstain_below=0.99)
    assert model.abstain_below == report.abstain_below == 0.99 and report.threshold_rule == "given by the caller"
    deployed = report.deployed_predictions
    for label, confidence, shown in zip(report.cross_fit_predictions, report.cross_fit_confidence, deployed):
        assert shown == (label if confidence >= 0.99 else None)
    assert report.coverage == sum(d is not None for d in deployed) / len(deployed)


@pytest.mark.parametrize(("texts", "labels", "options", "message"), [
    (["a", "b"], ["x"], {}, "differ in length"),
    (["a", "b", "c"], ["x", "x", "x"], {}, "two or more task types"),
    (["a", "b", "c", "d"], ["x", "y", "x", "y"], {"folds": 5}, "folds"),
    (["a", "b", "c", "d"], ["x", "y", "x", ""], {}, "non-empty"),
    (["a", "b", "c", "d"], ["x", "y", "x", "y"], {"folds": 2, "template_weight": 2.0}, "template_weight"),
])
def test_bad_training_input_is_one_clear_error(texts, labels, options, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        train_task_classifier(texts, labels, **options)


def test_our_lbfgs_finds_the_minimum_scipy_finds() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 30)), rng.integers(0, 2, 200)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:  # L2-penalised logistic regression
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        value = float(np.mean(np.logaddexp(0, z) - y * z) + 0.05 * w @ w)
        return value, x.T @ (p - y) / len(y) + 0.1 * w

    ours, _, converged = lbfgs(loss, np.zeros(30))
    theirs = minimize(loss, np.zeros(30), jac=True, method="L-BFGS-B", options={"gtol": 1e-9}).x
    assert converged and np.allclose(ours, theirs, atol=1e-4)
    assert loss(ours)[0] <= loss(theirs)[0] + 1e-9
