"""Evaluate a trained agent's checkpoint like any other policy.

Loading builds the policy network only (from the checkpoint's config and its ``algorithm.actor.*``
weights, or ``actor.*`` in checkpoints written before the Algorithm / harness split):
no training env, replay buffer, shaper or collector, and no reseeding of the process.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dcsched.baselines.policy import Policy
from dcsched.errors import ConfigError


class TrainedPolicy(nn.Module):
    """A trained actor with what evaluation needs: its sizes, the run's config, the mean action."""

    def __init__(self, actor: nn.Module, obs_dim: int, act_dim: int, cfg):
        super().__init__()
        self.actor, self.obs_dim, self.act_dim, self.cfg = actor, obs_dim, act_dim, cfg

    def act(self, td):
        """Deterministic action (policy mean). td["observation"] [B, obs_dim] -> [B, act_dim]."""
        from dcsched.agents.networks import mean_action

        return mean_action(self.actor, td)


class CheckpointPolicy(Policy):
    """The deterministic (mean) action of a trained actor (a TrainedPolicy or a training harness)."""

    def __init__(self, module, path: Path):
        self.module = module.eval()
        self.name = Path(path).stem
        self.path = path

    def bind(self, env):
        super().bind(env)
        if env.obs_dim != self.module.obs_dim or env.action_spec.shape[-1] != self.module.act_dim:
            raise ConfigError(str(self.path), "scenario",
                              f"checkpoint was trained on '{self.module.cfg.scenario.name}' with obs/action sizes "
                              f"{self.module.obs_dim}/{self.module.act_dim}; this env has {env.obs_dim}/{env.action_spec.shape[-1]}")
        return self

    def act(self, td):
        return self.module.act(td).to(self.env.device)


def load_checkpoint_policy(path: Path, env) -> CheckpointPolicy:
    """The policy of a Lightning checkpoint written by ``dcsched train``, on ``env``'s device."""
    from dcsched.agents import networks
    from dcsched.agents.checkpoint_format import migrate_state_dict, typed_config

    path = Path(path)
    if not path.exists():
        raise ConfigError("command line", "--policy", f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location=env.device, weights_only=False)
    try:
        cfg = typed_config(ckpt["hyper_parameters"]["cfg"])
        prefix = "algorithm.actor."
        weights = {k[len(prefix):]: v for k, v in migrate_state_dict(ckpt["state_dict"]).items() if k.startswith(prefix)}
        # sizes from the weights: the first layer's input and the last layer's output (x2 for loc and scale)
        ordered = [v for k, v in weights.items() if k.endswith("weight")]
        obs_dim, out_dim = ordered[0].shape[1], ordered[-1].shape[0]
    except (KeyError, IndexError) as err:
        raise ConfigError(str(path), "state_dict", f"not a dcsched training checkpoint ({err!r})") from None
    name = cfg.agent.name
    if name in MULTI_AGENT:
        return load_multi_agent_policy(path, env, cfg, weights)
    if name not in BUILT_IN:
        return load_registered_policy(path, env, cfg, weights)
    groups = None
    if cfg.env.get("action_encoding", "continuous") == "discrete":
        from dcsched.agents.distributions import groups_for

        groups = groups_for(env.params, env.transfer_chunks)
        scores = sum(g.num_scores for g in groups)
        if out_dim != scores or obs_dim != env.obs_dim:
            raise ConfigError(str(path), "scenario",
                              f"checkpoint was trained on '{cfg.scenario.name}' with {obs_dim} observations and "
                              f"{out_dim} action scores; this env has {env.obs_dim} and {scores}")
        act_dim = env.action_spec.shape[-1]
    else:
        act_dim = out_dim if name == "td3" else out_dim // 2
    with torch.random.fork_rng(devices=[]):  # the weights' throw-away init must not advance the caller's stream
        actor = networks.policy_network(name, obs_dim, act_dim, list(cfg.network.hidden_sizes),
                                        env.action_spec_unbatched if act_dim == env.action_spec.shape[-1] else None,
                                        groups=groups)
    actor.load_state_dict(weights)
    policy = TrainedPolicy(actor.to(env.device), obs_dim, act_dim, cfg)
    return CheckpointPolicy(policy, path).bind(env)


