"""What a training checkpoint holds and how older layouts are read: the run config (typed onto the
current schema, moved keys migrated), the algorithm it names, and the state_dict's layout (the
algorithm's networks under ``algorithm.``, the harness's counters :data:`HARNESS_STATE` at the top).
Below both the training harness that writes checkpoints and the evaluation that loads them."""

from __future__ import annotations

import copy
import dataclasses

from omegaconf import DictConfig, OmegaConf

from dcsched.agents.algorithm import Algorithm
from dcsched.config import AgentConfig, agent_config_class, migrate_moved_keys, run_schema


HARNESS_STATE = ("frames", "updates", "update_credit")  # the harness's own buffers in a checkpoint's state_dict



def typed_config(cfg) -> DictConfig:
    """A run config (a DictConfig or a checkpoint's stored one) on the current schema: keys of older
    layouts moved (:data:`~dcsched.config.MOVED_KEYS`), and the ``agent`` group typed by its
    algorithm's config dataclass. Checkpoints written while ``agent`` was one flat group for every
    algorithm carry the other algorithms' keys too; those never reached this algorithm and are dropped."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else copy.deepcopy(dict(cfg))
    data = migrate_moved_keys(data)
    agent = dict(data.get("agent") or {})
    name = str(agent.get("name", AgentConfig.name))
    declared = {f.name for f in dataclasses.fields(agent_config_class(name, "checkpoint"))}
    data["agent"] = {k: v for k, v in agent.items() if k in declared}
    return OmegaConf.merge(run_schema(name, "checkpoint"), OmegaConf.create(data))



def algorithm_class(name: str) -> type[Algorithm]:
    """The Algorithm class registered as ``name`` in AGENTS (lazy entries are imported here)."""
    from dcsched.registry import AGENTS

    entry = AGENTS.get(name)
    return entry.resolve() if hasattr(entry, "resolve") else entry



def migrate_state_dict(state: dict) -> dict:
    """A checkpoint's state_dict in the harness's layout, in place: checkpoints written before the
    Algorithm / harness split keep the networks at the top level (``actor.*``, ``loss.*``,
    ``shaper.*``, ``lagrange``); they move under ``algorithm.``. Also drops what older layouts kept
    that is not state (the env's buffers while it was a child module; a per-env return buffer
    that RewardSum replaced)."""
    for key in [k for k in state if k.startswith("env.")]:
        del state[key]
    state.pop("episode_return", None)
    for key in [k for k in state if not k.startswith("algorithm.") and k not in HARNESS_STATE]:
        state[f"algorithm.{key}"] = state.pop(key)
    return state
