"""Cassettes: record a run's HTTP traffic, replay it with no network, never write a secret.

The committed cassette ``cassettes/smoke-emulator.yaml`` is one streamed run of
the ``smoke`` suite against the emulator's whole default fleet (judge
``emulator:sim-large``, seed 0, concurrency 32). Its replays must reproduce
``results_df`` exactly, including the recorded latencies and TTFTs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.serializers import yamlserializer

from evalkit.errors import ConfigError
from evalkit.runner import RunOptions, attempts_df, results_df, run_suite
from evalkit.runner import cassettes as cas
from evalkit.runner.targets import EMULATOR_PREFIX

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "cassettes" / "smoke-emulator.yaml"
FLEET = ["sim-large", "sim-medium", "sim-small", "sim-fast", "sim-reasoner", "sim-long"]
JUDGE = "emulator:sim-large"
OPTIONS = RunOptions(concurrency=32, stream=True)  # what the committed cassette was recorded with
VOLATILE = ["run_id", "started_at", "ended_at"]
FAKE_KEY = "sk-test-SECRET-0123456789abcdefDO-NOT-LEAK"

# (cells, ok, output tokens) per target, as recorded. Fixed by the cassette alone.
EXPECTED = {
    "anthropic:sim-long": (41, 41, 3053), "gemini:sim-fast": (41, 41, 2777),
    "openai:sim-large": (41, 41, 3323), "openai:sim-medium": (41, 41, 3302),
    "openai:sim-reasoner": (41, 41, 9639), "openai:sim-small": (41, 41, 2993),
}
# Passed cells per target when recorded: these also depend on today's graders.
EXPECTED_PASSED = {"anthropic:sim-long": 34, "gemini:sim-fast": 31, "openai:sim-large": 37,
                   "openai:sim-medium": 35, "openai:sim-reasoner": 35, "openai:sim-small": 28}


# -- helpers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def no_emulator_in_replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A replay must not start the emulator server: the cassette answers everything."""
    from evalkit.emulator.server import Emulator

    def refuse(self: Any) -> None:
        raise AssertionError("a replay started the emulator server")

    monkeypatch.setattr(Emulator, "start", refuse)
    yield


def run(runs_dir: Path, targets: list[str], options: RunOptions = OPTIONS, time_scale: float = 0.02,
        cassette: Any = None) -> Path:
    coro = run_suite("smoke", [EMULATOR_PREFIX + t for t in targets], options=options, runs_dir=runs_dir,
                     judge_spec=JUDGE, emulator={"seed": 0, "time_scale": time_scale}, progress=False,
                     cassette=cassette)
    return asyncio.run(coro).run_dir


def replay(path: Path, runs_dir: Path, targets: list[str] = FLEET, options: RunOptions = OPTIONS) -> Path:
    with cas.cassette(path, record=False) as tape:
        return run(runs_dir, targets, options, cassette=tape)


def stable(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in VOLATILE if c in frame.columns])


def interactions(path: Path) -> list[dict[str, Any]]:
    return yamlserializer.deserialize(path.read_text(encoding="utf-8"))["interactions"]


def recorded_timings(path: Path) -> set[tuple[float, float | None]]:
    out = set()
    for it in interactions(path):
        headers = {k.lower(): v[0] for k, v in it["response"]["headers"].items()}
        ttft = headers.get(cas.TTFT_HEADER)
        out.add((float(headers[cas.LATENCY_HEADER]), None if ttft is None else float(ttft)))
    return out


def reported_timing(response: httpx.Response, latency_ms: float, ttft_ms: float | None) -> Any:
    """What a provider reports for ``response`` after measuring these: the cassette's hook decides, if any."""
    hook = response.extensions.get(cas.TIMING_EXTENSION)
    return (latency_ms, ttft_ms) if hook is None else hook(latency_ms, ttft_ms)


