"""Cookies a vendor sets are kept and sent back (as the official SDKs' httpx clients do); answers without one cost
no cookie parsing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from evalkit import ChatRequest, get_provider

ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


class CookieSettingUpstream(BaseHTTPRequestHandler):
    """Sets a Cloudflare-style cookie on its first answer only; remembers the Cookie header of every request."""

    seen: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.rfile.read(int(self.headers["content-length"]))
        type(self).seen.append(self.headers.get("cookie"))
        body = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if len(type(self).seen) == 1:
            self.send_header("set-cookie", "__cf_bm=abc123; path=/; HttpOnly")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    CookieSettingUpstream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), CookieSettingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


async def test_a_cookie_the_vendor_sets_is_sent_back_and_answers_without_one_change_nothing(upstream: str) -> None:
    provider = get_provider("openai:m", api_key="sk-test-cookie-0000", base_url=upstream, prices={"input": 1,
                                                                                                    "output": 1})
    request = ChatRequest.from_prompt("hello", max_tokens=5)
    for _ in range(3):
        assert (await provider.complete(request)).text == "hi"
    await provider.aclose()
    assert CookieSettingUpstream.seen == [None, "__cf_bm=abc123", "__cf_bm=abc123"]