MULTI_AGENT = ("mappo", "ippo")
BUILT_IN = ("sac", "td3", "ppo")  # central algorithms whose actor networks.policy_network builds


def load_registered_policy(path: Path, env, cfg, weights: dict) -> CheckpointPolicy:
    """The actor of any other registered Algorithm (a user's plugin): the algorithm is built on
    ``env`` (for its specs; its loss and optimisers are never used) and its actor takes the weights."""
    from dcsched.agents.checkpoint_format import algorithm_class

    algo_cls = algorithm_class(cfg.agent.name)
    if algo_cls.capabilities.view != "central":
        raise ConfigError(str(path), "agent.name", f"'{cfg.agent.name}' acts on the {algo_cls.capabilities.view} "
                          "view; only central algorithms' checkpoints evaluate through this loader", "a central algorithm")
    with torch.random.fork_rng(devices=[]):
        algorithm = algo_cls(cfg, env, torch.device(env.device), None)
    try:
        algorithm.actor.load_state_dict(weights)
    except RuntimeError as err:
        raise ConfigError(str(path), "scenario", f"checkpoint does not fit this env ({err})") from None
    policy = TrainedPolicy(algorithm.actor.eval(), algorithm.obs_dim, algorithm.act_dim, cfg)
    return CheckpointPolicy(policy, path).bind(env)


class MultiAgentPolicy(Policy):
    """A multi-agent checkpoint acting on the central env: each agent's deterministic levels from
    its own observation (the view's :meth:`~dcsched.envs.multi_agent.MultiAgentDCSchedEnv.agent_observation`
    of the central tensordict), put together into the central discrete action."""

    def __init__(self, actor: nn.Module, cfg, path: Path):
        self.actor = actor.eval()
        self.cfg = cfg
        self.name = Path(path).stem
        self.path = path
        self.view = None

    def bind(self, env):
        from dcsched.envs.multi_agent import MultiAgentDCSchedEnv

        super().bind(env)
        self.view = MultiAgentDCSchedEnv(env)
        return self

    def act(self, td):
        from tensordict import TensorDict
        from torchrl.envs.utils import ExplorationType, set_exploration_type

        from dcsched.envs.multi_agent import GROUP

        obs = self.view.observe(td)
        inner = TensorDict({GROUP: TensorDict({"observation": obs}, batch_size=obs.shape[:2])}, batch_size=obs.shape[:1])
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            levels = self.actor(inner)[GROUP, "action"]
        return self.view.central_action(levels)


def load_multi_agent_policy(path: Path, env, cfg, weights: dict) -> MultiAgentPolicy:
    """Rebuild the decentralised actors of a mappo/ippo checkpoint for ``env`` (same scenario)."""
    from dcsched.agents.mappo import agent_groups, multi_agent_actor
    from dcsched.envs.multi_agent import ACTION_KEY, MultiAgentDCSchedEnv

    if getattr(env, "action_encoding", None) != "discrete":
        raise ConfigError(str(path), "env.action_encoding", "a multi-agent checkpoint acts in the discrete encoding",
                          "discrete")
    if cfg.scenario.name != getattr(getattr(env, "scenario_cfg", None), "name", cfg.scenario.name):
        raise ConfigError(str(path), "scenario", f"multi-agent checkpoint was trained on '{cfg.scenario.name}'; "
                          f"this env plays '{env.scenario_cfg.name}'")
    view = MultiAgentDCSchedEnv(env)
    a = cfg.agent
    with torch.random.fork_rng(devices=[]):
        actor = multi_agent_actor(view.agent_obs_dim, view.n_agents, agent_groups(env.params, env.transfer_chunks),
                                  list(cfg.network.hidden_sizes), bool(a.get("share_params", True)),
                                  view.full_action_spec_unbatched[ACTION_KEY], device=env.device)
    try:
        actor.load_state_dict(weights)
    except RuntimeError as err:
        raise ConfigError(str(path), "scenario", f"multi-agent checkpoint does not fit this env ({err})") from None
    return MultiAgentPolicy(actor, cfg, path).bind(env)