def all_bytes_under(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                yield path, path.read_bytes()


# -- the committed cassette --------------------------------------------------------------------


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two replays of the committed cassette, each in its own runs directory."""
    with pytest.MonkeyPatch.context() as mp, no_emulator_in_replay(mp):
        first = replay(COMMITTED, tmp_path_factory.mktemp("replay1"))
        second = replay(COMMITTED, tmp_path_factory.mktemp("replay2"))
    return first, second


def test_committed_cassette_is_a_vcrpy_cassette_with_timing() -> None:
    data = yamlserializer.deserialize(COMMITTED.read_text(encoding="utf-8"))
    assert data["version"] == 1
    its = data["interactions"]
    assert len(its) == 41 * 6 + 54  # every cell, plus the judge calls of 9 judge items x 6 targets
    streamed = [it for it in its if "text/event-stream" in str(it["response"]["headers"].get("content-type"))]
    assert len(streamed) == 41 * 6
    for it in its:
        headers = {k.lower() for k in it["response"]["headers"]}
        assert cas.LATENCY_HEADER in headers and "x-evalkit-interaction" not in headers
    assert all(cas.TTFT_HEADER in {k.lower() for k in it["response"]["headers"]} for it in streamed)
    assert COMMITTED.stat().st_size < 15_000_000


def test_replay_of_committed_cassette_is_identical(replayed: tuple[Path, Path]) -> None:
    first, second = replayed
    df = results_df(first)
    assert df["status"].to_list() == ["ok"] * len(df)
    assert stable(df).equals(stable(results_df(second)))
    assert stable(attempts_df(first)).equals(stable(attempts_df(second)))
    summary = df.group_by("target").agg(pl.len(), (pl.col("status") == "ok").sum(), pl.col("output_tokens").sum())
    assert {r[0]: tuple(r[1:]) for r in summary.iter_rows()} == EXPECTED


def test_replay_reports_the_recorded_latencies_not_its_own(replayed: tuple[Path, Path]) -> None:
    df = results_df(replayed[0])
    recorded = recorded_timings(COMMITTED)
    rows = set(zip(df["latency_ms"].to_list(), df["ttft_ms"].to_list()))
    assert rows <= recorded  # every (latency, ttft) pair is one the cassette stored, to the last bit
    assert len(rows) == len(df)  # measured microseconds would never collide; recorded values don't either
    assert df["ttft_ms"].null_count() == 0 and (df["ttft_ms"] < df["latency_ms"]).all()
    assert df["latency_ms"].min() > 20  # the emulator paced these; a replay answers in microseconds


def test_committed_cassette_grades_as_recorded(replayed: tuple[Path, Path]) -> None:
    df = results_df(replayed[0])
    passed = {t: int(n) for t, n in df.group_by("target").agg(pl.col("passed").sum()).iter_rows()}
    assert passed == EXPECTED_PASSED, "the graders changed since the cassette was recorded?"


def test_no_secret_in_committed_cassettes() -> None:
    cassettes = [(p, d) for p, d in all_bytes_under(ROOT / "cassettes") if p.suffix in (".yaml", ".yml")]
    assert cassettes
    for path, data in cassettes:
        text = data.decode("utf-8", "replace").lower()
        for needle in ("emulator-key", "authorization", "bearer", "x-api-key", "x-goog-api-key", "api-key:",
                       "cookie", "openai-organization", "openai-project", "anthropic-organization-id"):
            assert needle not in text, f"{needle!r} in {path}"


# -- pytest-recording ------------------------------------------------------------------------


class _SameBodyMatcher:
    """A pytest-recording plugin: the fast ``body`` matcher cassette() uses (see cassettes.same_body)."""

    def pytest_recording_configure(self, config: Any, vcr: Any) -> None:
        vcr.register_matcher("body", cas.same_body)


@pytest.fixture(scope="module", autouse=True)
def _same_body_matcher(pytestconfig: pytest.Config) -> Iterator[None]:
    # A tests/runner/conftest.py hook would do; registering it here keeps this module self-contained.
    plugin = _SameBodyMatcher()
    pytestconfig.pluginmanager.register(plugin, "evalkit-cassette-body-matcher")
    yield
    pytestconfig.pluginmanager.unregister(plugin)


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return cas.vcr_config()


@pytest.fixture
def vcr_cassette_dir(tmp_path: Path) -> str:
    return str(tmp_path)  # the per-test default cassette; record_mode "none" never writes it


@pytest.mark.vcr(str(COMMITTED))
def test_pytest_recording_replays_the_committed_cassette(
        vcr: Any, replayed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert vcr.record_mode == "none" and len(vcr.data) == len(interactions(COMMITTED))
    with no_emulator_in_replay(monkeypatch):  # pytest-recording replays; the ReplayCassette reports the timing
        run_dir = run(tmp_path, ["sim-reasoner", "sim-fast"], cassette=cas.ReplayCassette(COMMITTED))
    expected = results_df(replayed[0]).filter(pl.col("target").is_in(["openai:sim-reasoner", "gemini:sim-fast"]))
    assert stable(results_df(run_dir)).equals(stable(expected))


# -- record, then replay ---------------------------------------------------------------------


@pytest.fixture
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Emulated targets send FAKE_KEY instead of their usual placeholder key."""
    import evalkit.providers

    real = evalkit.providers.get_provider

    def get_provider(target: str, api_key: Any = None, base_url: Any = None, **options: Any) -> Any:
        return real(target, api_key=FAKE_KEY if api_key == "emulator-key" else api_key, base_url=base_url,
                    **options)

    monkeypatch.setattr(evalkit.providers, "get_provider", get_provider)
    return FAKE_KEY


def test_record_then_replay_round_trip_leaks_no_secret(
        tmp_path: Path, fake_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = ["sim-large", "sim-fast", "sim-long"]  # Authorization, x-goog-api-key, x-api-key
    path = tmp_path / "cassettes" / "round-trip.yaml"
    with cas.cassette(path, record=True) as recording:
        recorded_dir = run(tmp_path / "runs", targets, time_scale=0.005, cassette=recording)
        assert not path.exists()  # written on exit only
    assert len(interactions(path)) == 41 * 3 + 27  # every cell, plus the judge calls of 9 judge items x 3
    with no_emulator_in_replay(monkeypatch):
        replayed_dir = replay(path, tmp_path / "runs", targets)
    assert stable(results_df(replayed_dir)).equals(stable(results_df(recorded_dir)))
    assert stable(attempts_df(replayed_dir)).equals(stable(attempts_df(recorded_dir)))
    assert results_df(replayed_dir)["status"].to_list() == ["ok"] * 41 * 3

    files = list(all_bytes_under(tmp_path / "cassettes", tmp_path / "runs"))
    assert any(p.suffix == ".parquet" for p, _ in files)
    for file, data in files:
        assert fake_key.encode() not in data, f"the key leaked into {file}"
        assert b"SECRET-0123456789" not in data, f"part of the key leaked into {file}"
    text = path.read_text(encoding="utf-8").lower()
    for header in ("authorization", "x-api-key", "x-goog-api-key", "bearer"):
        assert header not in text


# -- secrets, streaming and failures in detail --------------------------------------------------


async def _echoing_server(request: httpx.Request) -> httpx.Response:
    """Echoes every credential it got, in headers and body, and sets a cookie."""
    key = request.url.params.get("key", "")
    body = json.dumps({"saw": [request.headers.get("authorization"), key, request.headers.get("cookie")]})
    return httpx.Response(200, headers={"set-cookie": "session=abcdefgh12345678", "openai-organization": "org-x",
                                        "x-echo": request.headers.get("x-api-key", "")}, content=body.encode())


def test_recording_filters_every_kind_of_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    headers = {"authorization": "Bearer sk-test-bearer-1234567890", "x-api-key": "sk-ant-test-1234567890",
               "cookie": "session=cookievalue-1234567890", "openai-organization": "org-secret",
               "openai-project": "proj_secret", "anthropic-organization-id": "anthropic-org-secret",
               "content-type": "application/json"}
    body = b'{"prompt":"my key is sk-test-bearer-1234567890"}'

    async def go(recording: cas.RecordingCassette) -> httpx.Response:
        async with httpx.AsyncClient(transport=recording.transport(httpx.MockTransport(_echoing_server))) as c:
            return await c.post("http://example.test/v1/x?key=AIzaTESTKEY123456789&alt=sse", headers=headers,
                                content=body)

    with cas.cassette(path, record=True) as recording:
        response = asyncio.run(go(recording))
    assert "sk-test-bearer-1234567890" in response.text  # the client itself sees the real traffic
    text = path.read_text(encoding="utf-8")
    for secret in ("sk-test-bearer-1234567890", "sk-ant-test-1234567890", "cookievalue-1234567890",
                   "AIzaTESTKEY123456789", "org-secret", "proj_secret", "anthropic-org-secret",
                   "abcdefgh12345678", "org-x"):
        assert secret not in text, secret
    (it,) = interactions(path)
    assert it["request"]["uri"] == "http://example.test/v1/x?alt=sse"
    assert set(it["request"]["headers"]) >= {"content-type"}
    assert not {"authorization", "x-api-key", "cookie", "openai-organization", "openai-project",
                "anthropic-organization-id"} & set(it["request"]["headers"])
    assert not {"set-cookie", "openai-organization"} & set(it["response"]["headers"])
    assert it["response"]["headers"]["x-echo"] == [cas.REDACTED]
    assert json.loads(it["request"]["body"])["prompt"] == "my key is " + cas.REDACTED


def test_recording_streams_chunks_as_they_arrive(tmp_path: Path) -> None:
    """The tee must not buffer: the server sends its second chunk only after the client read the first."""

    async def go(recording: cas.RecordingCassette) -> list[bytes]:
        first_read = asyncio.Event()

        async def chunks() -> Any:
            yield b"data: one\n\n"
            await asyncio.wait_for(first_read.wait(), 5)
            yield b"data: two\n\n"

        def server(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())

        got = []
        async with httpx.AsyncClient(transport=recording.transport(httpx.MockTransport(server))) as c:
            async with c.stream("POST", "http://example.test/stream", content=b"{}") as response:
                async for chunk in response.aiter_raw():
                    got.append(chunk)
                    first_read.set()
            latency, ttft = reported_timing(response, 12.5, 3.25)
        assert (latency, ttft) == (12.5, 3.25)
        assert "x-evalkit-interaction" not in response.headers  # the hook needs no header trick
        return got

    path = tmp_path / "stream.yaml"
    with cas.cassette(path, record=True) as recording:
        assert asyncio.run(go(recording)) == [b"data: one\n\n", b"data: two\n\n"]
    (it,) = interactions(path)
    assert it["response"]["body"]["string"] == "data: one\n\ndata: two\n\n"
    assert it["response"]["headers"][cas.LATENCY_HEADER] == ["12.5"]
    assert it["response"]["headers"][cas.TTFT_HEADER] == ["3.25"]


def test_a_request_not_in_the_cassette_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.providers import get_provider
    from evalkit.types import ChatRequest, Message

    async def ask(transport: cas.CassetteTransport) -> Any:
        provider = get_provider("openai:sim-large", api_key="x" * 12, base_url=cas.PLACEHOLDER_BASE_URL + "/v1",
                                transport=transport)
        try:
            return await provider.complete(ChatRequest(messages=(Message("user", "never recorded"),)))
        finally:
            await provider.aclose()
            await transport.aclose_pool()

    with cas.cassette(COMMITTED, record=False) as tape, \
            pytest.raises(CannotOverwriteExistingCassetteException, match="no recorded interaction matches"):
        asyncio.run(ask(tape.transport()))
    # In a run, such a request is a failed cell (kind "internal") that names the problem.
    with no_emulator_in_replay(monkeypatch):
        run_dir = replay(COMMITTED, tmp_path, ["sim-fast"], RunOptions(seed=1, stream=True))
    df = results_df(run_dir)
    assert df["status"].unique().to_list() == ["error"] and df["error_kind"].unique().to_list() == ["internal"]
    assert df["error"].str.contains("CannotOverwriteExistingCassetteException").all()


def test_replay_needs_an_existing_cassette(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cassette not found"), cas.cassette(tmp_path / "missing.yaml", record=False):
        pass


def test_replay_timing_falls_back_to_measured_values() -> None:
    def timing(headers: dict[str, str], latency_ms: float, ttft_ms: float | None) -> Any:
        """What a provider reports for a replayed response with these headers, having measured the rest."""

        async def go() -> Any:
            inner = httpx.MockTransport(lambda request: httpx.Response(200, headers=headers, content=b"{}"))
            async with httpx.AsyncClient(transport=cas.ReplayCassette().transport(inner)) as client:
                return reported_timing(await client.post("http://example.test/v1/x"), latency_ms, ttft_ms)

        return asyncio.run(go())

    assert timing({}, 5.0, 1.0) == (5.0, 1.0)
    assert timing({cas.LATENCY_HEADER: "812.25"}, 5.0, 1.0) == (812.25, None)
    headers = {cas.LATENCY_HEADER: "812.25", cas.TTFT_HEADER: "90.5"}
    assert timing(headers, 5.0, None) == (812.25, 90.5)


def test_replay_emulator_stands_in_for_the_server() -> None:
    emu = cas.replay_emulator(seed=3, time_scale=0.5)
    assert emu.fleet.names() == FLEET and (emu.seed, emu.time_scale) == (3, 0.5)
    assert emu.openai_base_url == "http://127.0.0.1:9/v1"
    assert emu.anthropic_base_url == emu.gemini_base_url == "http://127.0.0.1:9"
    with emu as same:
        assert same is emu and not emu.running
    assert not cas.RecordingCassette("unused.yaml").replay  # the runner starts the emulator server for these
    with cas.cassette(COMMITTED, record=False) as tape:
        assert tape.replay
