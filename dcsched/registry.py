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
    config: type | None = None  # the component's own config dataclass (an algorithm's ``agent`` keys), if it has one


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

    def add(self, name: str, obj: Any, description: str, config: type | None = None) -> None:
        """Register ``obj`` as ``name``; ``config``: the dataclass of the keys it reads from its
        config group (e.g. ``AGENTS.add("sac", SAC, "...", config=SACConfig)``)."""
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, obj, description, config)

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

    def config_of(self, name: str) -> type | None:
        """The config dataclass registered with ``name`` (None if it declared none); an unknown name
        raises like :meth:`get`."""
        self.get(name)
        return self._entries[name].config

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
    "dcsched.baselines.batch_rules",
    "dcsched.baselines.forecasters",
    "dcsched.stress",
    "dcsched.quality.metrics",
    "dcsched.calibration.sd_local",
    "dcsched.tracking",
    "dcsched.agents",
    "dcsched.shaping.reward_agent",
)
_loaded = False


PLUGINS_ENV = "DCSCHED_PLUGINS"  # comma-separated modules (a.b.c) or files (path/to/x.py) that register components
PLUGINS_GROUP = "dcsched.plugins"  # the entry-point group an installed package declares its plugin modules in


def _load_builtin_components() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    load_plugins()


def load_plugins(spec: str | None = None) -> list[str]:
    """Import the plugin modules that register user components (algorithms, policies, shapers, ...):
    every entry point of the ``dcsched.plugins`` group, then each item of ``spec`` (default: the
    ``DCSCHED_PLUGINS`` environment variable), a module name or a ``.py`` file. Returns their names.
    A plugin that cannot be imported fails with the variable, the item and the reason."""
    import os
    from importlib import metadata, util

    from dcsched.errors import ConfigError

    loaded = []
    for ep in metadata.entry_points(group=PLUGINS_GROUP):
        ep.load()
        loaded.append(ep.value)
    spec = os.environ.get(PLUGINS_ENV, "") if spec is None else spec
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        try:
            if item.endswith(".py"):
                path = os.path.abspath(item)
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"no file {path}")
                name = "dcsched_plugin_" + os.path.splitext(os.path.basename(path))[0]
                import sys

                if name in sys.modules:  # loaded already (the registry loads DCSCHED_PLUGINS once per process)
                    loaded.append(item)
                    continue
                module_spec = util.spec_from_file_location(name, path)
                module = util.module_from_spec(module_spec)
                sys.modules[name] = module  # before executing: dataclasses and pickling look it up
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
            else:
                importlib.import_module(item)
        except Exception as err:  # noqa: BLE001  (any failure: one message naming the plugin)
            raise ConfigError(f"environment variable {PLUGINS_ENV}", item, f"the plugin cannot be imported ({err!r})",
                              "comma-separated module names (pkg.module) or .py files") from err
        loaded.append(item)
    return loaded
