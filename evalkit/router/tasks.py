"""TaskRouter: a classifier names the request's task type, a route table names its target."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from ..errors import AllTargetsFailed, ProviderError
from ..types import Attempt, ChatRequest, ChatResponse
from ._base import Router, RouterOptions, Target, as_target
from ._call import RoutedCall

if TYPE_CHECKING:
    from typing import Unpack

    from ..providers import OnDelta

__all__ = ["KeywordClassifier", "TaskRouter", "DEFAULT_RULES"]

# The seed's rule set: first matching rule wins, so the more specific task comes first.
DEFAULT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("code", ("code", "function", "python", "javascript", "typescript", "java", "rust", "sql", "regex",
              "debug", "bug", "compile", "stack trace", "implement", "refactor", "unit test", "```")),
    ("analysis", ("analyze", "analyse", "analysis", "compare", "evaluate", "assess", "pros and cons",
                  "trade-off", "tradeoff", "explain why", "critique", "summarize the data")),
    ("creative", ("story", "poem", "haiku", "lyrics", "creative", "imagine", "fiction", "slogan",
                  "write a song", "brainstorm")),
)


@dataclass(frozen=True)
class KeywordClassifier:
    """The built-in rules: size first, then keywords, then prompt length.

    1. A prompt over ``long_document_tokens`` tokens (counted with
       :func:`evalkit.count_tokens`) is ``long_document``.
    2. Otherwise the first rule with a keyword in the last user message wins
       (whole-word, case-insensitive; ``"```"`` matches anywhere).
    3. Otherwise a prompt of at most ``simple_qa_max_words`` words is ``simple_qa``.
    4. Otherwise ``default``.
    """

    rules: Sequence[tuple[str, Sequence[str]]] = DEFAULT_RULES
    long_document_tokens: int = 8000
    simple_qa_max_words: int = 30
    default: str = "general"
    _patterns: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple((task, _keyword_pattern(words)) for task, words in self.rules)
        object.__setattr__(self, "_patterns", compiled)

    def __call__(self, request: ChatRequest) -> str:
        text = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        # Only a prompt that could be long pays for the tokenizer: a token is rarely under 2 chars.
        total_chars = sum(len(m.content) for m in request.messages) + len(request.system or "")
        if total_chars > 2 * self.long_document_tokens and self._tokens(request) > self.long_document_tokens:
            return "long_document"
        for task, pattern in self._patterns:
            if pattern.search(text):
                return task
        if len(text.split()) <= self.simple_qa_max_words:
            return "simple_qa"
        return self.default

    @staticmethod
    def _tokens(request: ChatRequest) -> int:
        from ..tokens import count_tokens

        return count_tokens(list(request.messages), "").count + (
            count_tokens(request.system, "").count if request.system else 0)


def _keyword_pattern(words: Sequence[str]) -> re.Pattern[str]:
    parts = [re.escape(w) if not w[0].isalnum() else rf"\b{re.escape(w)}\b" for w in words]
    return re.compile("|".join(parts), re.IGNORECASE)


class TaskRouter(Router):
    """Route by task type: an explicit ``metadata["task_type"]`` wins, else the classifier decides.

    ``routes`` maps task types to targets (providers or routers); requests
    whose task has no route go to ``default``. ``classifier`` is any
    ``Callable[[ChatRequest], str | None]``: a learned one
    (:class:`~evalkit.router.classifier.LearnedClassifier`, which ``evalkit
    recommend`` trains and writes beside the routing YAML) returns ``None``
    when it is not confident enough, and the request takes ``default``. The
    default classifier is :class:`KeywordClassifier`. The chosen task type is
    written into the request's metadata (``None`` for an abstention), so the
    monitor and the targets see it and it is decided once per request.
    """

    kind = "task"

    def __init__(self, routes: Mapping[str, Target | str], *, default: Target | str,
                 classifier: Callable[[ChatRequest], str | None] | None = None,
                 **router_options: Unpack[RouterOptions]) -> None:
        self.routes = {task: as_target(t) for task, t in routes.items()}
        self.default = as_target(default)
        targets = list({id(t): t for t in [*self.routes.values(), self.default]}.values())
        super().__init__(targets, **router_options)
        self.classifier = classifier or KeywordClassifier()

    def route_for(self, request: ChatRequest) -> tuple[str | None, Target]:
        """The task type (``None``: the classifier abstained) and the target this request goes to."""
        task = self.task_of(request)
        return task, self.routes.get(task, self.default) if task is not None else self.default

    def task_of(self, request: ChatRequest) -> str | None:
        """The caller's task type, else what this router decided for the request, else the classifier's."""
        if "task_type" in request.metadata:  # set by the caller, or by complete() (None: abstained)
            return request.task_type
        return self.classifier(request)

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        if "task_type" not in request.metadata:
            request = request.replace(metadata={**request.metadata, "task_type": self.classifier(request)})
        return await super().complete(request, on_delta)

    async def _route(self, request: ChatRequest, attempts: list[Attempt], call: RoutedCall) -> ChatResponse:
        _, target = self.route_for(request)
        try:
            return await self._attempt(target, request, attempts, call)
        except AllTargetsFailed as exc:
            raise self._exhausted(exc.errors, attempts) from None
        except ProviderError as exc:
            raise self._exhausted([exc], attempts) from None
