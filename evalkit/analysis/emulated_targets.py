"""The emulated targets of a recorded run, as the fleet that run used describes them.

A run's manifest records which of its targets were emulated (``simulated_targets``,
e.g. ``openai:sim-large``) and the fleet file its emulator served
(``config.emulator.fleet``, written by ``evalkit run --fleet FILE``; absent: the
built-in fleet). A routing config recommended from the run must reach those
targets on an emulator serving that same fleet, at that fleet's prices and
context windows: the built-in fleet's numbers would be wrong for a custom fleet,
and it does not know a custom fleet's models at all.

What cannot be known (the fleet file is gone or unreadable, or lacks a model the
run asked) is said in :attr:`EmulatedTargets.problems`; such a target still
points at the emulator, with no prices (unpriced, not free) and no window.
"""

from __future__ import annotations

import json
import shlex
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..emulator.fleet import Fleet

__all__ = ["EMULATOR_KEY_ENV", "EMULATOR_URL_ENV", "EmulatedTargets", "emulated_target_specs",
           "emulated_targets"]

EMULATOR_URL_ENV = "EVALKIT_EMULATOR_URL"
EMULATOR_KEY_ENV = "EVALKIT_EMULATOR_KEY"
_FLEET_FIELD = "config.emulator.fleet"


@dataclass(frozen=True)
class EmulatedTargets:
    """How a routing config reaches a run's emulated targets, and what the run's fleet says of them."""

    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Target name → its routing-config entry (``model``, ``base_url_env``, ``api_key_env``, ``prices``)."""
    windows: Mapping[str, int] = field(default_factory=dict)
    """Target name → its context window in tokens, for the targets the fleet describes."""
    fleet_file: str | None = None
    """The fleet file the run's emulator served; ``None``: the built-in fleet."""
    problems: tuple[str, ...] = ()
    """What the fleet could not tell, one sentence each (the targets concerned are unpriced, window unknown)."""

    @property
    def emulate_command(self) -> str:
        """The ``evalkit emulate`` command that serves the same fleet."""
        return "evalkit emulate" + (f" --fleet {shlex.quote(self.fleet_file)}" if self.fleet_file else "")

    def setup_comment(self) -> str:
        """Comment lines for the top of a routing YAML: how to start the emulator, and what is unknown."""
        if not self.configs:
            return ""
        lines = [f"# Emulated targets: run `{self.emulate_command}`, then export {EMULATOR_URL_ENV}=<its URL>,",
                 f"# {EMULATOR_URL_ENV}_OPENAI=<its URL>/v1 and {EMULATOR_KEY_ENV}=<any value>."]
        lines += [f"# warning: {problem}" for problem in self.problems]
        return "\n".join(lines) + "\n"


def emulated_targets(run_dir: str | Path) -> EmulatedTargets:
    """The emulated targets of the run in ``run_dir``, priced and sized by the fleet the run used.

    Raises :class:`~evalkit.errors.ConfigError` when ``run_dir`` has no
    ``manifest.json``. A run without emulated targets gives an empty result.
    """
    manifest_path = Path(run_dir) / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError("not a run directory (no manifest.json)", file=str(run_dir))
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    simulated = [str(name) for name in manifest.get("simulated_targets") or ()]
    if not simulated:
        return EmulatedTargets()
    fleet_file = ((manifest.get("config") or {}).get("emulator") or {}).get("fleet")
    fleet, unreadable = _run_fleet(fleet_file, manifest_path)
    configs: dict[str, dict[str, Any]] = {}
    windows: dict[str, int] = {}
    absent: list[str] = []
    for name in simulated:
        provider, _, model = name.partition(":")
        configs[name] = {
            "model": name,
            "base_url_env": EMULATOR_URL_ENV + ("_OPENAI" if provider == "openai" else ""),
            "api_key_env": EMULATOR_KEY_ENV,
        }
        spec = fleet.get(model) if fleet is not None else None
        if spec is None:
            absent.append(name)
            continue
        # Floats keep the YAML readable; the config reads them back through str() into the same Decimal.
        configs[name]["prices"] = {"input": float(spec.price.input),
                                   "cached_input": float(spec.price.cached_input),
                                   "output": float(spec.price.output)}
        windows[name] = spec.context_window
    problems = [unreadable] if unreadable else []
    if absent and not unreadable:
        where = f"the run's fleet {fleet_file}" if fleet_file else "the built-in fleet"
        problems.append(f"{where} has no model for {', '.join(absent)}: unpriced and context window unknown")
    return EmulatedTargets(configs=configs, windows=windows, fleet_file=fleet_file, problems=tuple(problems))


def emulated_target_specs(run_dir: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """``(configs, windows)`` of :func:`emulated_targets`; each of its problems is a ``UserWarning``."""
    found = emulated_targets(run_dir)
    for problem in found.problems:
        warnings.warn(problem, UserWarning, stacklevel=2)
    return {name: dict(entry) for name, entry in found.configs.items()}, dict(found.windows)


def _run_fleet(fleet_file: str | None, manifest_path: Path) -> tuple[Fleet | None, str | None]:
    """The fleet the run used, or ``(None, why)`` when its file can no longer be read."""
    from ..emulator.fleet import default_fleet, load_fleet

    if not fleet_file:
        return default_fleet(), None
    try:
        return load_fleet(fleet_file), None
    except ConfigError as exc:  # the file was moved, deleted or edited into an invalid fleet since the run
        return None, (f"the run's fleet ({manifest_path}: {_FLEET_FIELD}) cannot be read: {exc}; every "
                      f"emulated target is unpriced and its context window unknown")
