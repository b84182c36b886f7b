"""The learned task classifier at routing time: its file, its features, its confidence, abstaining."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalkit
from evalkit.errors import ConfigError
from evalkit.router import TaskRouter
from evalkit.router._task_features import featurize
from evalkit.router.classifier import FeatureSpec, LearnedClassifier, request_text

from .fakes import ScriptedProvider

EXAMPLES = {
    "math": ["Solve: a train travels 60 km in 1.5 hours. What is its average speed?",
             "What is 17 * 23 + 4? Give the final number.", "If x + 3 = 10, what is x? Show your steps.",
             "A shop sells 3 apples for $2. How much do 12 apples cost?",
             "Compute the sum of the first 20 odd numbers.", "How many minutes are in 3.5 hours? Answer: <number>"],
    "code": ["Write a Python function that reverses a linked list.", "def add(a, b):\n    return a + b\n# add tests",
             "Fix this bug: `for i in range(len(xs)): xs.pop(i)` raises IndexError in Python.",
             "Implement binary search in Python and return the index or -1.",
             "```python\nclass Stack:\n    def push(self, x): ...\n```\nComplete the class.",
             "Refactor this JavaScript function to use async/await instead of callbacks."],
    "creative": ["Write a short poem about autumn leaves.", "Tell me a story about a dragon who learns to cook.",
                 "Compose a haiku about the sea at night.", "Write a limerick about a cat who loves jazz.",
                 "Imagine a city on Mars and describe a day in it as a diary entry.",
                 "Write song lyrics about leaving home for the first time."],
}


def _texts_and_labels() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, prompts in EXAMPLES.items():
        for prompt in prompts:
            texts.append(request_text(evalkit.ChatRequest.from_prompt(prompt)))
            labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def model() -> LearnedClassifier:
    from evalkit.analysis.classifier_training import train_task_classifier

    texts, labels = _texts_and_labels()
    trained, _ = train_task_classifier(texts, labels, folds=3, seed=0, abstain_below=0.4)
    return trained


@pytest.fixture()
def saved(model: LearnedClassifier, tmp_path: Path) -> Path:
    return model.save(tmp_path / "routing.classifier.json")


PROBES = [*(p for prompts in EXAMPLES.values() for p in prompts), "", "hello", "ünïcödé ✓ 数学 🙂",
          "x" * 50_000, "Write a poem about a Python function that adds numbers"]


def test_round_trip_gives_identical_predictions(model: LearnedClassifier, saved: Path) -> None:
    loaded = LearnedClassifier.load(saved)
    assert loaded.labels == model.labels
    assert (loaded.temperature, loaded.abstain_below) == (model.temperature, model.abstain_below)
    assert loaded.metrics == json.loads(json.dumps(dict(model.metrics)))
    for prompt in PROBES:
        request = evalkit.ChatRequest.from_prompt(prompt, system="be brief")
        assert loaded.predict_proba(request) == model.predict_proba(request)
        assert loaded.predict(request) == model.predict(request)


def test_the_files_are_inspectable_json_and_a_pickle_free_npz(model: LearnedClassifier, saved: Path) -> None:
    doc = json.loads(saved.read_text())
    assert doc["format"] == "evalkit.task_classifier" and doc["version"] == 1
    assert doc["labels"] == list(model.labels)
    assert doc["features"]["hash_bits"] == model.spec.hash_bits and doc["features"]["hash"] == "evalkit-poly64-v1"
    assert doc["calibration"] == {"method": "temperature", "temperature": model.temperature}
    assert doc["metrics"]["macro_accuracy"] == model.metrics["macro_accuracy"]
    weights = saved.with_suffix(".npz")
    assert doc["weights"]["file"] == weights.name
    with np.load(weights, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["bias", "dense_weights", "rows", "weights"]
        assert arrays["weights"].shape == (len(model.rows), len(model.labels))
    assert weights.stat().st_size < 2_000_000


def _edit_json(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    def apply(path: Path) -> Path:
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc))
        return path
    return apply


def _edit_npz(change: Callable[[dict[str, np.ndarray]], None], *, pickled: bool = False) -> Callable[[Path], Path]:
    """Rewrite the weights and record their new sha256, so only the content check can catch the change."""
    def apply(path: Path) -> Path:
        import hashlib

        npz = path.with_suffix(".npz")
        with np.load(npz, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        change(arrays)
        buffer = io.BytesIO()
        if pickled:
            arrays["rows"] = np.array([{"__reduce__": "os.system"}], dtype=object)
        np.savez(buffer, **arrays)
        npz.write_bytes(buffer.getvalue())
        _edit_json(lambda d: d["weights"].update(sha256=hashlib.sha256(buffer.getvalue()).hexdigest()))(path)
        return path
    return apply


def _append_byte(path: Path) -> Path:
    npz = path.with_suffix(".npz")
    npz.write_bytes(npz.read_bytes() + b"\0")
    return path


TAMPERS = {
    "foreign format": (_edit_json(lambda d: d.update(format="sklearn.pipeline")), "format", "json"),
    "future version": (_edit_json(lambda d: d.update(version=2)), "version", "json"),
    "duplicate labels": (_edit_json(lambda d: d.update(labels=["math", "math", "code"])), "labels", "json"),
    "one label": (_edit_json(lambda d: d.update(labels=["math"])), "labels", "json"),
    "other hash": (_edit_json(lambda d: d["features"].update(hash="python-hash")), "features.hash", "json"),
    "hash bits out of range": (_edit_json(lambda d: d["features"].update(hash_bits=40)), "features.hash_bits",
                               "json"),
    "a table too large for memory": (_edit_json(lambda d: (d.update(labels=[f"t{i}" for i in range(500)]),
                                                           d["features"].update(hash_bits=24))),
                                     "features.hash_bits", "json"),
    "n-gram sizes not numbers": (_edit_json(lambda d: d["features"].update(char_ngrams=["4"])),
                                 "features.char_ngrams", "json"),
    "other normalisation": (_edit_json(lambda d: d["features"].update(normalise="unicode casefold")),
                            "features.normalise", "json"),
    "negative temperature": (_edit_json(lambda d: d["calibration"].update(temperature=-1.0)),
                             "calibration.temperature", "json"),
    "threshold above 1": (_edit_json(lambda d: d.update(abstain_below=1.5)), "abstain_below", "json"),
    "dense scale zero": (_edit_json(lambda d: d["dense"].update(scale=0)), "dense.scale", "json"),
    "length range reversed": (_edit_json(lambda d: d["dense"].update(min=9.0, max=1.0)), "dense.max", "json"),
    "another dense feature": (_edit_json(lambda d: d["dense"].update(feature="log1p_tokens")), "dense.feature",
                              "json"),
    "weights outside the folder": (_edit_json(lambda d: d["weights"].update(file="../../etc/passwd.npz")),
                                   "weights.file", "json"),
    "weights missing": (_edit_json(lambda d: d["weights"].update(file="gone.npz")), "weights.file", "json"),
    "weights changed after saving": (_append_byte, "weights.sha256", "json"),
    "pickled object array": (_edit_npz(lambda a: None, pickled=True), "weights.file", "npz"),
    "weights of the wrong shape": (_edit_npz(lambda a: a.update(weights=a["weights"][:, :2])), "weights", "npz"),
    "non-finite bias": (_edit_npz(lambda a: a["bias"].__setitem__(0, np.nan)), "bias", "npz"),
    "slot beyond the table": (_edit_npz(lambda a: a["rows"].__setitem__(-1, 1 << 30)), "rows", "npz"),
    "array missing": (_edit_npz(lambda a: a.pop("dense_weights")), "dense_weights", "npz"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_a_tampered_or_foreign_file_is_a_config_error_naming_file_and_field(saved: Path, name: str) -> None:
    tamper, field, which = TAMPERS[name]
    tamper(saved)
    with pytest.raises(ConfigError) as caught:
        LearnedClassifier.load(saved)
    assert caught.value.field == field
    assert caught.value.file == str(saved if which == "json" else saved.with_suffix(".npz"))
    assert field in str(caught.value) and saved.stem in str(caught.value)


@pytest.mark.parametrize(("content", "line"), [("{\n  \"format\": \n}", 3), ("[1, 2]", None), ("", 1)])
def test_a_file_that_is_not_a_json_object_is_a_config_error(tmp_path: Path, content: str, line: int | None) -> None:
    path = tmp_path / "model.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        LearnedClassifier.load(path)
    assert caught.value.file == str(path) and caught.value.line == line


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        LearnedClassifier.load(tmp_path / "nope.json")


# Any code point, and often the ones with a meaning here: lone surrogates, NUL (the window joint), the role mark.
# (lists joined: hypothesis' text() with this alphabet almost never draws a surrogate)
ANY_TEXT = st.lists(st.characters(codec=None, exclude_categories=())
                    | st.sampled_from(["\ud800", "\udfff", "\x00", "\ue000", "\n", " "]), max_size=3000).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ANY_TEXT,
       system=st.none() | st.text(max_size=50))
def test_any_unicode_featurizes_and_probabilities_sum_to_one(model: LearnedClassifier, text: str,
                                                               system: str | None) -> None:
    slots, values, length = featurize(text, model.spec)
    assert slots.dtype == np.int32 and (np.diff(slots) > 0).all()
    assert ((slots >= 0) & (slots < 1 << model.spec.hash_bits)).all()
    if values.size:
        assert math.isclose(float(values @ values), 1.0, rel_tol=1e-4)
    assert length == math.log1p(len(text))
    request = evalkit.ChatRequest(messages=[{"role": "user", "content": text}], system=system)
    probs = model.predict_proba(request)
    assert list(probs) == list(model.labels)
    assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in probs.values())
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-5)
    prediction = model.predict(request)
    assert prediction.confidence == max(probs.values())


def test_below_the_threshold_the_classifier_abstains_and_the_task_router_takes_the_default(
        model: LearnedClassifier) -> None:
    request = evalkit.ChatRequest.from_prompt("Write a Python function that sorts a list of numbers.")
    prediction = model.predict(request)
    assert prediction.label == prediction.best == "code"
    at = dataclasses.replace(model, abstain_below=prediction.confidence)
    above = dataclasses.replace(model, abstain_below=min(1.0, prediction.confidence + 1e-6))
    assert at(request) == "code"
    assert above(request) is None
    assert above.predict(request).best == "code" and above.predict(request).abstained
    code, default = ScriptedProvider("code-model"), ScriptedProvider("general-model")
    assert TaskRouter({"code": code}, default=default, classifier=at).route_for(request) == ("code", code)
    assert TaskRouter({"code": code}, default=default, classifier=above).route_for(request) == (None, default)


def test_it_reads_the_whole_request_as_the_runner_sends_it(model: LearnedClassifier) -> None:
    request = evalkit.ChatRequest(messages=[{"role": "user", "content": "Compose a haiku about the sea."}],
                                  system="You are a Python coding assistant.")
    text = request_text(request)
    assert text == "\ue000system\nYou are a Python coding assistant.\n\n\ue000user\nCompose a haiku about the sea."
    assert model.predict(request) == model.predict(text)
    assert model.predict_proba(request) != model.predict_proba(evalkit.ChatRequest.from_prompt(
        "Compose a haiku about the sea."))


def test_a_long_prompt_is_read_through_a_bounded_window_and_its_length() -> None:
    spec = FeatureSpec(head_chars=1000, tail_chars=500)
    head, tail = "Read the story below. " * 50, " Question: who is the narrator?" * 20
    one = head + "alpha beta gamma " * 30_000 + tail
    other = head + "delta omega zeta " * 30_000 + tail  # same length as the other middle
    longer = head + "alpha beta gamma " * 40_000 + tail
    a, b, c = featurize(one, spec), featurize(other, spec), featurize(longer, spec)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]  # middle unseen
    assert np.array_equal(a[0], c[0]) and c[2] > a[2]  # but the length is


def test_lengths_beyond_any_seen_in_training_are_not_extrapolated(model: LearnedClassifier) -> None:
    low, high = model.dense_range
    window = model.spec.head_chars + model.spec.tail_chars
    head, tail = "Write a short poem about " + "a" * model.spec.head_chars, "b" * model.spec.tail_chars
    long_texts = [head + "c" * (math.ceil(math.exp(high)) * k) + tail for k in (2, 4)]
    assert all(len(t) > window for t in long_texts)
    first, second = (model.logits(t) for t in long_texts)
    assert np.array_equal(first, second)  # same window, both longer than the longest training text
    unclipped = dataclasses.replace(model, dense_range=(low, 1e9))
    assert not np.array_equal(*(unclipped.logits(t) for t in long_texts))


def test_features_do_not_depend_on_the_process_hash_seed() -> None:
    code = ("import sys; from evalkit.router._task_features import featurize, FeatureSpec; "
            "s, v, n = featurize('Solve this math word problem: 12 apples', FeatureSpec()); "
            "print(list(s), [round(float(x), 6) for x in v])")
    outputs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": ""},
                              capture_output=True, text=True, check=True).stdout for seed in ("1", "2")}
    slots, values, _ = featurize("Solve this math word problem: 12 apples", FeatureSpec())
    assert outputs == {f"{list(slots)} {[round(float(x), 6) for x in values]}\n"}


def test_loading_and_predicting_imports_neither_scipy_nor_the_training_code(saved: Path) -> None:
    code = (f"import sys, evalkit; from evalkit.router.classifier import LearnedClassifier; "
            f"assert 'numpy' not in sys.modules; "
            f"m = LearnedClassifier.load({str(saved)!r}); m(evalkit.ChatRequest.from_prompt('hi')); "
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in ('scipy', 'polars', 'pandas') "
            f"or k.startswith('evalkit.analysis')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_feature_spec_refuses_values_it_cannot_compute() -> None:
    for bad in ({"hash_bits": 9}, {"char_ngrams": (0,)}, {"word_ngrams": (3,)}, {"char_ngrams": (), "word_ngrams": ()},
                {"head_chars": 0, "tail_chars": 0}, {"head_chars": -1}):
        with pytest.raises(ValueError):
            FeatureSpec(**bad)
