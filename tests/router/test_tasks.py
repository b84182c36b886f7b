"""TaskRouter and the seed's keyword classifier."""

from __future__ import annotations

import pytest

import evalkit
from evalkit.router import KeywordClassifier, TaskRouter

from .fakes import ScriptedProvider

classify = KeywordClassifier()


@pytest.mark.parametrize(
    ("prompt", "task"),
    [
        ("Write a Python function that reverses a linked list", "code"),
        ("Why does this SQL query return duplicates?", "code"),
        ("```\nTraceback (most recent call last)\n```", "code"),
        ("Compare the pros and cons of PostgreSQL and MySQL for analytics workloads", "analysis"),
        ("Analyze the quarterly revenue trend below and explain the drivers", "analysis"),
        ("Write a short poem about autumn leaves", "creative"),
        ("Tell me a story about a dragon who learns to cook", "creative"),
        ("What is the capital of Australia?", "simple_qa"),
        ("Who wrote Pride and Prejudice?", "simple_qa"),
        ("I am planning a trip next spring with my family of four and we would like a mix of beaches, "
         "museums and good food; we have about two weeks and a moderate budget, so please suggest an "
         "itinerary with rough daily plans", "general"),
    ],
)
def test_seed_keyword_rules(prompt: str, task: str) -> None:
    assert classify(evalkit.ChatRequest.from_prompt(prompt)) == task


def test_keywords_match_whole_words_only() -> None:
    assert classify(evalkit.ChatRequest.from_prompt("Please decode this message for me")) == "simple_qa"


def test_long_prompt_is_long_document_by_tokens() -> None:
    doc = "The committee met on Tuesday to review the annual budget. " * 800
    request = evalkit.ChatRequest.from_prompt(doc + "\nWrite a poem about it.")
    assert classify(request) == "long_document"
    assert KeywordClassifier(long_document_tokens=100_000)(request) == "creative"


def test_rules_are_configurable() -> None:
    custom = KeywordClassifier(rules=[("legal", ["contract", "liability"])], default="other")
    assert custom(evalkit.ChatRequest.from_prompt("Review this contract clause")) == "legal"


async def test_routes_by_class_and_explicit_task_type_wins() -> None:
    code, cheap = ScriptedProvider("code-model"), ScriptedProvider("cheap")
    router = TaskRouter({"code": code}, default=cheap)
    r1 = await router.complete(evalkit.ChatRequest.from_prompt("Fix this python bug"))
    r2 = await router.complete(evalkit.ChatRequest.from_prompt("Fix this python bug",
                                                               metadata={"task_type": "chitchat"}))
    assert (r1.provider, r2.provider) == ("code-model", "cheap")


async def test_user_callable_replaces_the_classifier() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    router = TaskRouter({"x": a}, default=b, classifier=lambda request: "x")
    assert (await router.complete(evalkit.ChatRequest.from_prompt("anything"))).provider == "a"


async def test_failure_is_one_error_with_the_attempts() -> None:
    router = TaskRouter({}, default=ScriptedProvider("only", ["server"]))
    with pytest.raises(evalkit.errors.AllTargetsFailed) as caught:
        await router.complete(evalkit.ChatRequest.from_prompt("hi"))
    assert [a.error_kind for a in caught.value.attempts] == ["server"]
