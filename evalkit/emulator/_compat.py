"""Self-hosted OpenAI-compatible servers: how llama-cpp-python, vLLM, Ollama and plain FastAPI say no.

They answer successes in OpenAI's shape (the emulator renders them with
``_wire_openai``), but each reads and refuses requests its own way:

* **FastAPI servers** (``fastapi``, ``llamacpp``, ``vllm``) parse the body as JSON only when the
  content type is ``application/json`` or ``application/*+json`` (FastAPI's strict content type,
  the default since 0.132): any other body stays bytes and fails validation as
  ``model_attributes_type`` at ``["body"]``; an empty body is ``missing``; broken JSON is
  ``json_invalid``. Field types are pydantic v2's lax reading (``"100"`` is 100). What the
  client sees differs:

  - ``fastapi``: FastAPI's default, 422 ``{"detail": [{"type", "loc", "msg", "input", "ctx"}...]}``.
  - ``vllm``: 400 ``{"error": {"message": "1 validation error:\\n  {...}", "type": "Bad Request",
    "param": "body.max_tokens", "code": 400}}`` (vLLM's ``validation_exception_handler``).
  - ``llamacpp``: 500 ``{"error": {"message": "1 validation error:...", "type":
    "internal_server_error", "param": null, "code": null}}``: llama-cpp-python's
    ``RouteErrorHandler`` catches the validation error as an unexpected exception. When the body
    is not valid JSON at all, that handler's own ``request.json()`` fails and Starlette answers a
    bare ``500 Internal Server Error`` in text/plain.

* **Ollama** (Go, gin): ``ShouldBindJSON`` decodes the body whatever its content type, with Go's
  ``encoding/json`` (strict types: ``"100"`` is not an int), and answers 400
  ``{"error": {"message": "json: cannot unmarshal string into Go struct field
  ChatCompletionRequest.max_tokens of type int", "type": "invalid_request_error", "param": null,
  "code": null}}``.

Keys are optional on all of them (none is configured), as on a default local install.
llama.cpp answers with the one model it loaded whatever name is asked; vLLM uses its model when
the request names none. The emulator stands in its first model served on the OpenAI wire there.
Other refusals keep each server's envelope with the emulator's (OpenAI's) sentence; injected
faults (429, 500...) are answered in OpenAI's error shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._json import JSONLimitError, loads_checked
from ._field_types import OPENAI_CHAT, PYDANTIC_MESSAGES, Problem, check_fields, json_type
from ._request_checks import is_json_media, media_type
from ._wire_common import HttpReply, ReplyContext, WireError, compact_json

__all__ = ["FLAVOURS", "Flavour"]

_GO_TYPES = {"messages": "[]openai.Message", "stream_options": "openai.StreamOptions",
             "response_format": "openai.ResponseFormat"}
_GO_KINDS = {"string": "string", "integer": "int", "number": "float64", "boolean": "bool",
             "array": "[]interface {}", "object": "map[string]interface {}"}
_GO_JSON = {"string": "string", "integer": "number", "number": "number", "boolean": "bool", "array": "array",
            "object": "object"}
_GO_SYNTAX = (  # Python's json message -> what Go's scanner says at the same place
    ("Expecting property name", "looking for beginning of object key string"),
    ("Expecting ':' delimiter", "after object key"),
    ("Expecting ',' delimiter", "after object key:value pair"),
    ("Extra data", "after top-level value"),
)
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict"})
_PLAIN_500 = HttpReply(500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error")


@dataclass(frozen=True, slots=True)
class Flavour:
    """One kind of OpenAI-compatible server: how it reads a body and how it answers a refusal."""

    name: str
    framework: Literal["fastapi", "gin"]
    required: tuple[str, ...]
    """Fields its request model requires (validated as ``missing`` before anything else)."""
    default_model: Literal["never", "missing", "any"]
    """When the server's own model answers: never, when the request names none, or always."""
    render: Callable[[WireError, ReplyContext], HttpReply]
    streams_usage: bool = True
    """Whether ``stream_options.include_usage`` is honoured (llama-cpp-python ignores it: no usage chunk)."""

    def read(self, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        """The request body as this server reads it, field types checked; :class:`WireError` else."""
        if self.framework == "gin":
            return _gin_body(raw)
        return _fastapi_body(headers, raw, self)


def _fastapi_body(headers: Mapping[str, str], raw: bytes, flavour: Flavour) -> dict[str, Any]:
    if not raw:
        _refuse_validation([_error("missing", ("body",), None)], raw, flavour)
    if not is_json_media(media_type(headers)):
        _refuse_validation([_error("model_attributes_type", ("body",), raw)], raw, flavour)
    try:
        body = loads_checked(raw)
    except JSONLimitError as exc:  # past the emulator's own limits: refused before the framework sees it
        raise WireError(f"Request body refused: {exc}.") from None
    except ValueError as exc:  # FastAPI reports the decoder's position and sentence
        pos, msg = getattr(exc, "pos", 0), getattr(exc, "msg", str(exc))
        _refuse_validation([_error("json_invalid", ("body", pos), {}, msg="JSON decode error",
                                   ctx={"error": msg})], raw, flavour)
    if not isinstance(body, dict):
        _refuse_validation([_error("model_attributes_type", ("body",), body)], raw, flavour)
    body, problems = check_fields(body, OPENAI_CHAT, "pydantic", required=flavour.required)
    if problems:
        _refuse_validation([_from_problem(p, body) for p in problems], raw, flavour)
    return body


def _error(kind: str, loc: tuple[Any, ...], value: Any, *, msg: str = "", ctx: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """One pydantic error as FastAPI collects it (``exc.errors()``: no ``url``)."""
    error = {"type": kind, "loc": loc, "msg": msg or PYDANTIC_MESSAGES[kind], "input": value}
    if ctx is not None:
        error["ctx"] = ctx
    return error


def _from_problem(problem: Problem, body: Mapping[str, Any]) -> dict[str, Any]:
    # A missing field's input is the object it is missing from, as pydantic reports it.
    value = body if problem.error == "missing" else problem.value
    return _error(problem.error, ("body", *problem.path), value)


def _refuse_validation(errors: list[dict[str, Any]], raw: bytes, flavour: Flavour) -> None:
    count = len(errors)
    summary = f"{count} validation error{'s' if count != 1 else ''}:\n" + "".join(f"  {e}\n" for e in errors)
    # llama-cpp-python's handler parses the body again to word the error; broken JSON crashes it.
    kind = "unhandled" if flavour.name == "llamacpp" and not _is_json(raw) else "bad_request"
    raise WireError(summary, kind=kind, problems=tuple(errors))


def _is_json(raw: bytes) -> bool:
    try:
        loads_checked(raw)
    except ValueError:
        return False
    return True


def _gin_body(raw: bytes) -> dict[str, Any]:
    """Go's ``json.Unmarshal`` into Ollama's ``ChatCompletionRequest``: the first error wins."""
    if not raw.strip():
        raise WireError("EOF")
    try:
        body = loads_checked(raw)
    except JSONLimitError as exc:
        raise WireError(f"Request body refused: {exc}.") from None
    except ValueError as exc:
        raise WireError(_go_syntax_error(raw, exc)) from None
    if not isinstance(body, dict):
        raise WireError(f"json: cannot unmarshal {_GO_JSON[json_type(body)]} into Go value of type "
                        "openai.ChatCompletionRequest")
    body, problems = check_fields(body, OPENAI_CHAT, "strict")
    if problems:
        raise WireError(_go_type_error(problems[0]))
    return body


def _go_syntax_error(raw: bytes, exc: ValueError) -> str:
    """Go's ``encoding/json`` sentence for the place Python's decoder stopped at."""
    text, pos = raw.decode("utf-8", "replace"), getattr(exc, "pos", 0)
    if pos >= len(text.rstrip()):
        return "unexpected EOF"
    expected = next((go for py, go in _GO_SYNTAX if getattr(exc, "msg", "").startswith(py)),
                    "looking for beginning of value")
    return f"invalid character {text[pos]!r} {expected}"


def _go_type_error(problem: Problem) -> str:
    names = [str(p) for p in problem.path if not isinstance(p, int)]
    spec = problem.expected
    if isinstance(problem.path[-1], int):  # an element of a list field
        go_type = _GO_TYPES.get(names[-1], _GO_KINDS.get(spec.kind, "")).removeprefix("[]")
    else:
        go_type = _GO_TYPES.get(names[-1]) if len(names) == 1 else None
        go_type = go_type or _GO_KINDS.get(spec.kind, "interface {}")
    got = _GO_JSON[json_type(problem.value)]
    if got == "number":
        got = f"number {json.dumps(problem.value)}"
    field = ".".join(names)
    return f"json: cannot unmarshal {got} into Go struct field ChatCompletionRequest.{field} of type {go_type}"


# -- how each server answers -----------------------------------------------------------------------


def _json_reply(status: int, payload: Any) -> HttpReply:
    return HttpReply(status, [("content-type", "application/json")], compact_json(payload))


def _jsonable(error: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error as FastAPI's ``jsonable_encoder`` writes it (tuples as lists, bytes as text)."""
    out = dict(error)
    out["loc"] = list(error["loc"])
    if isinstance(error["input"], bytes):
        out["input"] = error["input"].decode("utf-8", "replace")
    return out


def _openai_envelope(message: str, err_type: str, param: Any = None, code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def _not_found(ctx: ReplyContext) -> str:
    return f"The model `{ctx.model}` does not exist."


def _render_fastapi(exc: WireError, ctx: ReplyContext) -> HttpReply:
    if exc.problems:
        return _json_reply(422, {"detail": [_jsonable(e) for e in exc.problems]})
    if exc.kind == "not_found":
        return _json_reply(404, {"detail": _not_found(ctx)})
    return _json_reply(400, {"detail": exc.message})


def _render_vllm(exc: WireError, ctx: ReplyContext) -> HttpReply:
    if exc.kind == "not_found":
        return _json_reply(404, {"error": {"message": _not_found(ctx), "type": "NotFoundError",
                                           "param": "model", "code": 404}})
    if exc.problems:
        # vLLM names the first field, leaving out pydantic's union tags ("str", "list[str]").
        loc = [str(p) for p in exc.problems[0]["loc"] if str(p) not in _UNION_TAGS and "[" not in str(p)]
        return _json_reply(400, {"error": {"message": exc.message.rstrip(), "type": "Bad Request",
                                           "param": ".".join(loc), "code": 400}})
    return _json_reply(400, {"error": {"message": exc.message, "type": "BadRequestError", "param": None,
                                       "code": 400}})


def _render_llamacpp(exc: WireError, ctx: ReplyContext) -> HttpReply:
    if exc.kind == "unhandled":
        return _PLAIN_500
    return _json_reply(500, _openai_envelope(exc.message, "internal_server_error"))


def _render_ollama(exc: WireError, ctx: ReplyContext) -> HttpReply:
    if exc.kind == "not_found":
        message = f'model "{ctx.model}" not found, try pulling it first'
        return _json_reply(404, _openai_envelope(message, "not_found_error"))
    return _json_reply(400, _openai_envelope(exc.message, "invalid_request_error"))


FLAVOURS: Mapping[str, Flavour] = {  # the names are _urls.COMPAT_PREFIXES
    f.name: f
    for f in (
        Flavour("llamacpp", "fastapi", (), "any", _render_llamacpp, streams_usage=False),
        Flavour("vllm", "fastapi", ("messages",), "missing", _render_vllm),
        Flavour("ollama", "gin", (), "never", _render_ollama),
        Flavour("fastapi", "fastapi", ("model", "messages"), "never", _render_fastapi),
    )
}
"""The self-hosted servers the emulator imitates, by the path prefix they are served under."""
