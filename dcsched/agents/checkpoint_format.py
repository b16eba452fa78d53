"""What a training checkpoint holds and how older layouts are read: the run config (typed onto the
current schema, moved keys migrated), the algorithm it names, and the state_dict's layout (the
algorithm's networks under ``algorithm.``, the harness's counters :data:`HARNESS_STATE` at the top).
Below both the training harness that writes checkpoints and the evaluation that loads them."""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf

from dcsched.agents.algorithm import Algorithm
from dcsched.config import RunConfig, migrate_moved_keys, schema


HARNESS_STATE = ("frames", "updates", "update_credit")  # the harness's own buffers in a checkpoint's state_dict



def typed_config(cfg) -> DictConfig:
    """A run config (a DictConfig or a checkpoint's stored one, with keys of older layouts moved:
    :data:`~dcsched.config.MOVED_KEYS`) merged onto the :class:`RunConfig` schema."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else copy.deepcopy(dict(cfg))
    return OmegaConf.merge(schema(RunConfig), OmegaConf.create(migrate_moved_keys(data)))



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
