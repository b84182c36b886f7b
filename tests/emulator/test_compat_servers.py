"""The self-hosted servers the emulator imitates refuse requests as the real ones do.

``/llamacpp``, ``/vllm``, ``/ollama`` and ``/fastapi`` serve OpenAI's routes with each server's own
reading of a body and its own error body. The ``fastapi`` flavour is checked against a real FastAPI
app (in process), and ``llamacpp`` against llama-cpp-python's real server (``llamacpp_server``):
the same wrong requests get the same status and the same error body from both.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typing_extensions import TypedDict

from evalkit.emulator._urls import COMPAT_PREFIXES

from .helpers import post

GOOD = {"model": "sim-large", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
JSON = {"content-type": "application/json"}

# Requests every server refuses before it generates anything: (name, body bytes, headers).
WRONG: list[tuple[str, bytes, dict[str, str]]] = [
    ("octet-stream", json.dumps(GOOD).encode(), {"content-type": "application/octet-stream"}),
    ("no content type", json.dumps(GOOD).encode(), {}),
    ("text/plain", json.dumps(GOOD).encode(), {"content-type": "text/plain"}),
    ("broken json", b'{"model": "m", nope}', JSON),
    ("empty body", b"", JSON),
    ("array body", b"[1, 2]", JSON),
    ("max_tokens abc", json.dumps({**GOOD, "max_tokens": "abc"}).encode(), JSON),
    ("max_tokens 1.5", json.dumps({**GOOD, "max_tokens": 1.5}).encode(), JSON),
    ("messages not a list", json.dumps({**GOOD, "messages": "hi"}).encode(), JSON),
    ("temperature hot", json.dumps({**GOOD, "temperature": "hot"}).encode(), JSON),
    ("top_p list", json.dumps({**GOOD, "top_p": [1]}).encode(), JSON),
    ("seed text", json.dumps({**GOOD, "seed": "x"}).encode(), JSON),
    ("stop number", json.dumps({**GOOD, "stop": 5}).encode(), JSON),
    ("stop list of numbers", json.dumps({**GOOD, "stop": ["a", 5]}).encode(), JSON),
]


def _compat(emu: Any, server: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return post(f"{emu.base_url_for(server)}/chat/completions", content=body, headers=headers)


def test_every_prefix_has_a_server(emu: Any) -> None:
    from evalkit.emulator._compat import FLAVOURS

    assert tuple(FLAVOURS) == COMPAT_PREFIXES
    assert post(f"{emu.base_url}/nonesuch/v1/chat/completions", json=GOOD).status_code == 404


@pytest.mark.parametrize("server", COMPAT_PREFIXES)
def test_keys_are_optional_and_answers_are_openais(emu: Any, server: str) -> None:
    for headers in ({}, {"authorization": "Bearer anything"}):
        reply = _compat(emu, server, json.dumps(GOOD).encode(), {**JSON, **headers})
        assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"
    assert httpx.get(f"{emu.base_url_for(server)}/models").json()["object"] == "list"
    assert {r["wire"] for r in emu.stats()["recent"]} == {server}


def test_fastapi_servers_read_only_json_bodies(emu: Any) -> None:
    body = json.dumps(GOOD).encode()
    octet = {"content-type": "application/octet-stream"}
    vllm = _compat(emu, "vllm", body, octet)
    assert vllm.status_code == 400
    assert vllm.json()["error"]["type"] == "Bad Request" and vllm.json()["error"]["param"] == "body"
    assert vllm.json()["error"]["message"].startswith("1 validation error:\n  {'type': 'model_attributes_type'")
    llamacpp = _compat(emu, "llamacpp", body, octet)
    assert llamacpp.status_code == 500 and llamacpp.json()["error"]["type"] == "internal_server_error"
    fastapi = _compat(emu, "fastapi", body, octet)
    assert fastapi.status_code == 422
    assert fastapi.json() == {"detail": [{"type": "model_attributes_type", "loc": ["body"], "input": body.decode(),
                                          "msg": "Input should be a valid dictionary or object to extract fields "
                                                 "from"}]}
    assert _compat(emu, "ollama", body, octet).status_code == 200  # gin decodes JSON whatever the type


def test_ollama_words_errors_as_gos_json_decoder(emu: Any) -> None:
    cases = {
        json.dumps({**GOOD, "max_tokens": "100"}).encode():
            "json: cannot unmarshal string into Go struct field ChatCompletionRequest.max_tokens of type int",
        json.dumps({**GOOD, "max_tokens": 1.5}).encode():
            "json: cannot unmarshal number 1.5 into Go struct field ChatCompletionRequest.max_tokens of type int",
        json.dumps({**GOOD, "messages": "hi"}).encode():
            "json: cannot unmarshal string into Go struct field ChatCompletionRequest.messages of type "
            "[]openai.Message",
        json.dumps({**GOOD, "temperature": "hot"}).encode():
            "json: cannot unmarshal string into Go struct field ChatCompletionRequest.temperature of type float64",
        b"": "EOF",
        b'{"model": "m", nope}': "invalid character 'n' looking for beginning of object key string",
    }
    for body, message in cases.items():
        reply = _compat(emu, "ollama", body, JSON)
        assert reply.status_code == 400
        assert reply.json() == {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                          "code": None}}


def test_which_model_answers(emu: Any) -> None:
    unknown = json.dumps({**GOOD, "model": "no-such-model"}).encode()
    unnamed = json.dumps({k: v for k, v in GOOD.items() if k != "model"}).encode()
    # llama.cpp answers with the model it loaded whatever the name; vLLM with its model when none is named.
    assert _compat(emu, "llamacpp", unknown, JSON).json()["model"] == "sim-large"
    assert _compat(emu, "llamacpp", unnamed, JSON).status_code == 200
    assert _compat(emu, "vllm", unnamed, JSON).status_code == 200
    assert _compat(emu, "vllm", unknown, JSON).json() == {"error": {
        "message": "The model `no-such-model` does not exist.", "type": "NotFoundError", "param": "model",
        "code": 404}}
    assert _compat(emu, "ollama", unknown, JSON).json()["error"] == {
        "message": 'model "no-such-model" not found, try pulling it first', "type": "not_found_error",
        "param": None, "code": None}


# -- against real FastAPI ----------------------------------------------------------------------------


class _Message(TypedDict, total=False):
    role: str
    content: Any
    name: str


class _StreamOptions(TypedDict, total=False):
    include_usage: bool


class _ChatRequest(BaseModel):
    """The chat fields the emulator checks, typed as the FastAPI servers declare them."""

    model: str
    messages: list[_Message]
    max_tokens: Optional[int] = None  # noqa: UP045
    temperature: Optional[float] = None  # noqa: UP045
    top_p: Optional[float] = None  # noqa: UP045
    seed: Optional[int] = None  # noqa: UP045
    stream: Optional[bool] = None  # noqa: UP045
    stop: Optional[Union[str, list[str]]] = None  # noqa: UP007, UP045
    stream_options: Optional[_StreamOptions] = None  # noqa: UP045


def _fastapi_app() -> FastAPI:
    """A FastAPI app with FastAPI's defaults (strict content type, the 422 validation handler)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    def chat(request: _ChatRequest) -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def real_fastapi() -> Any:
    with TestClient(_fastapi_app()) as client:
        yield client


