"""The Starlette app: the servers' routes, their checks, fault selection and the control endpoints.

Routes (all on one port):

* OpenAI: ``POST /v1/chat/completions``, ``GET /v1/models[/{id}]``
* Anthropic: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``, ``GET /v1/models``
  (when the request carries ``x-api-key`` or ``anthropic-version``)
* Gemini: ``POST /v1beta/models/{model}:generateContent|streamGenerateContent|countTokens``,
  ``GET /v1beta/models``
* OpenAI-compatible self-hosted servers (``llamacpp``, ``vllm``, ``ollama``, ``fastapi``):
  ``POST /{server}/v1/chat/completions``, ``GET /{server}/v1/models``
* Control: ``GET /_emulator/stats``, ``POST /_emulator/reset``, ``POST /_emulator/script``,
  ``GET /_emulator/fleet``

Every call route goes through the same steps, each server's own way (``_servers``):
credentials and required headers, then the body (content type, JSON, field types),
then the call's values; a request the real server refuses is refused here with
that server's status and error body, and recorded in the stats like any other.

Request bodies are read with limits (:data:`MAX_BODY_BYTES`, and JSON nesting
and integer length through :func:`evalkit._json.loads_checked`): a body past
them is a 400 in the vendor's error shape, never a 500. A client that goes
away while its request is read is not an error: nothing is logged.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .._json import loads_checked
from ._plans import error_plan
from ._rate_limits import metered_tokens
from ._reply import answer_plan, rate_limited_plan
from ._responses import PlannedResponse
from ._servers import COMPAT_SERVERS, SERVERS, Server
from ._simulate import ChatCall
from ._specs import ModelSpec, RateLimits
from ._state import EmulatorState
from ._stats import RequestRecord, redact_headers, redact_query, summarise_body
from ._wire_common import RateSnapshot, ReplyContext, WireError
from ._wire_openai import WIRE as OPENAI
from .faults import parse_steps

__all__ = ["build_app"]

_IDLE_LIMITS = RateLimits()
MAX_BODY_BYTES = 32 << 20
"""Largest request body read (a 128k-token prompt is about 0.5 MB)."""


class BodyError(ValueError):
    """A request body past the size limit; the message is what the client is told."""


def build_app(state: EmulatorState) -> Starlette:
    """The emulator's ASGI app over ``state``."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _openai_chat, methods=["POST"]),
            Route("/v1/messages", _anthropic_messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", _anthropic_count_tokens, methods=["POST"]),
            Route("/v1/models", _list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", _get_model, methods=["GET"]),
            Route("/v1beta/models", _gemini_models, methods=["GET"]),
            Route("/v1beta/models/{target:path}", _gemini_post, methods=["POST"]),
            Route("/_emulator/stats", _stats, methods=["GET"]),
            Route("/_emulator/reset", _reset, methods=["POST"]),
            Route("/_emulator/script", _script, methods=["POST"]),
            Route("/_emulator/fleet", _fleet, methods=["GET"]),
            Route("/{server}/v1/chat/completions", _compat_chat, methods=["POST"]),
            Route("/{server}/v1/models", _compat_models, methods=["GET"]),
        ],
        exception_handlers={ClientDisconnect: _client_gone},
    )
    app.state.emulator = state
    return app


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client closed its connection while sending the request: nobody is left to answer, and it is
    # not the emulator's error. uvicorn drops what is sent on a closed connection.
    return Response(status_code=499)


