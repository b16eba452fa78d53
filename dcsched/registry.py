"""One registry per component kind; components register by name with a one-line description.

    from dcsched.registry import POLICIES
    @POLICIES.register("local_only", "no transfer, fixed 30 steps, full frequency")
    class LocalOnly: ...

An unknown name raises :class:`UnknownComponentError` listing the allowed names and the
closest match.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from dcsched.errors import UnknownComponentError


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str


class Registry:
    """Name -> component map for one kind (scenario, agent, shaper, policy, quality_metric, logger)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str) -> Callable[[Any], Any]:
        def decorator(obj: Any) -> Any:
            self.add(name, obj, description)
            return obj

        return decorator

    def add(self, name: str, obj: Any, description: str) -> None:
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, obj, description)

    def names(self) -> list[str]:
        _load_builtin_components()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        _load_builtin_components()
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, name: str) -> Any:
        _load_builtin_components()
        if name not in self._entries:
            allowed = sorted(self._entries)
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UnknownComponentError(
                f"unknown {self.kind} '{name}'{hint} (allowed: {', '.join(allowed) or 'none registered'})"
            )
        return self._entries[name].obj

    def __contains__(self, name: str) -> bool:
        _load_builtin_components()
        return name in self._entries


SCENARIOS = Registry("scenario")
AGENTS = Registry("agent")
SHAPERS = Registry("shaper")
POLICIES = Registry("policy")
QUALITY_METRICS = Registry("quality_metric")
LOGGERS = Registry("logger")
FORECASTERS = Registry("forecaster")
STRESSES = Registry("stress")

ALL_REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (SCENARIOS, AGENTS, SHAPERS, POLICIES, QUALITY_METRICS, LOGGERS, FORECASTERS, STRESSES)
}

# Modules whose import registers the built-in components. Imported lazily, once.
_BUILTIN_MODULES = (
    "dcsched.scenarios",
    "dcsched.baselines.rules",
    "dcsched.baselines.planners",
    "dcsched.baselines.forecasters",
    "dcsched.stress",
    "dcsched.quality.metrics",
    "dcsched.quality.sd_local",
    "dcsched.tracking",
    "dcsched.agents",
    "dcsched.shaping.reward_agent",
)
_loaded = False


def _load_builtin_components() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
