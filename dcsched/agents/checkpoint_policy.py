"""Evaluate a trained agent's checkpoint like any other policy.

Loading builds the checkpoint's actor for the evaluation env (from its config and its
``algorithm.actor.*`` weights, or ``actor.*`` in checkpoints written before the Algorithm / harness
split) through its algorithm's ``actor_for_evaluation``: the built-in algorithms build the actor
alone, a plugin's default builds the algorithm on the evaluation env and keeps its actor. No
training env, replay buffer or collector, and no reseeding of the process.
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


def load_checkpoint_policy(path: Path, env) -> Policy:
    """The policy of a Lightning checkpoint written by ``dcsched train``, on ``env``'s device.

    One path for every algorithm, built-in or a plugin's: the checkpoint's algorithm builds its
    actor for ``env`` (or for the per-provider view of ``env`` when it acts on one:
    :meth:`~dcsched.agents.algorithm.Algorithm.actor_for_evaluation`), the actor takes the
    checkpoint's weights, and the policy acts with its deterministic action. The process's random
    streams are untouched."""
    from dcsched.agents.checkpoint_format import algorithm_class, load_checkpoint, migrate_state_dict, typed_config

    path = Path(path)
    ckpt = load_checkpoint(path, env.device, "--policy")
    try:
        cfg = typed_config(ckpt["hyper_parameters"]["cfg"])
        prefix = "algorithm.actor."
        weights = {k[len(prefix):]: v for k, v in migrate_state_dict(ckpt["state_dict"]).items() if k.startswith(prefix)}
        if not weights:
            raise KeyError(prefix)
    except (KeyError, IndexError, TypeError) as err:
        raise ConfigError(str(path), "state_dict", f"not a dcsched training checkpoint ({err!r})") from None
    algo_cls = algorithm_class(cfg.agent.name)
    view = _view_for(algo_cls, cfg, env, path)
    with torch.random.fork_rng(devices=[]):  # the throw-away initial weights must not advance the caller's stream
        actor = algo_cls.actor_for_evaluation(cfg, view)
    try:
        actor.load_state_dict(weights)
    except RuntimeError as err:
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line or "Missing" in line),
                      str(err).splitlines()[0])
        raise ConfigError(str(path), "scenario", f"checkpoint was trained on '{cfg.scenario.name}'; its actor's sizes "
                          f"(observations, action scores) do not fit this env ({detail})"
                          + _differences_hint(cfg.scenario, getattr(env, "scenario_cfg", None))) from None
    actor = actor.to(env.device)
    if view is not env:
        return MultiAgentPolicy(actor, cfg, path).bind(env)
    return CheckpointPolicy(TrainedPolicy(actor, env.obs_dim, env.action_spec.shape[-1], cfg), path).bind(env)


LABEL_KEYS = ("name", "description", "base")  # a scenario's labels, not its world


def scenario_differences(trained, played, limit: int = 6) -> list[tuple[str, object, object]]:
    """The scenario keys whose values differ between a checkpoint's scenario and the evaluation
    env's: [(dotted key, the checkpoint's value, the env's value)], at most ``limit``; the keys that
    only label a scenario (:data:`LABEL_KEYS`) left out: two scenario files may hold one world."""
    from omegaconf import OmegaConf

    def flat(node, prefix=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from flat(value, f"{prefix}{key}.")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from flat(value, f"{prefix}{i}.")
        else:
            yield prefix[:-1], node

    def plain(cfg):
        return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)

    a, b = dict(flat(plain(trained))), dict(flat(plain(played)))
    keys = [k for k in sorted(a.keys() | b.keys()) if k not in LABEL_KEYS and a.get(k) != b.get(k)]
    return [(k, a.get(k), b.get(k)) for k in keys[:limit]]


def _differences_hint(trained, played) -> str:
    """'; the scenarios differ in scenario.K (checkpoint: x, this env: y), ...: evaluate with
    scenario.K=x' for a size mismatch, or '' when the env has no scenario to compare."""
    if played is None:
        return ""
    if len(trained.get("dcs", [])) != len(played.get("dcs", [])):
        return (f"; it was trained with {len(trained.dcs)} data centres, this env has {len(played.dcs)}: evaluate it "
                f"with --scenario {trained.name}")
    diffs = scenario_differences(trained, played)
    if not diffs:
        return "; the scenarios agree: the env settings (env.*) the checkpoint was trained with differ"
    named = ", ".join(f"scenario.{k} (checkpoint: {a}, this env: {b})" for k, a, b in diffs)
    fix = " ".join(f"scenario.{k}={a}" for k, a, _ in diffs if a is not None)
    return f"; the scenarios differ in {named}" + (f"; to play the checkpoint's world add: {fix}" if fix else "")


def _view_for(algo_cls, cfg, env, path: Path):
    """``env``, or the per-provider view of it for an algorithm that acts on one (same scenario and
    an action encoding the algorithm has, else a ConfigError naming the key)."""
    caps = algo_cls.capabilities
    if caps.view != "per_provider":
        return env
    from dcsched.envs.multi_agent import MultiAgentDCSchedEnv

    encoding = getattr(env, "action_encoding", None)
    if encoding not in caps.action_encodings:
        raise ConfigError(str(path), "env.action_encoding", f"a {cfg.agent.name} checkpoint acts in the "
                          f"{' or '.join(caps.action_encodings)} encoding, this env in '{encoding}'",
                          ", ".join(caps.action_encodings))
    # shared per-agent weights do not depend on the number of providers: refuse another scenario by name
    if cfg.scenario.name != getattr(getattr(env, "scenario_cfg", None), "name", cfg.scenario.name):
        raise ConfigError(str(path), "scenario", f"multi-agent checkpoint was trained on '{cfg.scenario.name}'; "
                          f"this env plays '{env.scenario_cfg.name}'")
    return MultiAgentDCSchedEnv(env)


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
