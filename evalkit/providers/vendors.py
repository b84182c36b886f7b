"""Vendors as data: where each one lives, how it authenticates, which wire it speaks.

Adding a vendor that speaks an existing wire format is one :class:`Vendor`
entry below (compare pydantic-ai's ``providers/deepseek.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .openai_chat import ChatOptions

__all__ = ["VENDORS", "Vendor"]


@dataclass(frozen=True, slots=True)
class Vendor:
    """One provider name usable in a ``provider:model`` target."""

    name: str
    wire: str
    """``openai-chat``, ``openai-responses``, ``anthropic`` or ``gemini``."""
    base_url: str
    key_env: tuple[str, ...] = ()
    key_required: bool = True
    base_url_env: tuple[str, ...] = ()
    price_provider: str | None = None
    """The vendor's id in genai-prices; ``None`` for self-hosted servers (unpriced unless overridden)."""
    chat: ChatOptions = field(default_factory=ChatOptions)
    notes: str = ""

    def with_options(self, **changes: Any) -> Vendor:
        """A copy whose chat options are changed (``api_version`` for Azure, say)."""
        from dataclasses import replace

        return replace(self, chat=replace(self.chat, **changes))


def _compatible(name: str, base_url: str, key_env: str | None, price: str | None, notes: str = "",
                **chat: Any) -> Vendor:
    return Vendor(
        name=name,
        wire="openai-chat",
        base_url=base_url,
        key_env=(key_env,) if key_env else (),
        key_required=key_env is not None,
        base_url_env=(f"{name.upper()}_BASE_URL",),
        price_provider=price,
        chat=ChatOptions(**chat),
        notes=notes,
    )


VENDORS: Mapping[str, Vendor] = {
    v.name: v
    for v in (
        Vendor(
            name="openai",
            wire="openai-chat",
            base_url="https://api.openai.com/v1",
            key_env=("OPENAI_API_KEY",),
            base_url_env=("OPENAI_BASE_URL",),
            price_provider="openai",
            chat=ChatOptions(max_tokens_field="max_completion_tokens"),
        ),
        Vendor(
            name="azure",
            wire="openai-chat",
            base_url="",
            key_env=("AZURE_OPENAI_API_KEY",),
            base_url_env=("AZURE_OPENAI_ENDPOINT",),
            price_provider="azure",
            chat=ChatOptions(
                path="/openai/deployments/{model}/chat/completions",
                auth="api-key",
                api_version="2024-10-21",
                max_tokens_field="max_completion_tokens",
                send_model=False,
            ),
            notes="model = deployment name; api_version= option or OPENAI_API_VERSION",
        ),
        Vendor(
            name="anthropic",
            wire="anthropic",
            base_url="https://api.anthropic.com",
            key_env=("ANTHROPIC_API_KEY",),
            base_url_env=("ANTHROPIC_BASE_URL",),
            price_provider="anthropic",
        ),
        Vendor(
            name="gemini",
            wire="gemini",
            base_url="https://generativelanguage.googleapis.com",
            key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            base_url_env=("GEMINI_BASE_URL",),
            price_provider="google",
        ),
        _compatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "groq",
                    "usage of compound models arrives in x_groq.usage"),
        _compatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "mistral",
                    "magistral streams content as arrays with thinking parts; usage arrives in the last "
                    "chunk unasked (stream_options is refused with 422 extra_forbidden); a prefill needs "
                    "prefix: true and is repeated at the start of the answer", stream_usage=False,
                    prefill_flag="prefix", prefill_echo=True),
        _compatible("deepseek", "https://api.deepseek.com", "DEEPSEEK_API_KEY", "deepseek",
                    "reasoning_content beside content; prompt_cache_hit_tokens"),
        _compatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openrouter",
                    "bills in usage.cost; errors can arrive inside a 200 stream"),
        _compatible("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", "together"),
        _compatible("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", "fireworks"),
        _compatible("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", "cerebras"),
        _compatible("ollama", "http://localhost:11434/v1", None, None, "local; no key"),
        _compatible("vllm", "http://localhost:8000/v1", None, None, "self-hosted; key optional (VLLM_API_KEY)"),
        _compatible("llamacpp", "http://localhost:8080/v1", None, None, "llama.cpp server; key optional"),
    )
}

# Self-hosted servers accept a key when one is configured, but do not need one.
OPTIONAL_KEY_ENV: Mapping[str, tuple[str, ...]] = {
    "ollama": ("OLLAMA_API_KEY",),
    "vllm": ("VLLM_API_KEY",),
    "llamacpp": ("LLAMACPP_API_KEY",),
}
