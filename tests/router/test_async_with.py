"""Routers close like providers: ``async with Router.from_config(...) as router`` closes every leaf once.

The user-visible symptom was aiohttp's "Unclosed client session / Unclosed connector" printed at
interpreter exit after the README's examples; the subprocess tests run those examples and read stderr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import evalkit
from evalkit import ChatRequest, Router
from evalkit.emulator import Emulator
from evalkit.emulator._specs import FaultPlan, Fleet
from evalkit.emulator.fleet import default_fleet
from evalkit.providers._http import HTTPProvider
from evalkit.router import FallbackChain, LimitedTarget, Limits, TaskRouter

from .fakes import ScriptedProvider

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def emu():
    with Emulator(seed=0, time_scale=0.0, datasets=()) as emulator:
        yield emulator


def tree_config(emu: Emulator) -> str:
    """A README-shaped config: named targets shared by several nodes, limits, every router type nested."""
    return textwrap.dedent(f"""\
        version: 1
        targets:
          strong: {{model: "anthropic:sim-large", base_url: "{emu.anthropic_base_url}", api_key_env: EMU_KEY,
                    prices: {{input: 5, output: 15}}}}
          fast:   {{model: "openai:sim-small", base_url: "{emu.openai_base_url}", api_key_env: EMU_KEY,
                    prices: {{input: 0.1, output: 0.4}}, limits: {{max_in_flight: 4}}}}
          gem:    {{model: "gemini:sim-medium", base_url: "{emu.gemini_base_url}", api_key_env: EMU_KEY}}
        router:
          type: task
          routes:
            code: {{type: fallback, targets: [strong, fast]}}
            simple_qa: {{type: balance, targets: [fast, gem], weights: [3, 1]}}
            math: {{type: hedge, targets: [gem, strong], delay_s: 5}}
          default:
            type: cost
            candidates: [{{target: fast, quality: 0.6}}, {{target: strong, quality: 0.9}}]
        """)


def leaves(target) -> list[HTTPProvider]:
    """Every distinct provider under ``target``, through routers and limit wrappers."""
    found: dict[int, HTTPProvider] = {}
    pending = [target]
    while pending:
        node = pending.pop()
        if isinstance(node, HTTPProvider):
            found[id(node)] = node
        elif isinstance(node, LimitedTarget):
            pending.append(node.target)
        else:
            pending.extend(node.targets)
    return list(found.values())


TASKS = ("code", "simple_qa", "math", "other")


def test_async_with_from_config_closes_every_leaf_once(emu: Emulator, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(tree_config(emu), encoding="utf-8")
    monkeypatch.setenv("EMU_KEY", "k")
    closes: dict[int, int] = {}
    real_aclose = HTTPProvider.aclose

    async def counted_aclose(self: HTTPProvider) -> None:
        closes[id(self)] = closes.get(id(self), 0) + 1
        await real_aclose(self)

    monkeypatch.setattr(HTTPProvider, "aclose", counted_aclose)

    async def main() -> list:
        async with Router.from_config(config) as router:
            providers = leaves(router)
            for task in TASKS:
                reply = await router.complete(ChatRequest.from_prompt("hi", max_tokens=5,
                                                                      metadata={"task_type": task}))
                assert reply.text
            clients = [p.client for p in providers]  # created on first use; each must be closed at exit
            assert not any(c.is_closed for c in clients)
        assert all(c.is_closed for c in clients)
        return providers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", evalkit.UnpricedModelWarning)
        providers = asyncio.run(main())
    names = sorted(p.name for p in providers)
    assert names == ["anthropic:sim-large", "gemini:sim-medium", "openai:sim-small"]
    # "fast" is named by four nodes and "strong" by four: still one close each.
    assert closes == {id(p): 1 for p in providers}


class Closable(ScriptedProvider):
    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__(name)
        self.closed = 0
        self.fail = fail

    async def aclose(self) -> None:
        self.closed += 1
        if self.fail:
            raise OSError(f"{self.name} failed to close")


def test_a_failing_close_does_not_leave_the_others_open() -> None:
    a, b, c = Closable("a", fail=True), Closable("b"), Closable("c")
    router = TaskRouter({"code": FallbackChain([a, b])},
                        default=FallbackChain([b, LimitedTarget(c, Limits())]))

    async def main() -> None:
        async with router:
            raise KeyError("the body failed")

    with pytest.raises(KeyError) as caught:  # the body's error wins; the close failure does not mask it
        asyncio.run(main())
    assert caught.value.__notes__ == ["then closing task(fallback(a, b), fallback(b, c)) failed: "
                                      "OSError('a failed to close')"]
    assert (a.closed, b.closed, c.closed) == (1, 1, 1)
    with pytest.raises(OSError, match="a failed to close"):  # alone, the close failure is raised
        asyncio.run(router.aclose())
    assert (a.closed, b.closed, c.closed) == (2, 2, 2)


def test_a_router_subclass_with_its_own_aclose_is_closed_by_its_parent() -> None:
    class OwnClose(FallbackChain):
        closed = 0

        async def aclose(self) -> None:
            OwnClose.closed += 1
            await super().aclose()

    inner_leaf, outer_leaf = Closable("in"), Closable("out")

    async def main() -> None:
        async with LimitedTarget(FallbackChain([OwnClose([inner_leaf]), outer_leaf]), Limits()) as wrapped:
            assert (await wrapped.complete(ChatRequest.from_prompt("hi"))).text == "answer from in"

    asyncio.run(main())
    assert (OwnClose.closed, inner_leaf.closed, outer_leaf.closed) == (1, 1, 1)


# -- the README's examples, run verbatim as a user runs them, in a fresh interpreter ----------------

# The README names real models; a fleet of emulator models under those names answers them on loopback.
README_MODELS = {"claude-3-5-haiku-latest": ("anthropic",), "claude-3-5-sonnet-latest": ("anthropic",),
                 "gpt-4o-mini": ("openai",), "llama3.2": ("openai",)}


@pytest.fixture(scope="module")
def readme_emu():
    base = default_fleet().model("sim-small")
    fleet = Fleet(tuple(dataclasses.replace(base, name=name, wires=wires, faults=FaultPlan())
                        for name, wires in README_MODELS.items()))
    with Emulator(fleet, seed=0, time_scale=0.0, datasets=()) as emulator:
        yield emulator


def readme_block(language: str, containing: str) -> str:
    """The README's one ``language`` code block that contains ``containing``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"expected one {language} block with {containing!r} in README.md: {len(found)}"
    return found[0]


