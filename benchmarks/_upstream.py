"""A zero-delay OpenAI-compatible upstream for ``router_overhead.py`` (127.0.0.1 only).

Run alone: ``python benchmarks/_upstream.py [--port 0] [--core 1]``; it prints
``PORT <n>`` once it listens and serves until killed. Plain asyncio streams,
HTTP/1.1 keep-alive, Content-Length bodies, no framework, so the client side is
what a benchmark measures. Every answer is prebuilt bytes:

* ``POST /v1/chat/completions``: a real-shaped ``chat.completion`` with usage;
  with ``"stream": true`` in the body, a short SSE stream (role, three deltas,
  finish, usage chunk, ``data: [DONE]``);
* ``POST /fail/v1/chat/completions``: 500 with OpenAI's ``server_error`` body;
* ``GET /stats``: ``{"cpu_s": <this process's CPU seconds>, "requests": n}``, so
  the benchmark can show how busy the upstream was (is it the bottleneck?).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import time

HOST = "127.0.0.1"
MAX_REQUESTS_PER_CONNECTION = 10_000_000  # a bound, never reached in a benchmark
MAX_BODY = 1 << 20
_HEADERS = (
    "x-request-id: req_bench0000000000000000000001\r\n"
    "openai-processing-ms: 0\r\n"
    "x-ratelimit-limit-requests: 30000\r\nx-ratelimit-remaining-requests: 29999\r\n"
    "x-ratelimit-limit-tokens: 150000000\r\nx-ratelimit-remaining-tokens: 149999970\r\n"
    "x-ratelimit-reset-requests: 2ms\r\nx-ratelimit-reset-tokens: 0s\r\n"
)
_MODEL = "gpt-4o-mini-2024-07-18"
_USAGE = {
    "prompt_tokens": 19, "completion_tokens": 8, "total_tokens": 27,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}
_COMMON = {"id": "chatcmpl-bench0000000000000000000001", "created": 1735689600, "model": _MODEL,
           "service_tier": "default", "system_fingerprint": "fp_bench0001"}


def _response(status: str, content_type: str, body: bytes, extra: str = _HEADERS) -> bytes:
    head = (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
            f"date: Wed, 01 Jan 2025 00:00:00 GMT\r\n{extra}\r\n")
    return head.encode() + body


def _completion() -> bytes:
    message = {"role": "assistant", "content": "Paris.", "refusal": None, "annotations": []}
    body = {**_COMMON, "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": _USAGE}
    return _response("200 OK", "application/json", json.dumps(body).encode())


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body = {**_COMMON, "object": "chat.completion.chunk", "choices": choices, "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _stream() -> bytes:
    parts = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    parts += [_chunk({"content": text}) for text in ("Par", "is", ".")]
    parts += [_chunk({}, finish="stop"), _chunk({}, usage=_USAGE), b"data: [DONE]\n\n"]
    return _response("200 OK", "text/event-stream; charset=utf-8", b"".join(parts))


def _failure() -> bytes:
    error = {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                       "type": "server_error", "param": None, "code": None}}
    return _response("500 Internal Server Error", "application/json", json.dumps(error).encode())


OK, STREAM, FAIL = _completion(), _stream(), _failure()
NOT_FOUND = _response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}', "")
SERVED = [0]


def _content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17:end])


def answer(head: bytes, body: bytes) -> bytes:
    """The prebuilt reply for one request (``head`` is lower-cased)."""
    line = head[:head.find(b"\r\n")]
    SERVED[0] += 1
    if line.startswith(b"post /v1/chat/completions "):
        return STREAM if (b'"stream":true' in body or b'"stream": true' in body) else OK
    if line.startswith(b"post /fail/"):
        return FAIL
    if line.startswith(b"get /stats "):
        stats = json.dumps({"cpu_s": time.process_time(), "requests": SERVED[0]}).encode()
        return _response("200 OK", "application/json", stats, "")
    return NOT_FOUND


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            length = _content_length(head)
            if b"\r\ntransfer-encoding: chunked" in head or length > MAX_BODY:
                writer.write(_response("411 Length Required", "text/plain", b"", "connection: close\r\n"))
                break
            body = await reader.readexactly(length) if length else b""
            writer.write(answer(head, body))
            if b"\r\nconnection: close" in head:
                break
            if writer.transport.get_write_buffer_size() > 65536:
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve_connection, HOST, port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def upstream_stats(port: int) -> dict:
    """The upstream's ``GET /stats`` (read outside any timing)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def pin(core: int) -> bool:
    """Run this process on ``core`` alone, when the machine has it."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    try:
        os.sched_setaffinity(0, {core})
    except OSError:  # no such core here, or not allowed
        return False
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--core", type=int, default=1, help="CPU core to pin to (-1: no pinning)")
    args = parser.parse_args()
    if args.core >= 0:
        pin(args.core)
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        pass
