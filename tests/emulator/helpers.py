"""Shared test helpers: fixture data, SSE parsing, key shapes and recorded cassettes."""

from __future__ import annotations

import base64
import gzip
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.shared import REPO, shared_path

WIRE_DIR = shared_path("wire") or REPO.parent / "shared" / "wire"

# One TLS context for every throwaway httpx client: building one per client costs ~30 ms (and the
# emulator is plain HTTP anyway).
TLS = ssl.create_default_context()


ANTHROPIC_AUTH = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
"""What the Anthropic API requires of every request: a key and the API version."""


def post(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.post`` without the per-call TLS setup cost."""
    return httpx.post(url, verify=TLS, timeout=kwargs.pop("timeout", 10), **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    """``httpx.get`` without the per-call TLS setup cost."""
    return httpx.get(url, verify=TLS, timeout=kwargs.pop("timeout", 10), **kwargs)


FIXTURE_ROWS: list[dict[str, Any]] = [
    {
        "id": "fx-num",
        "task_type": "math",
        "prompt": "What is 6 times 7?",
        "reference": 42,
        "grader": "numeric",
    },
    {
        "id": "fx-exact",
        "task_type": "math",
        "prompt": 'Which colour is the sky?\nOptions:\n(A) red\n(B) blue\n(C) green\n\nFinish with "So the answer is X."',
        "reference": "(B)",
        "grader": {"type": "exact", "answer_after": "So the answer is"},
    },
    {
        "id": "fx-bool",
        "task_type": "math",
        "prompt": "( not False ) is",
        "reference": "True",
        "grader": "exact",
    },
    {
        "id": "fx-mcq",
        "task_type": "factual_qa",
        "prompt": "Which planet is largest?\n\nA. Mars\nB. Venus\nC. Jupiter\nD. Earth",
        "reference": "C",
        "grader": {"type": "mcq", "choices": ["A", "B", "C", "D"]},
    },
    {
        "id": "fx-alias",
        "task_type": "factual_qa",
        "prompt": "Where are the Spanish Steps?",
        "reference": ["Rome", "Roma"],
        "grader": "alias",
    },
    {
        "id": "fx-alias2",
        "task_type": "factual_qa",
        "prompt": "What is the capital of France?",
        "reference": ["Paris"],
        "grader": {"type": "alias"},
    },
    {
        "id": "fx-label",
        "task_type": "classification",
        "messages": [
            {"role": "system", "content": "Classify the message."},
            {"role": "user", "content": "My card has not arrived yet."},
        ],
        "reference": "card_arrival",
        "grader": {"type": "label", "labels": ["card_arrival", "change_pin", "exchange_rate"]},
    },
    {
        "id": "fx-slots",
        "task_type": "classification",
        "prompt": "Book a table for 4 people at 7pm on Friday.",
        "reference": {"people": "4", "time": "7pm", "date": "Friday"},
        "grader": "slot_f1",
    },
    {
        "id": "fx-code",
        "task_type": "code",
        "prompt": "Write add(a, b) that returns the sum.",
        "reference": 'def add(a, b):\n    """Return a + b."""\n    return a + b\n',
        "grader": {
            "type": "code_exec",
            "tests": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
            "entry_point": "add",
        },
    },
    {
        "id": "fx-json",
        "task_type": "classification",
        "prompt": 'Reply with the JSON object {"a": 1}.',
        "reference": {"a": 1},
        "grader": "json",
    },
    {
        "id": "fx-judge",
        "task_type": "creative",
        "prompt": "Write a short poem about autumn leaves falling into a quiet river.",
        "reference": None,
        "grader": {"type": "judge", "mode": "single"},
    },
]
ROWS_BY_ID = {row["id"]: row for row in FIXTURE_ROWS}

DETERMINISTIC_FLEET = """
version: 1
defaults:
  price: {input: 1, output: 2}
  context_window: 1000
  latency: {ttft_ms: {median: 500, spread: 0.3}, tokens_per_s: {median: 50, spread: 0.2}}
  output_tokens: {median: 40, spread: 0.3}
models:
  - name: sure
    wires: [openai, anthropic, gemini]
    skills: {default: 1.0}
  - name: never
    wires: [openai, anthropic, gemini]
    skills: {default: 0.0}
  - name: flaky
    wires: [openai]
    skills: {default: 0.5}
    faults: {rate_limit: 0.10, server: 0.05, retry_after_s: 3}
  - name: scripted
    wires: [anthropic]
    skills: {default: 1.0}
    script: [{kind: "429", retry_after: 2, times: 2}, "500", ok]
"""


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """``(event, data)`` of each SSE event in a complete stream text."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        events.append((name, "\n".join(data)))
    return events


def key_shape(value: Any) -> Any:
    """The recursive key structure of a JSON value (lists by their first element, scalars as 'leaf')."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [key_shape(value[0])] if value else []
    return "leaf"


def collapse(sequence: list[Any]) -> list[Any]:
    """``sequence`` with runs of equal neighbours reduced to one."""
    out: list[Any] = []
    for item in sequence:
        if not out or out[-1] != item:
            out.append(item)
    return out


def recorded(relative: str) -> Iterator[tuple[dict[str, Any], int, dict[str, Any], bytes]]:
    """``(request, status, headers, body)`` of each interaction of a cassette in shared/wire."""
    data = yaml.safe_load((WIRE_DIR / relative).read_text(encoding="utf-8"))
    for interaction in data["interactions"]:
        rs = interaction["response"]
        headers = {k.lower(): v for k, v in rs["headers"].items()}
        if "parsed_body" in rs:
            body = json.dumps(rs["parsed_body"]).encode()
        else:
            body = rs["body"]["string"]
            body = body if isinstance(body, bytes) else body.encode()
            if "gzip" in str(headers.get("content-encoding", "")):
                body = gzip.decompress(body)
        yield interaction["request"], rs["status"]["code"], headers, body


def request_body(request: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of a recorded request."""
    if "parsed_body" in request:
        return request["parsed_body"]
    body = request["body"]
    body = body.get("string", body) if isinstance(body, dict) else body
    if isinstance(body, bytes):
        body = body.decode()
    if isinstance(body, str) and body.startswith("!!binary"):
        body = base64.b64decode(body.split(None, 1)[1]).decode()
    return json.loads(body)
