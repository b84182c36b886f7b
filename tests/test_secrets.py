"""An API key never shows up in an exception, a repr or a log line."""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback

import pytest

import evalkit
from evalkit._secret import Secret

FAKE_KEY = "sk-test-SECRET-4f1d9a7c2b8e6d3f0a5c9e1b7d4f2a8c"


async def _echoing_server(status: int) -> tuple[asyncio.AbstractServer, str]:
    """A loopback HTTP server that answers every request with an error echoing its headers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        echoed = head.decode(errors="replace").replace('"', "'").replace("\r\n", " | ")
        # One body every vendor's classifier reads as an auth failure.
        body = ('{"type": "error", "error": {"message": "Incorrect API key provided: %s", "code": 401,'
                ' "type": "authentication_error", "status": "UNAUTHENTICATED"}}' % echoed).encode()
        writer.write(b"HTTP/1.1 %d Unauthorized\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                     % (status, len(body)) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("target", ["openai:gpt-4o-mini", "azure:dep", "anthropic:claude-3-5-haiku-latest",
                                    "gemini:gemini-2.0-flash", "groq:llama-3.1-8b-instant"])
async def test_key_absent_from_errors_reprs_and_logs(target: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server, url = await _echoing_server(401)
    try:
        provider = evalkit.get_provider(target, api_key=FAKE_KEY, base_url=url)
        with pytest.raises(evalkit.AuthError) as caught:
            await provider.complete(evalkit.ChatRequest.from_prompt("hi"))
        await provider.aclose()
    finally:
        server.close()
        await server.wait_closed()
    error = caught.value
    seen = [str(error), repr(error), error.message, repr(provider), repr(vars(provider)),
            "".join(traceback.format_exception(error)), caplog.text]
    assert "Incorrect API key provided" in error.message  # the vendor's words survive ...
    for text in seen:
        assert FAKE_KEY not in text  # ... but never the key


def test_secret_repr_and_pickle() -> None:
    secret = Secret(FAKE_KEY)
    assert FAKE_KEY not in repr(secret) and FAKE_KEY not in str(secret) and FAKE_KEY not in f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    provider = evalkit.get_provider("anthropic:claude-3-5-haiku-latest")
    assert FAKE_KEY not in repr(provider)
    assert provider._headers["x-api-key"] == FAKE_KEY


def test_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(evalkit.ConfigError, match="OPENAI_API_KEY"):
        evalkit.get_provider("openai:gpt-4o-mini")


def test_local_servers_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    assert evalkit.get_provider("ollama:llama3.2").base_url == "http://localhost:11434/v1"
