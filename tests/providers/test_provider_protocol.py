"""Every router, the HTTP provider and a limited target are a ``Provider``: at runtime and to mypy.

The router tree is typed through :class:`evalkit.providers.Provider` (``Target``),
so a router that stops offering ``name``/``complete``/``stream`` with the
protocol's signatures would break nesting. Runtime ``isinstance`` only checks
that the attributes exist; mypy checks the signatures, so the second half runs
mypy (strict, the project's config) on a module that hands every class to a
``Provider`` parameter. Both cover every ``Router`` subclass evalkit defines,
found by walking the class tree, so a new policy is checked without editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

import evalkit.router
from evalkit.providers import Closeable, HTTPProvider, Prefillable, Priced, Provider, Windowed, get_provider
from evalkit.router import (BudgetLedger, CostAwareRouter, FallbackChain, HedgedRouter, LimitedTarget, Limits,
                            PromptModel, PromptRouter, Router, TaskRouter, WeightedBalancer)
from evalkit.router._task_features import FeatureSpec
from evalkit.router.prompt import RoutingRule

ROOT = Path(__file__).resolve().parents[2]


def evalkit_routers() -> list[type[Router]]:
    """Every subclass of Router defined in evalkit (every module of evalkit.router imported first)."""
    for info in pkgutil.iter_modules(evalkit.router.__path__):
        importlib.import_module(f"evalkit.router.{info.name}")
    found: list[type[Router]] = []
    pending = [Router]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("evalkit."):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: c.__qualname__)


def _provider(name: str) -> HTTPProvider:
    return get_provider(f"openai:{name}", api_key="sk-test", base_url="http://127.0.0.1:9/v1",
                        prices={"input": "1", "output": "2"}, context_window=8000, prefill=True)


def _prompt_model(targets: tuple[str, ...]) -> PromptModel:
    n = len(targets)
    return PromptModel(targets=targets, costs=(Decimal("0.001"),) * n, spec=FeatureSpec(), rows=[], weights=[],
                       bias=[0.0] * n, dense_weights=[0.0] * (2 * n), dense_mean=[0.0, 0.0],
                       dense_scale=[1.0, 1.0], platt_scale=[1.0] * n, platt_shift=[0.0] * n,
                       rule=RoutingRule("min_quality", 0.5))


def one_of_each() -> dict[type, object]:
    """An instance of every router type, the HTTP provider and a limited target."""
    a, b = _provider("a"), _provider("b")
    built: list[object] = [
        Router([a]), FallbackChain([a, b]), WeightedBalancer([a, b]), HedgedRouter([a, b]),
        TaskRouter({"code": a}, default=b), PromptRouter(_prompt_model(("a", "b")), [a, b]),
        CostAwareRouter([(a, 0.5), (b, 0.9)], ledger=BudgetLedger("10")),
        a, LimitedTarget(a, Limits(max_in_flight=2)),
    ]
    return {type(x): x for x in built}


def test_every_router_type_is_covered_here() -> None:
    assert set(evalkit_routers()) <= set(one_of_each()), "a new Router subclass: add it to one_of_each()"


@pytest.mark.parametrize("cls", list(one_of_each()), ids=lambda c: c.__name__)
def test_every_target_type_is_a_provider_at_runtime(cls: type) -> None:
    target = one_of_each()[cls]
    assert isinstance(target, Provider)
    assert isinstance(target, Closeable) and isinstance(target, Windowed)


def test_optional_capabilities_follow_the_target() -> None:
    provider = _provider("a")
    assert isinstance(provider, Priced) and isinstance(provider, Prefillable)
    assert provider.context_window == 8000
    # A limited target is priced exactly when what it wraps is; a router has no prices of its own.
    assert isinstance(LimitedTarget(provider, Limits(rpm=10)), Priced)
    assert not isinstance(LimitedTarget(FallbackChain([provider]), Limits(rpm=10)), Priced)
    assert not isinstance(FallbackChain([provider]), Priced)


def _typed_module(classes: list[type]) -> str:
    """A module mypy checks: a function per class that passes an instance where a Provider is expected."""
    imports = sorted({f"from {c.__module__} import {c.__qualname__}" for c in classes})
    checks = [f"def check_{c.__qualname__}(target: {c.__qualname__}) -> Provider:\n"
              f"    stream: ResponseStream = target.stream(REQUEST)\n"
              f"    del stream\n"
              f"    return target\n" for c in classes]
    return "\n".join([
        "from evalkit.providers import Closeable, Provider, ResponseStream, Windowed",
        "from evalkit.types import ChatRequest",
        *imports,
        "",
        "REQUEST = ChatRequest.from_prompt('hi')",
        "",
        *checks,
        "def closeable(target: LimitedTarget, router: Router, provider: HTTPProvider) -> list[Closeable]:",
        "    return [target, router, provider]",
        "",
        "def windowed(target: LimitedTarget, router: Router, provider: HTTPProvider) -> list[Windowed]:",
        "    return [target, router, provider]",
        "",
    ])


BROKEN = textwrap.dedent("""
    from evalkit.providers import Provider
    from evalkit.router import Router
    from evalkit.types import ChatRequest

    class TextRouter(Router):
        def stream(self, request: ChatRequest) -> str:  # type: ignore[override]
            return ""

    def check(target: TextRouter) -> Provider:
        return target
""")


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's errors (project config, strict) in two modules: every target type, and a broken router."""
    from mypy import api

    folder = tmp_path_factory.mktemp("typed")
    classes = sorted(set(one_of_each()), key=lambda c: c.__qualname__)
    modules = {"evalkit_conforming_targets": _typed_module(classes), "evalkit_nonconforming_router": BROKEN}
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    # One run for both, on the project's cache. Errors inside evalkit are the CI mypy run's business, not this
    # test's, so lines are picked by module file name (a cached module may be reported under an older path).
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                      "--cache-dir", str(ROOT / ".mypy_cache"),
                                      *(str(folder / f"{name}.py") for name in modules)])
    assert status in (0, 1) and "Traceback" not in stderr, stderr  # 2: mypy itself failed
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    return {name: [line for line in errors if line.split(":")[0].endswith(f"/{name}.py")] for name in modules}


def test_mypy_accepts_every_target_type_as_a_provider(mypy_errors: dict[str, list[str]]) -> None:
    assert mypy_errors["evalkit_conforming_targets"] == []


def test_mypy_refuses_a_router_whose_stream_breaks_the_protocol(mypy_errors: dict[str, list[str]]) -> None:
    # The check above has teeth: a policy whose stream() returns plain text is not a Provider.
    errors = mypy_errors["evalkit_nonconforming_router"]
    assert len(errors) == 1 and "incompatible return value type" in errors[0].lower(), errors
