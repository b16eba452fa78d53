"""What a training checkpoint holds, how it is read safely, and how older layouts are read: the run
config (typed onto the current schema, moved keys migrated), the algorithm it names, and the
state_dict's layout (the algorithm's networks under ``algorithm.``, the harness's counters
:data:`HARNESS_STATE` at the top). Below both the training harness that writes checkpoints and the
evaluation that loads them.

Every checkpoint is read by :func:`load_checkpoint`: ``torch.load(weights_only=True)`` with only
:data:`CHECKPOINT_GLOBALS` allowed besides tensors and plain containers, so a file that would make
the unpickler call anything else (``os.system``, any class's constructor) is refused before it runs."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import zipfile
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDict
from tensordict._reductions import _make_td

from dcsched.agents.algorithm import Algorithm
from dcsched.config import AgentConfig, agent_config_class, migrate_moved_keys, run_schema
from dcsched.errors import ConfigError


# What a dcsched checkpoint may hold besides tensors, numbers, strings and lists / dicts / tuples of
# them: TensorDicts (the replay buffer's storage, the collector's in-flight tensordict), which
# pickle as _make_td(TensorDict, state). Nothing else is unpickled.
CHECKPOINT_GLOBALS = [_make_td, TensorDict]


# how torch's weights-only unpickler names the global it refused (two wordings)
_FORBIDDEN_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def safe_globals():
    """The context in which torch (and Lightning's resume) may unpickle a checkpoint with
    ``weights_only=True``: :data:`CHECKPOINT_GLOBALS` allowed, nothing else."""
    return torch.serialization.safe_globals(CHECKPOINT_GLOBALS)


def load_checkpoint(path: Path | str, map_location="cpu", key: str = "checkpoint") -> dict:
    """A dcsched checkpoint's contents, loaded without running any code it may carry. A file that
    is missing, not a torch file (truncated, random bytes), or that holds anything but tensors,
    plain containers and :data:`CHECKPOINT_GLOBALS` is refused with a ConfigError naming the file and
    ``key`` (the option or override that named it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("command line", key, f"checkpoint {path} not found")
    try:
        with safe_globals():
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        forbidden = _FORBIDDEN_GLOBAL.search(str(err))
        if forbidden is None:  # not a pickle the safe unpickler can read: damaged, or another format
            raise ConfigError(str(path), key, "not a readable checkpoint (the unpickler cannot read it)") from None
        what = forbidden.group(1)
        raise ConfigError(str(path), key, f"refused: the file holds an object a dcsched checkpoint never contains "
                          f"({what}); loading it could run code",
                          "a checkpoint written by dcsched train (tensors, numbers, strings, TensorDicts)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(str(path), key, f"not a readable checkpoint ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200] if str(err) else 'empty'})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "cfg" not in (ckpt.get("hyper_parameters") or {}):
        raise ConfigError(str(path), key, "not a dcsched training checkpoint (no state_dict or run config)")
    return ckpt


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
