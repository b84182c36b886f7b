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


# -- keys an upstream echoes back (issue 11, item 6): scrubbed at the source --------------------

OTHER_KEY = "test-only-OTHER-not-a-real-key-0000"  # a second key this process holds
_ECHO_TARGETS = ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest", "gemini:gemini-2.0-flash"]


def _answer_text(target: str, text: str) -> dict:
    """A 200 answer in ``target``'s wire format whose text is ``text``."""
    if target.startswith("anthropic"):
        return {"id": "m", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 5, "output_tokens": 5}}
    if target.startswith("gemini"):
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 5}}
    return {"id": "c", "model": "gpt-4o-mini", "usage": {"prompt_tokens": 5, "completion_tokens": 5},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def _echoing(target: str, status: int = 200, raw: bytes | None = None,
             content_type: str = "application/json", **options: object) -> evalkit.HTTPProvider:
    """A provider whose upstream puts every header it received (the key among them) in its answer."""
    import json

    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        echoed = " ".join(f"{k}={v}" for k, v in request.headers.items()) + f" also {OTHER_KEY}"
        if raw is not None:
            body = raw.replace(b"ECHO", echoed.encode())
        elif status >= 300:
            body = json.dumps({"error": {"message": f"bad request: {echoed}", "type": "server_error"}}).encode()
        else:
            body = json.dumps(_answer_text(target, f"Your headers were: {echoed}")).encode()
        return httpx.Response(status, headers={"content-type": content_type}, content=body)

    Secret(OTHER_KEY)  # registered, as any key the process read
    return evalkit.get_provider(target, api_key=FAKE_KEY, base_url="http://echo.invalid",
                                transport=httpx.MockTransport(answer), **options)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("target", _ECHO_TARGETS)
async def test_key_echoed_in_a_200_answer_never_reaches_the_response(target: str, stream: bool) -> None:
    import json

    if stream:
        payload = _answer_text(target, "Your headers were: ECHO")
        if target.startswith("gemini"):
            raw = b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"
        elif target.startswith("anthropic"):
            raw = _anthropic_events("Your headers were: ECHO")
        else:
            chunk = {"id": "c", "model": "gpt-4o-mini", "choices": [
                {"index": 0, "delta": {"content": "Your headers were: ECHO"}, "finish_reason": "stop"}]}
            raw = b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"
        provider = _echoing(target, raw=raw, content_type="text/event-stream")
    else:
        provider = _echoing(target)
    response = await provider.complete(evalkit.ChatRequest.from_prompt("hi", stream=stream))
    assert "Your headers were" in response.text and "********" in response.text
    assert FAKE_KEY not in response.text and OTHER_KEY not in response.text
    assert FAKE_KEY not in repr(response) and OTHER_KEY not in repr(response)


def _anthropic_events(text: str) -> bytes:
    import json

    events = [("message_start", {"type": "message_start", "message": {"id": "m", "model": "claude-3-5-haiku-latest",
                                                                      "usage": {"input_tokens": 5}}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": text}}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                 "usage": {"output_tokens": 5}}),
              ("message_stop", {"type": "message_stop"})]
    return b"".join(f"event: {n}\ndata: {json.dumps(d)}\n\n".encode() for n, d in events)


async def test_key_split_across_two_stream_events_is_scrubbed_from_text_reasoning_and_tool_calls() -> None:
    import json

    import httpx

    half = len(FAKE_KEY) // 2
    deltas = [{"reasoning_content": f"thinking about {FAKE_KEY[:half]}"}, {"reasoning_content": FAKE_KEY[half:]},
              {"content": f"the key is {FAKE_KEY[:half]}"}, {"content": f"{FAKE_KEY[half:]}, done"},
              {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "leak",
                                                                          "arguments": f'{{"k": "{FAKE_KEY[:5]}'}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": f'{FAKE_KEY[5:]}"}}'}}]}]
    raw = b"".join(b"data: " + json.dumps({"id": "c", "model": "gpt-4o-mini", "choices": [
        {"index": 0, "delta": d, "finish_reason": None}]}).encode() + b"\n\n" for d in deltas)
    raw += b'data: {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    raw += b"data: [DONE]\n\n"
    provider = evalkit.get_provider("openai:gpt-4o-mini", api_key=FAKE_KEY, base_url="http://echo.invalid",
                                    transport=httpx.MockTransport(lambda r: httpx.Response(
                                        200, headers={"content-type": "text/event-stream"}, content=raw)))
    response = await provider.complete(evalkit.ChatRequest.from_prompt("hi", stream=True))
    assert response.text == "the key is ********, done"
    assert response.reasoning == "thinking about ********"
    assert response.tool_calls[0].arguments == '{"k": "********"}'


@pytest.mark.parametrize(("status", "raw"), [
    (500, None),                                       # an error body echoing the key -> ServerError
    (200, b'{"choices": [{"message": "ECHO" '),         # a broken 200 body echoing it -> InvalidResponseError
], ids=["error-body", "malformed-200"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_traceback_locals_never_hold_an_echoed_key(status: int, raw: bytes | None,
                                                        stream: bool) -> None:
    content_type = "application/json"
    if stream and raw is not None:
        raw, content_type = b"data: " + raw + b"\n\n", "text/event-stream"
    provider = _echoing("openai:gpt-4o-mini", status=status, raw=raw, content_type=content_type)
    with pytest.raises(evalkit.ProviderError) as caught:
        await provider.complete(evalkit.ChatRequest.from_prompt("hi", stream=stream))
    error = caught.value
    shown = "".join(traceback.TracebackException(type(error), error, error.__traceback__,
                                                 capture_locals=True).format())
    assert "body =" in shown or "data =" in shown  # the locals that held the echo are shown...
    assert FAKE_KEY not in shown and OTHER_KEY not in shown  # ...without the keys
    assert OTHER_KEY not in error.message and FAKE_KEY not in error.message


async def test_traceback_locals_of_a_malformed_json_array_stream_never_hold_an_echoed_key() -> None:
    # Gemini's streamed JSON array: the decoder itself fails on the element that echoes the key,
    # with the chunk it was given (and the loop's) among the locals of the traceback.
    raw = b'[{"candidates": [{"content": {"parts": [{"text": "ok"}]}}]},\r\n{"candidates": [ECHO ]}]'
    provider = _echoing("gemini:gemini-2.0-flash", raw=raw, stream_format="json-array")
    with pytest.raises(evalkit.InvalidResponseError) as caught:
        await provider.complete(evalkit.ChatRequest.from_prompt("hi", stream=True))
    error = caught.value
    shown = "".join(traceback.TracebackException(type(error), error, error.__traceback__,
                                                 capture_locals=True).format())
    assert "chunk =" in shown  # the local that held the echo is shown...
    assert FAKE_KEY not in shown and OTHER_KEY not in shown  # ...without the keys


async def test_key_split_across_network_chunks_never_reaches_the_streamed_deltas() -> None:
    # Chunk boundaries fall anywhere: here inside the key, within one SSE event. What the caller
    # sees live (each delta) is scrubbed event by event, not only the assembled answer.
    import json

    import httpx

    event = json.dumps({"id": "c", "model": "gpt-4o-mini", "choices": [
        {"index": 0, "delta": {"content": f"key={FAKE_KEY}."}, "finish_reason": "stop"}]})
    raw = f"data: {event}\n\ndata: [DONE]\n\n".encode()
    cut = raw.index(FAKE_KEY.encode()) + len(FAKE_KEY) // 2

    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield raw[:cut]
            yield raw[cut:]

    provider = evalkit.get_provider("openai:gpt-4o-mini", api_key=FAKE_KEY, base_url="http://echo.invalid",
                                    transport=httpx.MockTransport(lambda r: httpx.Response(
                                        200, headers={"content-type": "text/event-stream"}, stream=Chunks())))
    stream = provider.stream(evalkit.ChatRequest.from_prompt("hi", stream=True))
    deltas = [delta async for delta in stream]
    assert deltas == ["key=********."]
    assert stream.response is not None and stream.response.text == "key=********."


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_key_the_upstream_json_escaped_never_reaches_the_response(stream: bool) -> None:
    # PHP's json_encode writes "/" as "\/": the raw bytes never hold the key as is, the parsed text does.
    import json

    import httpx

    key = "test-only/slash-key-not-real"
    if stream:
        chunk = {"id": "c", "model": "gpt-4o-mini", "choices": [
            {"index": 0, "delta": {"content": f"echo {key}"}, "finish_reason": "stop"}]}
        raw = b"data: " + json.dumps(chunk).replace("/", "\\/").encode() + b"\n\ndata: [DONE]\n\n"
    else:
        raw = json.dumps(_answer_text("openai:gpt-4o-mini", f"echo {key}")).replace("/", "\\/").encode()
    provider = evalkit.get_provider("openai:gpt-4o-mini", api_key=key, base_url="http://echo.invalid",
                                    transport=httpx.MockTransport(lambda r: httpx.Response(
                                        200, headers={"content-type": "text/event-stream" if stream
                                                      else "application/json"}, content=raw)))
    response = await provider.complete(evalkit.ChatRequest.from_prompt("hi", stream=stream))
    assert response.text == "echo ********"