FASTAPI_WRONG = WRONG + [
    ("missing model", json.dumps({"messages": GOOD["messages"]}).encode(), JSON),
    ("missing messages", json.dumps({"model": "m"}).encode(), JSON),
    ("message not an object", json.dumps({**GOOD, "messages": ["hi"]}).encode(), JSON),
    ("include_usage maybe", json.dumps({**GOOD, "stream_options": {"include_usage": "maybe"}}).encode(), JSON),
    ("two wrong fields", json.dumps({**GOOD, "max_tokens": "x", "stream": [True]}).encode(), JSON),
]


@pytest.mark.parametrize(("name", "body", "headers"), FASTAPI_WRONG, ids=[case[0] for case in FASTAPI_WRONG])
def test_fastapi_flavour_answers_as_fastapi_does(emu: Any, real_fastapi: Any, name: str, body: bytes,
                                                 headers: dict[str, str]) -> None:
    real = real_fastapi.post("/v1/chat/completions", content=body, headers=headers)
    ours = _compat(emu, "fastapi", body, headers)
    assert (ours.status_code, ours.json()) == (real.status_code, real.json())


# -- against llama-cpp-python's real server ------------------------------------------------------------


def _without_endpoint_context(message: str) -> str:
    # FastAPI appends where the endpoint lives ("\n  File \".../llama_cpp/server/app.py\", line N, ...")
    # to the text of a validation error; it names the server's install path, which the emulator has not.
    return message.split('\n  File "', 1)[0]


@pytest.mark.parametrize(("name", "body", "headers"), WRONG, ids=[case[0] for case in WRONG])
def test_llamacpp_flavour_answers_as_llama_cpp_python_does(emu: Any, llamacpp_server: Any, name: str,
                                                           body: bytes, headers: dict[str, str]) -> None:
    real = httpx.post(f"{llamacpp_server.base_url}/chat/completions", content=body, headers=headers, timeout=60)
    ours = _compat(emu, "llamacpp", body, headers)
    assert ours.status_code == real.status_code == 500
    assert ours.headers["content-type"] == real.headers["content-type"]
    if not real.headers["content-type"].startswith("application/json"):
        assert ours.text == real.text == "Internal Server Error"
        return
    real_error, our_error = real.json()["error"], ours.json()["error"]
    assert _without_endpoint_context(real_error.pop("message")) == our_error.pop("message")
    assert our_error == real_error == {"type": "internal_server_error", "param": None, "code": None}


def _stream_chunks(url: str, model: str) -> list[dict[str, Any]]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url, json=body, timeout=60.0) as response:
        assert response.status_code == 200
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_llamacpp_streams_no_usage_like_the_real_server(emu: Any, llamacpp_server: Any) -> None:
    # llama-cpp-python ignores stream_options.include_usage: a client must estimate. The flavour must too,
    # or tests of that estimate against the emulator would pass on counts no real llama.cpp sends.
    real = _stream_chunks(llamacpp_server.base_url + "/chat/completions", llamacpp_server.model)
    emulated = _stream_chunks(emu.base_url_for("llamacpp") + "/chat/completions", "sim-large")
    for chunks in (real, emulated):
        assert chunks and not any(chunk.get("usage") for chunk in chunks)
    vendor = _stream_chunks(emu.base_url_for("vllm") + "/chat/completions", "sim-large")
    assert vendor[-1].get("usage")  # a server that honours include_usage still sends it
