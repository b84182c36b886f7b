"""What a simulated model answers and how long it takes, independent of the wire format.

A wire module turns a vendor request into a :class:`ChatCall`; the
:class:`Simulator` turns that into a :class:`Generation` (text, usage, finish
reason, stream chunks and a timing schedule); the wire module renders it.
Everything is a pure function of the seed, the model and the request, except
simulated prompt caching, which depends on what was asked before.

Output caps follow each vendor: on OpenAI and Anthropic the cap bounds visible
*and* reasoning tokens together (reasoning comes first and eats the cap; if it
reaches the cap the visible text is empty and the finish is ``length``), on
Gemini ``maxOutputTokens`` bounds only the visible text and thinking is bounded
by its own budget (``ChatCall.cap_includes_thinking`` says which).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from typing import Any

from ._answer_text import correct_answer, wrong_answer
from ._filler import filler_text
from ._judge import is_judge_prompt, judge_verdict
from ._prefill import answer_request, continuation, prefill_of
from ._prompt_cache import PromptCache
from ._seeding import rng_for, stable_digest, unit_draw
from ._specs import ModelSpec
from ._tokens import chunk_tokens, count_prompt_tokens, count_tokens, split_tokens, truncate_tokens
from .answers import AnswerBook

__all__ = ["CHUNK_TOKENS", "ChatCall", "Generation", "Simulator", "Timing", "Usage"]

CHUNK_TOKENS = 3
"""Tokens per streamed content event."""

ITEM_CONCENTRATION = 2.0
"""How alike a model's samples on one item are: item chances are Beta(c·skill, c·(1 - skill)).

Low values make items mostly always-right or always-wrong (samples agree); high values make
every item a coin with the model's skill (samples independent). 2 puts pass^2 about
skill·(1 - skill)/3 above skill², between the two.
"""


@functools.lru_cache(maxsize=65536)
def item_chance(skill: float, u: float) -> float:
    """The chance a model answers one item right: quantile ``u`` of Beta with mean ``skill``."""
    if skill <= 0 or skill >= 1:
        return min(1.0, max(0.0, skill))
    from scipy.special import betaincinv  # lazily: only sampled requests to dataset items need it

    return float(betaincinv(ITEM_CONCENTRATION * skill, ITEM_CONCENTRATION * (1 - skill), u))


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A chat request, wire-neutral. ``messages`` are ``(role, text)`` pairs, system first."""

    wire: str
    model: str
    messages: tuple[tuple[str, str], ...]
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    json_mode: bool = False
    cache_control: bool = False
    stream_format: str = "sse"
    seed: int | None = None
    temperature: float | None = None
    thinking_budget: int | None = None
    """The request's bound on hidden reasoning: None = the model's default, -1 dynamic, 0 off, N up to N."""
    cap_includes_thinking: bool = True
    """Whether ``max_tokens`` bounds reasoning and visible tokens together (OpenAI, Anthropic; not Gemini)."""

    @property
    def sample_key(self) -> int | None:
        """What makes this a fresh sample of the model: its seed, unless there is none or temperature is 0."""
        return None if self.seed is None or self.temperature == 0 else self.seed

    @property
    def last_user_text(self) -> str:
        """What the request asks: its last user message."""
        for role, text in reversed(self.messages):
            if role == "user":
                return text
        return self.messages[-1][1] if self.messages else ""

    @property
    def fingerprint(self) -> str:
        """Identifies the request's content; streaming or not and the wire do not change it."""
        return stable_digest(self.messages, self.max_tokens, self.stop, self.json_mode)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in OpenAI's meaning: cached and written are parts of ``prompt``, reasoning of ``completion``."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """The schedule, already multiplied by the time scale: TTFT, then seconds per output token."""

    ttft_s: float
    per_token_s: float

    def chunk_delay(self, tokens: int, first: bool) -> float:
        """Delay before a streamed chunk of ``tokens`` goes out: it leaves when its last token is done."""
        return self.ttft_s + (tokens - 1) * self.per_token_s if first else tokens * self.per_token_s

    def total_s(self, visible_tokens: int) -> float:
        """Time to the complete answer (what a non-streamed call waits): first token, then the rest."""
        return self.ttft_s + max(visible_tokens - 1, 0) * self.per_token_s


