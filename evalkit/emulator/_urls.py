"""Where each wire format lives on an emulator, given its origin: one definition for the live server and replays."""

from __future__ import annotations

__all__ = ["COMPAT_PREFIXES", "WireURLs"]

COMPAT_PREFIXES = ("llamacpp", "vllm", "ollama", "fastapi")
"""The OpenAI-compatible self-hosted servers the emulator imitates, each under ``/{name}/v1``
(their checks and error bodies: ``evalkit.emulator._compat``)."""


class WireURLs:
    """Per-wire base URLs derived from ``self.base_url`` (``http://127.0.0.1:PORT``)."""

    base_url: str

    @property
    def openai_base_url(self) -> str:
        """What OpenAI clients take as ``base_url`` (``.../v1``)."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What the Anthropic SDK takes as ``base_url`` (the bare origin)."""
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """What Gemini clients take as ``base_url`` (the bare origin; paths start ``/v1beta``)."""
        return self.base_url

    def base_url_for(self, wire: str) -> str:
        """The base URL of ``wire``: ``openai``, ``anthropic``, ``gemini``, or a self-hosted server the
        emulator imitates (``llamacpp``, ``vllm``, ``ollama``, ``fastapi``: ``.../{name}/v1``)."""
        if wire in COMPAT_PREFIXES:
            return f"{self.base_url}/{wire}/v1"
        return {"openai": self.openai_base_url, "anthropic": self.anthropic_base_url,
                "gemini": self.gemini_base_url}[wire]
