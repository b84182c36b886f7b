"""The emulator's own tokenizer: cheap, deterministic, the same for every wire.

A token is a run of up to four non-space characters plus the whitespace before
it, so ``"".join(split_tokens(t)) == t`` and English text comes out near the
~1.3 tokens per word of real BPE tokenizers. Usage, truncation at
``max_tokens``, stream chunking and context-window checks all use this one
function, so the counts a client sees always agree with each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "MESSAGE_OVERHEAD",
    "REPLY_OVERHEAD",
    "chunk_tokens",
    "count_prompt_tokens",
    "count_tokens",
    "split_chunks_at",
    "split_tokens",
    "truncate_tokens",
]

_TOKEN = re.compile(r"\s*\S{1,4}|\s+")

# OpenAI-style framing, applied on every wire so counts do not depend on the wire.
MESSAGE_OVERHEAD = 3
REPLY_OVERHEAD = 3


def split_tokens(text: str) -> list[str]:
    """The tokens of ``text``; joining them gives ``text`` back."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens ``text`` has."""
    return len(_TOKEN.findall(text))


def count_prompt_tokens(messages: Iterable[tuple[str, str]]) -> int:
    """Tokens of a conversation of ``(role, text)`` pairs, with chat framing."""
    total, n = REPLY_OVERHEAD, 0
    for _role, text in messages:
        total += count_tokens(text) + MESSAGE_OVERHEAD
        n += 1
    return total if n else 0


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` tokens, and whether anything was cut."""
    tokens = split_tokens(text)
    if len(tokens) <= limit:
        return text, False
    return "".join(tokens[: max(limit, 0)]), True


def chunk_tokens(tokens: Sequence[str], per_chunk: int) -> list[tuple[str, int]]:
    """Stream pieces of ``per_chunk`` tokens each: ``(text, token_count)`` pairs."""
    return [
        ("".join(tokens[i : i + per_chunk]), len(tokens[i : i + per_chunk]))
        for i in range(0, len(tokens), per_chunk)
    ]


def split_chunks_at(chunks: Sequence[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """``chunks`` with a boundary after exactly ``n`` tokens: the chunk that straddles it becomes two.

    A chunk starts on a token boundary, so re-splitting its text gives the same
    tokens the whole text had there.
    """
    out: list[tuple[str, int]] = []
    seen = 0
    for text, tokens in chunks:
        if seen < n < seen + tokens:
            pieces = split_tokens(text)
            head = n - seen
            out += [("".join(pieces[:head]), head), ("".join(pieces[head:]), tokens - head)]
        else:
            out.append((text, tokens))
        seen += tokens
    return out
