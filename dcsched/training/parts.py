"""What a training run hands the harness: built once, seeded once.

:func:`build_parts` checks a run config against its algorithm's capabilities (before anything is
built), resolves the training device, seeds the global RNG with ``seed`` (the one seeding of a
run: the env's construction, the networks' initial weights and the shaper's draw from that stream
in this order), and builds the env of the algorithm's view, the replay buffer and the collector
factory. :func:`dcsched.training.train.train_from_config` builds the parts and hands them to
:class:`dcsched.training.harness.Agent`, which keeps the loop, the counters and the checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

from dcsched.agents.configs import OnPolicyConfig
from dcsched.agents.episode_stats import with_episode_stats
from dcsched.envs.dc_env import make_env
from dcsched.envs.gym_task import is_gym_task, make_task_env
from dcsched.errors import ConfigError
from dcsched.training.collection import make_collector
from dcsched.training.placement import resolve_device


@dataclass
class TrainingParts:
    """The harness's inputs. ``cfg``: the typed run config they were built from (``env.device``
    resolved); ``env``: the env the algorithm acts on (the per-provider view when its capabilities
    say so); ``replay_buffer``: the off-policy buffer (one row for on-policy algorithms, which keep
    none); ``collector_for(policy)``: the collector stepping ``env`` (with the episode statistics'
    transforms, :func:`~dcsched.agents.episode_stats.with_episode_stats`) with ``policy``, built
    when training starts (the policy is the algorithm's, built by the harness)."""

    cfg: object
    device: torch.device
    env: object
    replay_buffer: TensorDictReplayBuffer
    collector_for: Callable[[object], tuple[object, Collector]]


def check_capabilities(c, algo_cls) -> None:
    """Refuse a recipe outside the algorithm's capabilities, by key and allowed values."""
    caps, name = algo_cls.capabilities, algo_cls.name
    _check("env.action_encoding", c.env.action_encoding, caps.action_encodings,
           f"agent {name} cannot act in the '{c.env.action_encoding}' encoding")
    constraint = c.agent.get("constraint", "none")  # declared by the algorithms that take one (PPOConfig)
    _check("agent.constraint", constraint, caps.constraints, f"agent {name} has no '{constraint}' constraint")
    if caps.on_policy and not issubclass(OmegaConf.get_type(c.agent), OnPolicyConfig):
        raise ConfigError("recipe", "agent.name", f"on-policy algorithm '{name}' registered a config without "
                          "the on-policy loop's keys (ppo_epochs, minibatch_size, ...)",
                          "a config derived from dcsched.agents.configs.OnPolicyConfig")
    _check("collector.backend", c.collector.backend, caps.collector_backends,
           f"agent {name} cannot collect with the '{c.collector.backend}' backend")


def _check(key: str, value: str, allowed: tuple[str, ...], what: str) -> None:
    """Refuse a recipe value the algorithm does not declare (a ConfigError naming the key and the allowed values)."""
    if value not in allowed:
        raise ConfigError("recipe", key, what, " | ".join(allowed))


def check_task_run(c, caps) -> None:
    """Refuse what a Gymnasium task (``task: gym:...``) cannot do, by key and allowed values: the
    per-provider view (it has no providers), the discrete encoding (its actions are a box), worker
    collectors (its envs step in the learner's process)."""
    if caps.view == "per_provider":
        raise ConfigError("recipe", "task", f"agent {c.agent.name} acts on the per-provider view of the data "
                          "centres; a Gymnasium task has none", "dc (or a single-agent algorithm: sac, td3, ppo)")
    _check("env.action_encoding", c.env.action_encoding, ("continuous",), "a Gymnasium task acts in its box")
    _check("collector.backend", c.collector.backend, ("inprocess",), "a Gymnasium task steps in the learner's process")
    _check("agent.constraint", c.agent.get("constraint", "none"), ("none",), "a Gymnasium task has no deadline violations")


def build_parts(c, algo_cls) -> TrainingParts:
    """The parts of a run of algorithm class ``algo_cls`` with the typed run config ``c`` (whose
    ``env.device`` is set to the resolved training device). Seeds the global RNG with ``c.seed``."""
    check_capabilities(c, algo_cls)
    caps = algo_cls.capabilities
    device = resolve_device(c.env.device, c.trainer.accelerator)
    c.env.device = str(device)
    torch.manual_seed(c.seed)
    if is_gym_task(c.task):
        check_task_run(c, caps)
        env = make_task_env(c.task, c.env.num_envs, c.seed, device)
    else:
        env = make_env(c.scenario, c.env, seed=c.seed, report_outcome=True)
    if caps.view == "per_provider":
        from dcsched.envs.multi_agent import MultiAgentDCSchedEnv

        env = MultiAgentDCSchedEnv(env)
    size = 1 if caps.on_policy else c.replay_buffer.size
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(size, device=device), batch_size=c.replay_buffer.batch_size)

    def collector_for(policy):
        """(the env with the episode statistics' transforms, the collector stepping it with ``policy``)."""
        stepped = with_episode_stats(env, caps.reward_key)
        warmup = c.agent.warmup_frames if c.agent.warmup_frames > 0 else None
        return stepped, make_collector(c, stepped, policy, warmup)

    return TrainingParts(c, device, env, buffer, collector_for)
