"""What a gateway export cannot carry, said in words: the notes of :func:`evalkit.export.export_with_notes`.

A gateway routes on what the caller names; it cannot run evalkit's task
classifier (the learned one, a model file, or the keyword rules), which names
the task of a request that arrives without one. When the exported config's
root is a task node, the export says so: which classifier is left behind (a
learned file with its cross-validated accuracy, read from the file's own
``metrics``) and what the gateway does instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..router.config import RoutingSpec, TaskSpec

__all__ = ["classifier_notes", "describe_classifier"]

_INSTEAD = {
    "litellm": ("LiteLLM", 'Here the caller names the task route, model="task-<type>", and model="default" gets '
                           "what an unclassified request would get."),
    "portkey": ("Portkey", "Here the route follows the task type the caller sends as metadata (header "
                           'x-portkey-metadata: {"task_type": "<type>"}); a request without one takes route-default.'),
}


def classifier_notes(spec: RoutingSpec, fmt: str, source: str | Path | Mapping[str, Any]) -> tuple[str, ...]:
    """The notes of exporting ``spec`` (parsed from ``source``) to ``fmt``; empty when nothing is left behind."""
    if fmt not in _INSTEAD or not isinstance(spec.router, TaskSpec):
        return ()
    gateway, instead = _INSTEAD[fmt]
    where = Path(source).parent if isinstance(source, (str, Path)) else None
    return (f"The task classifier is not exported: evalkit's task router classifies requests that arrive "
            f"without a task type with {describe_classifier(spec.router.classifier, where)}, and {gateway} "
            f"cannot run it. {instead}",)


def describe_classifier(settings: Mapping[str, Any], config_dir: Path | None = None) -> str:
    """The classifier of a task node (``TaskSpec.classifier``) in a few words, with its accuracy when learned.

    A learned file is read (every field checked, as ``Router.from_config``
    reads it) for the cross-validated scores recorded in it; its path is shown
    relative to the config's folder when it is in it, else in full.
    """
    if "file" not in settings:
        custom = " (custom settings)" if settings.get("keywords") else ""
        return f"its keyword rules{custom}"
    from ..router.classifier import LearnedClassifier

    path = Path(settings["file"])
    model = LearnedClassifier.load(path)  # a broken file is the ConfigError Router.from_config would raise
    threshold = settings.get("min_confidence", model.abstain_below)
    shown = str(path)
    if config_dir is not None and not os.path.relpath(path, config_dir).startswith(".."):
        shown = os.path.relpath(path, config_dir)  # beside the config, as recommend writes it
    return f"its learned task classifier {shown} ({_scores(model.metrics)}; below confidence {threshold:.2f} " \
           f"it abstains and the request takes the default route)"


def _scores(metrics: Mapping[str, Any]) -> str:
    """"accuracy 98.3%, macro accuracy 97.5% by stratified 5-fold cross-validation, seed 0, on 300 items"."""
    def number(key: str) -> float | None:
        value = metrics.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    accuracy, macro = number("accuracy"), number("macro_accuracy")
    if accuracy is None:
        return "no cross-validated accuracy is recorded in the file"
    text = f"accuracy {accuracy:.1%}" + ("" if macro is None else f", macro accuracy {macro:.1%}")
    method = metrics.get("method")
    text += f" by {method}" if isinstance(method, str) else ", cross-validated"
    n = number("n")
    return text + ("" if n is None else f", on {n:.0f} items")
