"""A task node's ``classifier:`` in a routing config: the seed's keywords, their settings, or a learned file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import evalkit
from evalkit.errors import ConfigError
from evalkit.router import TaskRouter
from evalkit.router.classifier import LearnedClassifier
from evalkit.router.tasks import KeywordClassifier

from .test_classifier import _texts_and_labels


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory) -> Path:
    from evalkit.analysis.classifier_training import train_task_classifier

    texts, labels = _texts_and_labels()
    model, _ = train_task_classifier(texts, labels, folds=3, seed=0, abstain_below=0.4)
    return model.save(tmp_path_factory.mktemp("clf") / "routing.classifier.json")


def _config(folder: Path, classifier: str) -> Path:
    path = folder / "routing.yaml"
    path.write_text(textwrap.dedent(f"""\
        router:
          type: task
          routes:
            math: openai:gpt-4o-mini
            code: anthropic:claude-3-5-haiku-latest
            creative: gemini:gemini-2.0-flash
          default: openai:gpt-4o
        """) + textwrap.indent(classifier, "  ") + "\n")
    return path


@pytest.fixture(autouse=True)
def _keys(monkeypatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "sk-test-0123456789")


def _task_router(path: Path) -> TaskRouter:
    router = evalkit.Router.from_config(path)
    assert isinstance(router, TaskRouter)
    return router


def test_without_a_classifier_the_seeds_keywords_decide(tmp_path: Path) -> None:
    for text in ("", "classifier: keywords"):
        router = _task_router(_config(tmp_path, text))
        assert isinstance(router.classifier, KeywordClassifier)


def test_keyword_settings_still_configure_the_keywords(tmp_path: Path) -> None:
    router = _task_router(_config(tmp_path, "classifier: {simple_qa_max_words: 5, default: chat}"))
    assert router.classifier == KeywordClassifier(simple_qa_max_words=5, default="chat")


def test_a_learned_file_beside_the_yaml_routes_unlabelled_prompts(tmp_path: Path, classifier_file: Path) -> None:
    (tmp_path / "routing.classifier.json").write_bytes(classifier_file.read_bytes())
    (tmp_path / "routing.classifier.npz").write_bytes(classifier_file.with_suffix(".npz").read_bytes())
    router = _task_router(_config(tmp_path, "classifier: {file: routing.classifier.json}"))  # relative to the YAML
    assert isinstance(router.classifier, LearnedClassifier)
    prompt = evalkit.ChatRequest.from_prompt("Write a Python function that sorts a list of tuples by key.")
    task, target = router.route_for(prompt)
    assert task == "code" and target.name == "anthropic:claude-3-5-haiku-latest"
    labelled = evalkit.ChatRequest.from_prompt("Write a poem.", metadata={"task_type": "math"})
    assert router.route_for(labelled) == ("math", router.routes["math"])  # an explicit task type wins


def test_min_confidence_overrides_the_files_threshold(tmp_path: Path, classifier_file: Path) -> None:
    router = _task_router(_config(tmp_path, f"classifier: {{file: {classifier_file}, min_confidence: 1.0}}"))
    assert router.classifier.abstain_below == 1.0
    prompt = evalkit.ChatRequest.from_prompt("Write a Python function that sorts a list of tuples by key.")
    assert router.route_for(prompt) == (None, router.default)  # abstains: the default route


@pytest.mark.parametrize(("classifier", "field", "says"), [
    ("classifier: {file: nowhere.json}", "router.classifier.file", "no such file"),
    ("classifier: {file: x.json, min_confidence: 2}", "router.classifier.min_confidence", "between 0 and 1"),
    ("classifier: {file: x.json, rules: {}}", "router.classifier.rules", "unknown field"),
    ("classifier: learned", "router.classifier", "expected keywords"),
])
def test_a_bad_classifier_is_one_located_error(tmp_path: Path, classifier: str, field: str, says: str) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError) as caught:
        evalkit.Router.from_config(_config(tmp_path, classifier))
    assert caught.value.field == field and says in str(caught.value)
    assert caught.value.file and caught.value.file.endswith("routing.yaml") and caught.value.line == 8


def test_a_foreign_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError) as caught:
        evalkit.Router.from_config(_config(tmp_path, "classifier: {file: x.json}"))
    assert "x.json" in str(caught.value)