@dataclass(slots=True)
class Generation:
    """One simulated answer. ``finish``: ``stop``, ``length``, ``stop_sequence`` or ``content_filter``."""

    text: str
    finish: str
    usage: Usage
    timing: Timing
    response_id: str
    chunks: list[tuple[str, int]] = field(default_factory=list)
    stop_sequence: str | None = None
    empty: bool = False
    answer_kind: str = "filler"
    item_id: str | None = None

    @property
    def thinking(self) -> str:
        """A short summary of the hidden reasoning, for a wire that shows one (Anthropic's thinking block).

        Made only when a wire asks (the usage bills all the reasoning either way), and keyed by the
        response id: the same request and attempt always think the same words.
        """
        if self.usage.reasoning <= 0:
            return ""
        return filler_text(random.Random(int(self.response_id, 16)), min(self.usage.reasoning, 24))

    @property
    def total_s(self) -> float:
        """Seconds until the whole answer is out (hidden reasoning is already inside the TTFT)."""
        return self.timing.total_s(self.usage.completion - self.usage.reasoning)


class Simulator:
    """Turns :class:`ChatCall` s into :class:`Generation` s for the models of a fleet."""

    def __init__(
        self, seed: int, time_scale: float, book: AnswerBook, cache: PromptCache | None = None
    ) -> None:
        self.seed, self.time_scale, self.book = seed, time_scale, book
        self.cache = cache or PromptCache()
        # Load scipy now, not on the first sampled request: a 170 ms import while serving would
        # delay every request in flight and show up in the first cells' latencies.
        item_chance(0.5, 0.5)

    def prompt_tokens(self, call: ChatCall) -> int:
        """The request's prompt size in the emulator's tokens."""
        return count_prompt_tokens(call.messages)

    def generate(
        self, call: ChatCall, spec: ModelSpec, attempt: int = 0, *, outcome: str | None = None
    ) -> Generation:
        """The answer of ``spec`` to ``call``; ``outcome`` ``"content_filter"`` or ``"empty"`` forces a fault.

        A call ending with an assistant turn (a prefill) gets only the continuation of the
        model's answer (``_prefill``); the prefill counts in the prompt tokens.
        """
        prompt_tokens = self.prompt_tokens(call)
        cached, written = self._cache(call, spec)
        prefill = prefill_of(call)
        asked = call if prefill is None else answer_request(call)
        reasoning = self._reasoning_tokens(asked, spec)
        response_id = stable_digest(self.seed, spec.name, call.fingerprint, attempt)
        if outcome in ("content_filter", "empty"):
            usage = Usage(prompt_tokens, 0, cached, written, 0)
            finish = "content_filter" if outcome == "content_filter" else "stop"
            return Generation(
                "",
                finish,
                usage,
                self._timing(call, spec, prompt_tokens, 0),
                response_id,
                empty=outcome == "empty",
                answer_kind=outcome,
            )
        visible_cap = self._token_limit(call, spec)
        if call.cap_includes_thinking:
            reasoning = min(reasoning, visible_cap)  # reasoning comes first and eats the cap
            visible_cap -= reasoning
        if prefill is None:
            raw, kind, item_id = self._answer(call, spec, visible_cap)
        else:
            # The cap bounds only new tokens: the answer may run that far past the prefill.
            raw, kind, item_id = self._answer(asked, spec, visible_cap + count_tokens(prefill))
            raw = continuation(raw, prefill)
        text, finish, stop_sequence = self._limit(raw, call, visible_cap)
        tokens = split_tokens(text)
        usage = Usage(prompt_tokens, len(tokens) + reasoning, cached, written, reasoning)
        return Generation(
            text=text,
            finish=finish,
            usage=usage,
            timing=self._timing(call, spec, prompt_tokens, reasoning),
            response_id=response_id,
            chunks=chunk_tokens(tokens, CHUNK_TOKENS),
            stop_sequence=stop_sequence,
            answer_kind=kind,
            item_id=item_id,
        )

    def _answer(self, call: ChatCall, spec: ModelSpec, visible_cap: int) -> tuple[str, str, str | None]:
        prompt = call.last_user_text
        if is_judge_prompt(prompt):
            rng = rng_for(self.seed, "judge", spec.name, call.fingerprint)
            return judge_verdict(prompt, self.book, rng, spec.skill(None))[0], "judge", None
        item = self.book.lookup(prompt)
        if item is not None:
            if self._is_correct(call, spec, item):
                return correct_answer(item), "correct", item.id
            rng = rng_for(self.seed, "wrong", spec.name, item.id)
            return wrong_answer(item, rng, self.book), "wrong", item.id
        rng = rng_for(self.seed, "filler", spec.name, call.fingerprint)
        length = max(1, round(spec.output_tokens.draw(rng)))
        if call.json_mode:
            return json.dumps({"answer": filler_text(rng, min(length, 48))}), "filler", None
        # Text past max_tokens would be cut anyway: write one token more than the limit, not hundreds.
        return filler_text(rng, min(length, visible_cap + 1)), "filler", None

    def _is_correct(self, call: ChatCall, spec: ModelSpec, item: Any) -> bool:
        """Whether this answer to a dataset item is right; over items and samples, right ``skill`` of the time.

        Keyed by item and sample (the request's seed), never by wire, streaming mode or retry. With
        no sample key (no seed, temperature 0, or a wire with no seed such as Anthropic's) an item
        is simply right or wrong for a model. Sampled answers are right with the item's own chance,
        drawn once per model and item, so hard items stay mostly wrong across repeats, as with
        real models, and pass@k grows with k while pass^k shrinks.
        """
        skill = spec.skill(item.task_type)
        if call.sample_key is None:
            return unit_draw(self.seed, "correct", spec.name, item.id) < skill
        chance = item_chance(skill, unit_draw(self.seed, "difficulty", spec.name, item.id))
        return unit_draw(self.seed, "correct", spec.name, item.id, call.sample_key) < chance

    def _limit(self, text: str, call: ChatCall, visible_cap: int) -> tuple[str, str, str | None]:
        finish, stop_sequence = "stop", None
        hits = [(text.find(s), s) for s in call.stop if s and s in text]
        if hits:
            cut, stop_sequence = min(hits)
            text, finish = text[:cut], "stop_sequence"
        text, was_cut = truncate_tokens(text, visible_cap)
        if was_cut:
            finish, stop_sequence = "length", None
        return text, finish, stop_sequence

    @staticmethod
    def _token_limit(call: ChatCall, spec: ModelSpec) -> int:
        return call.max_tokens if call.max_tokens is not None else spec.max_output_tokens

    def _reasoning_tokens(self, call: ChatCall, spec: ModelSpec) -> int:
        """What the model wants to think (its ``reasoning_tokens`` draw), within the request's budget."""
        if not spec.thinks:
            return 0
        bound = spec.thinking.bound(call.thinking_budget)
        if bound <= 0:
            return 0
        rng = rng_for(self.seed, "reasoning", spec.name, call.fingerprint)
        wanted = round(spec.reasoning_tokens.draw(rng))
        return min(max(0, wanted), bound)

    def _cache(self, call: ChatCall, spec: ModelSpec) -> tuple[int, int]:
        # Anthropic caches only what the request marks with cache_control; the others cache implicitly.
        if call.wire == "anthropic" and not call.cache_control:
            return 0, 0
        tokens = [t for _role, text in call.messages for t in split_tokens(text)]
        # One cache per model and wire: a vendor never shares its cache with another vendor.
        cached, written = self.cache.observe(f"{spec.name}/{call.wire}", tokens)
        return cached, written if call.wire == "anthropic" else 0

    def _timing(self, call: ChatCall, spec: ModelSpec, prompt_tokens: int, reasoning: int) -> Timing:
        if self.time_scale <= 0:
            return Timing(0.0, 0.0)
        rng = rng_for(self.seed, "timing", spec.name, call.fingerprint)
        ttft_s = spec.latency.ttft_ms.draw(rng) / 1000.0
        tokens_per_s = max(spec.latency.tokens_per_s.draw(rng), 1e-3)
        if spec.latency.prefill_tokens_per_s:
            ttft_s += prompt_tokens / spec.latency.prefill_tokens_per_s
        ttft_s += reasoning / tokens_per_s  # hidden reasoning happens before the first visible token
        return Timing(ttft_s * self.time_scale, self.time_scale / tokens_per_s)