async def _read_body(request: Request) -> bytes:
    """The raw body, or :class:`BodyError` past :data:`MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyError(f"Request body too large: {declared} bytes; at most {MAX_BODY_BYTES} are accepted.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyError(f"Request body too large: more than {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


async def _openai_chat(request: Request) -> PlannedResponse:
    return await _handle_chat(request, SERVERS["openai"])


async def _anthropic_messages(request: Request) -> PlannedResponse:
    return await _handle_chat(request, SERVERS["anthropic"])


async def _compat_chat(request: Request) -> Any:
    server = COMPAT_SERVERS.get(request.path_params["server"])
    if server is None:
        return PlainTextResponse("Not Found", status_code=404)
    return await _handle_chat(request, server)


async def _gemini_post(request: Request) -> Any:
    target = request.path_params["target"]
    model, _, action = target.rpartition(":")
    server = SERVERS["gemini"]
    if action in ("generateContent", "streamGenerateContent"):
        return await _handle_chat(request, server, model=model, stream=action == "streamGenerateContent")
    if action == "countTokens":
        return await _count_tokens(request, server, model=model)
    return _refusal(request, server, WireError("", kind="not_found"), model or target)


def _idle_rate(limits: RateLimits = _IDLE_LIMITS) -> RateSnapshot:
    return RateSnapshot(
        limits.requests_per_minute,
        limits.tokens_per_minute,
        limits.requests_per_minute,
        limits.tokens_per_minute,
        0.0,
        0.0,
    )


def _refusal(request: Request, server: Server, exc: WireError, model: str = "") -> PlannedResponse:
    """``server``'s answer to a request it turns away (not recorded in the stats: no call was made)."""
    state = _state(request)
    reply = server.refuse(exc, ReplyContext(model, server.wire.new_request_id(), _idle_rate()))
    return PlannedResponse(error_plan(reply), state.registry, state.interrupts)


def _default_model(state: EmulatorState) -> str | None:
    """The model a server answers with when it picks one itself: the fleet's first on the OpenAI wire."""
    serving = state.fleet.serving(OPENAI.name)
    return serving[0].name if serving else None


async def _handle_chat(
    request: Request, server: Server, *, model: str | None = None, stream: bool | None = None
) -> PlannedResponse:
    state = _state(request)
    try:
        raw, too_big = await _read_body(request), None
    except BodyError as exc:
        raw, too_big = b"", str(exc)
    rec = RequestRecord(
        server.name,
        request.method,
        request.url.path,
        redact_query(request.query_params),
        redact_headers(request.headers),
        None,
        model=model or "",
        stream=bool(stream),
    )
    request_id = server.wire.new_request_id()

    def refuse(exc: WireError) -> PlannedResponse:
        if rec.body is None:
            rec.body = summarise_body(raw)
        reply = server.refuse(exc, ReplyContext(rec.model, request_id, _idle_rate()))
        rec.status = str(reply.status)
        state.stats.record(rec)
        return PlannedResponse(error_plan(reply), state.registry, state.interrupts)

    try:
        call, spec = _admit(request, server, state, rec, raw, too_big, stream)
    except WireError as exc:
        return refuse(exc)
    rec.prompt_tokens = state.simulator.prompt_tokens(call)
    # The rate limits come first, as at a vendor's gateway: a refused call draws no fault.
    admission = state.rates.take(spec, metered_tokens(rec.prompt_tokens, call, spec))
    if admission.refused is not None:
        plan = rate_limited_plan(server.wire, rec, call, spec, admission, request_id)
    else:
        attempt = state.next_attempt(spec.name, call.fingerprint)
        try:
            step = state.pick_fault(request.headers, spec, call.fingerprint, attempt)
        except ValueError as exc:  # the message names the bad x-evalkit-* header
            return refuse(WireError(str(exc)))
        plan = answer_plan(state, server.wire, rec, call, spec, step, attempt, request_id, admission.snapshot)
    state.stats.record(rec)
    return PlannedResponse(plan, state.registry, state.interrupts)


def _admit(request: Request, server: Server, state: EmulatorState, rec: RequestRecord, raw: bytes,
           too_big: str | None, stream: bool | None) -> tuple[ChatCall, ModelSpec]:
    """The call and the model that serves it, or the :class:`WireError` the server answers instead."""
    server.credentials(request.headers, request.query_params)
    if too_big is not None:
        raise WireError(too_big)
    body = server.read(request.headers, raw)
    rec.body = summarise_body(raw, body)
    if server.default_model != "never" and not body.get("model") and (fallback := _default_model(state)):
        body = {**body, "model": fallback}
    wire = server.wire
    call = wire.parse_request(body, model=rec.model or None, stream=stream, query=request.query_params)
    if not server.streams_usage:
        call = dataclasses.replace(call, include_usage=False)
    rec.model, rec.stream = call.model, call.stream
    spec = state.fleet.get(call.model)
    if (spec is None or not spec.serves(wire.name)) and server.default_model == "any":
        spec = state.fleet.get(_default_model(state) or "")
        if spec is not None:
            call = dataclasses.replace(call, model=spec.name)
            rec.model = spec.name
    if spec is None or not spec.serves(wire.name):
        raise WireError("", kind="not_found")
    wire.check_call(call, spec)  # what the vendor refuses only once it knows the model
    return call, spec