def run_python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = cwd / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, **env, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # -X dev: every ResourceWarning is shown, as a developer running with warnings on would see them.
    return subprocess.run([sys.executable, "-X", "dev", str(script)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def assert_clean_exit(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert "Unclosed" not in done.stderr, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr


@pytest.mark.parametrize("example", ["evalkit.get_provider(\"anthropic:", "Router.from_config("])
def test_readme_python_examples_leave_nothing_unclosed_at_exit(readme_emu: Emulator, tmp_path: Path,
                                                               example: str) -> None:
    (tmp_path / "routing.yaml").write_text(readme_block("yaml", "router:\n  type: task"), encoding="utf-8")
    env = {"OPENAI_BASE_URL": readme_emu.openai_base_url, "ANTHROPIC_BASE_URL": readme_emu.anthropic_base_url,
           "OLLAMA_BASE_URL": readme_emu.openai_base_url, "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
    done = run_python(readme_block("python", example), tmp_path, env)
    assert_clean_exit(done)
    assert done.stdout.strip()  # it answered


CLOSED_BY_HAND = """\
import asyncio, sys, evalkit

async def main():
    llm = evalkit.get_provider("openai:sim-large", base_url=sys.argv[1], api_key="k")
    router = evalkit.Router.from_config(sys.argv[2])
    await llm.complete(evalkit.ChatRequest.from_prompt("hi", max_tokens=5))
    for task in ("code", "simple_qa", "math", "other"):
        await router.complete(evalkit.ChatRequest.from_prompt("hi", metadata={"task_type": task}))
    await llm.aclose()
    await router.aclose()
    print("done")

asyncio.run(main())
"""


def test_aclose_without_async_with_is_as_clean(emu: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "routing.yaml"
    config.write_text(tree_config(emu), encoding="utf-8")
    code = CLOSED_BY_HAND.replace("sys.argv[1]", repr(emu.openai_base_url))
    done = run_python(code.replace("sys.argv[2]", repr(str(config))), tmp_path, {"EMU_KEY": "k"})
    assert_clean_exit(done)
    assert done.stdout.strip() == "done"
