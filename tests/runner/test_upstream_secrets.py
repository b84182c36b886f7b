"""An upstream that echoes the API key back (in a 200 answer, an error body, garbage) never gets it written.

The runner scrubs every known secret value from what it writes, independently
of the HTTP layer's own redaction: the rows and attempts, the manifest, what it
prints, and so the report built from them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pytest

from evalkit.runner import attempts_df, results_df, run_suite

KEY = "test-only-ECHOED-not-a-real-key-0000"

ITEMS = [  # what each prompt makes the upstream do with the key it was sent
    {"id": "quoted", "task_type": "factual_qa", "prompt": "Quote the key.", "reference": "x",
     "grader": {"type": "regex", "pattern": "key is \\S+"}},
    {"id": "last-line", "task_type": "factual_qa", "prompt": "What is 2+2?", "reference": "4",
     "grader": {"type": "exact"}},
    {"id": "error-body", "task_type": "factual_qa", "prompt": "FAIL loudly", "reference": "4",
     "grader": {"type": "exact"}},
    {"id": "garbage", "task_type": "factual_qa", "prompt": "GARBLE the reply", "reference": "4",
     "grader": {"type": "exact"}},
]


class EchoingUpstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that repeats the bearer key it was sent wherever it can."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        key = self.headers["authorization"].removeprefix("Bearer ")
        prompt = body["messages"][-1]["content"]
        if "FAIL" in prompt:
            self._send(400, {"error": {"message": f"invalid request for key {key}",
                                       "type": "invalid_request_error", "code": None}})
        elif "GARBLE" in prompt:
            self._send(200, f"<html>upstream proxy error for {key}</html>")
        else:
            text = f"Sure. Your key is {key}\nThe answer is 4, and my key is {key}"
            self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": f"m-{key}",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39}})

    def _send(self, status: int, payload: Any) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _suite(tmp_path: Path) -> Path:
    path = tmp_path / "echo.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    return path


def _assert_no_key_under(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "report.html" for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), f"the key was written to {path}"


def test_a_key_echoed_by_the_upstream_is_written_nowhere(tmp_path: Path, upstream: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", upstream)
    seen: list[dict[str, Any]] = []
    result = asyncio.run(run_suite(_suite(tmp_path), ["openai:m"], runs_dir=tmp_path / "runs", run_id="api",
                                   progress=lambda row, totals: seen.append(dict(row))))
    results, attempts = results_df(result.run_dir), attempts_df(result.run_dir)

    # The upstream did echo the key everywhere it could; what was written holds the placeholder.
    answered = results.filter(pl.col("status") == "ok")
    assert answered.height == 2 and answered["output"].str.contains("key is ********", literal=True).all()
    assert answered.filter(pl.col("item_id") == "quoted")["grade_reason"].item() == "matched 'key is ********'"
    failed = results.filter(pl.col("status") == "error").sort("item_id")
    assert failed["error_kind"].to_list() == ["bad_request", "invalid_response"]
    # The garbled body is a transient invalid_response: asked again (default 3 retries), each time garbled.
    assert attempts.height == 2 + 1 + 4
    assert KEY not in json.dumps(seen, default=str), "the caller's progress callback sees the row as written"

    report = subprocess.run([sys.executable, "-m", "evalkit.cli", "report", str(result.run_dir)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    _assert_no_key_under(result.run_dir)


def test_the_cli_prints_and_writes_no_echoed_key(tmp_path: Path, upstream: str) -> None:
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": upstream, "COLUMNS": "200"}
    runs = tmp_path / "runs"
    ran = subprocess.run([sys.executable, "-m", "evalkit.cli", "run", "--suite", str(_suite(tmp_path)),
                          "--targets", "openai:m", "--runs-dir", str(runs), "--run-id", "cli"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    report = subprocess.run([sys.executable, "-m", "evalkit.cli", "report", str(runs / "cli")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert report.returncode == 0, report.stderr
    for stream in (ran.stdout, ran.stderr, report.stdout, report.stderr):
        assert KEY not in stream
    assert results_df(runs / "cli")["model"].drop_nulls().to_list() == ["m-********"] * 2, "the upstream echoed"
    _assert_no_key_under(runs)