async def _anthropic_count_tokens(request: Request) -> Any:
    return await _count_tokens(request, SERVERS["anthropic"])


async def _count_tokens(request: Request, server: Server, model: str | None = None) -> Any:
    state = _state(request)
    try:
        server.credentials(request.headers, request.query_params)
        raw = await _read_body(request)
        assert server.read_count is not None
        body = server.read_count(request.headers, raw)
        body = server.wire.count_request(body)
        call = server.wire.parse_request(body, model=model, stream=False, query=request.query_params)
    except BodyError as exc:
        return _refusal(request, server, WireError(str(exc)), model or "")
    except WireError as exc:
        return _refusal(request, server, exc, model or "")
    spec = state.fleet.get(call.model)
    if spec is None or not spec.serves(server.wire.name):
        return _refusal(request, server, WireError("", kind="not_found"), call.model)
    return JSONResponse(server.wire.count_tokens_payload(state.simulator.prompt_tokens(call)))


def _openai_or_anthropic(request: Request) -> Server:
    """Who ``GET /v1/models`` asks: Anthropic's SDK sends its version header (and usually x-api-key)."""
    anthropic = "anthropic-version" in request.headers or "x-api-key" in request.headers
    return SERVERS["anthropic" if anthropic else "openai"]


def _turned_away(request: Request, server: Server, model: str = "") -> PlannedResponse | None:
    """The server's refusal of a request without the credentials (and headers) it requires."""
    try:
        server.credentials(request.headers, request.query_params)
    except WireError as exc:
        return _refusal(request, server, exc, model)
    return None


async def _list_models(request: Request) -> Any:
    server = _openai_or_anthropic(request)
    refused = _turned_away(request, server)
    return refused or JSONResponse(server.wire.models_payload(_state(request).fleet, int(time.time())))


async def _get_model(request: Request) -> Any:
    server = _openai_or_anthropic(request)
    name = request.path_params["model_id"]
    if refused := _turned_away(request, server, name):
        return refused
    spec = _state(request).fleet.get(name)
    if spec is None or not server.wire.lists(spec):
        return _refusal(request, server, WireError("", kind="not_found"), name)
    return JSONResponse(server.wire.model_payload(spec, int(time.time())))


async def _gemini_models(request: Request) -> Any:
    server = SERVERS["gemini"]
    refused = _turned_away(request, server)
    return refused or JSONResponse(server.wire.models_payload(_state(request).fleet, int(time.time())))


async def _compat_models(request: Request) -> Any:
    if request.path_params["server"] not in COMPAT_SERVERS:
        return PlainTextResponse("Not Found", status_code=404)
    return JSONResponse(OPENAI.models_payload(_state(request).fleet, int(time.time())))


async def _stats(request: Request) -> JSONResponse:
    state = _state(request)
    return JSONResponse({**state.stats.snapshot(), "scripts": state.scripts.pending()})


async def _reset(request: Request) -> JSONResponse:
    _state(request).reset()
    return JSONResponse({"ok": True})


async def _script(request: Request) -> JSONResponse:
    state = _state(request)
    try:
        body = loads_checked(await _read_body(request))
        model = body["model"]
        if model not in state.fleet:
            raise ValueError(f"no model {model!r} in the fleet")
        steps = parse_steps(body.get("faults", body.get("steps", [])))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return JSONResponse({"error": f"bad script: {exc}"}, status_code=400)
    state.scripts.program(model, steps, append=bool(body.get("append")))
    return JSONResponse({"model": model, "pending": state.scripts.pending().get(model, [])})


async def _fleet(request: Request) -> JSONResponse:
    return JSONResponse({"models": [_describe(m) for m in _state(request).fleet]})


def _describe(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "wires": list(spec.wires),
        "price_per_1m": {
            "input": str(spec.price.input),
            "cached_input": str(spec.price.cached_input),
            "output": str(spec.price.output),
        },
        "context_window": spec.context_window,
        "max_output_tokens": spec.max_output_tokens,
        "skills": dict(spec.skills),
        "fault_rates": dict(spec.faults.rates),
        "rate_limits": {
            "requests_per_minute": spec.rate_limits.requests_per_minute,
            "tokens_per_minute": spec.rate_limits.tokens_per_minute,
            "enforce": spec.rate_limits.enforce,
        },
        "prefill": spec.prefill,
    }
