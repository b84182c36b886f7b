"""Deterministic prose: filler for unknown prompts and on/off-topic answers for judged items.

Nothing here is meant to be read; it is meant to be the right length, stable
for a given seed and prompt, and (for on-topic answers) recognisably about the
prompt, so an LLM judge emulated elsewhere can tell good from bad.
"""

from __future__ import annotations

import random
import re

from ._seeding import rng_for
from ._tokens import truncate_tokens

__all__ = ["filler_text", "off_topic_answer", "on_topic_answer", "prompt_keywords"]

_VOCABULARY = (
    "system model answer result value process method detail example context reason approach question "
    "section point change design record signal pattern measure source option review balance impact "
    "factor structure summary outcome feature layer report step effect range clear simple careful "
    "common useful direct final early later general main specific consider describe explain compare "
    "provide support include follow improve require often usually mostly rarely together instead "
    "however therefore overall also "
)
_WORDS = tuple(_VOCABULARY.split())
_STOPWORD_TEXT = (
    "about above after again against because before being below between could does doing during "
    "every first from have having here itself just more most other over same should some such than "
    "that their them then there these they this those through under until very what when where which "
    "while with would your yours answer question following write reply please below above story "
    "short brief compose describe explain words sentence paragraph "
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{4,}")
_TOPIC_SENTENCES = (
    "The central point about {k} is how it shapes everything that follows.",
    "A closer look at {k} shows why it matters here.",
    "It helps to treat {k} as a concrete example rather than an abstraction.",
    "{K} connects the earlier details to the overall picture.",
    "In practice, {k} is where the most important trade-offs appear.",
    "Seen this way, {k} explains much of what happens next.",
)


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(8, 16))).capitalize() + "."


def filler_text(rng: random.Random, n_tokens: int) -> str:
    """Sentences of plausible words, exactly ``n_tokens`` tokens long (fewer only if 0)."""
    if n_tokens <= 0:
        return ""
    sentences: list[str] = []
    # Words average ~1.5 tokens with the emulator's tokenizer; overshoot, then cut exactly.
    budget_words = int(n_tokens / 1.2) + 8
    while budget_words > 0:
        sentences.append(_sentence(rng))
        budget_words -= sentences[-1].count(" ") + 1
    text, _ = truncate_tokens(" ".join(sentences), n_tokens)
    return text


def prompt_keywords(prompt: str, limit: int = 6) -> list[str]:
    """Distinct content words of ``prompt``, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(prompt):
        word = match.group(0).lower().strip("'-")
        if word not in _STOPWORDS and word not in seen:
            seen[word] = None
            if len(seen) >= limit:
                break
    return list(seen)


def on_topic_answer(prompt: str) -> str:
    """A well-formed answer built from ``prompt`` alone (so it can be recomputed to recognise it)."""
    rng = rng_for(0, "on-topic", prompt)
    keywords = prompt_keywords(prompt) or ["the request"]
    lead = ", ".join(keywords[:3])
    paragraphs = [f"Here is a complete answer that addresses {lead} directly."]
    body = []
    for word in keywords:
        template = rng.choice(_TOPIC_SENTENCES)
        body.append(template.format(k=word, K=word.capitalize()))
        body.append(_sentence(rng))
    paragraphs.append(" ".join(body))
    paragraphs.append(f"In summary, the answer rests on {keywords[0]} and how the other points support it.")
    return "\n\n".join(paragraphs)


def off_topic_answer(prompt: str, rng: random.Random) -> str:
    """A poor answer: very short, off topic, or an on-topic answer cut off mid-way."""
    style = rng.randrange(3)
    if style == 0:
        return "I am not sure what you are asking."
    if style == 1:
        return filler_text(rng, rng.randint(20, 40))
    good = on_topic_answer(prompt)
    return good[: max(len(good) // 4, 20)].rstrip()
