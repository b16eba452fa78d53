"""Per-provider agents trained with PPO on the multi-agent view (issue #15): MAPPO and IPPO.

One agent per data centre acts on its own observation, ``("dc", "observation")``
(:mod:`dcsched.envs.multi_agent`): decentralised execution. Its policy is a factorised categorical
over its own part of the discrete schedule (destinations of its arrivals, step levels, frequency,
battery), scored by TorchRL's ``MultiAgentMLP`` (``agent.share_params``: one network for every
agent, or one per agent). The critic is where the two methods differ:

- ``mappo``: centralised training, a ``MultiAgentMLP`` critic with ``centralized=True`` (each
  agent's value reads every agent's observation) - used in training only;
- ``ippo``: independent learners, each critic reads its own agent's observation.

Both use TorchRL's ``ClipPPOLoss`` and ``GAE`` pointed at the group's keys with ``set_keys`` and
the team reward (the central env's reward, the same for every agent). The update rule is
:class:`dcsched.agents.ppo.PPO`'s; the harness (:class:`dcsched.training.harness.Agent`) builds the
per-provider view for them (``capabilities.view``) and runs the collector, counters, checkpoints,
exact resume and the minibatch loop.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.modules import MultiAgentMLP, ProbabilisticActor
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import ClipPPOLoss

from dcsched.agents.distributions import ComponentGroup, FactorisedCategorical
from dcsched.agents.algorithm import Capabilities
from dcsched.agents.ppo import PPO
from dcsched.envs.actions import BATTERY_LEVELS
from dcsched.envs.multi_agent import ACTION_KEY as ACTION
from dcsched.envs.multi_agent import GROUP
from dcsched.shaping.base import SHAPED_REWARD, correlation

SHAPER_SIGNAL = "shaper_signal"  # ("next", "dc", SHAPER_SIGNAL): F of every row, [*, N, 1]

OBS = (GROUP, "observation")
LOG_PROB = (GROUP, "action_log_prob")


def agent_groups(params, transfer_chunks: int = 1) -> tuple[ComponentGroup, ...]:
    """One agent's action groups, in :func:`dcsched.envs.multi_agent.agent_action_layout` order:
    a destination per (class, chunk), a step level per class, a frequency level, a battery level."""
    K, Q = params.num_classes, transfer_chunks
    groups = [ComponentGroup(K * Q, params.num_dcs, False, chunks=Q), ComponentGroup(K, len(params.steps_grid), True),
              ComponentGroup(1, len(params.freq_levels), True)]
    if params.learned_energy:
        groups.append(ComponentGroup(1, len(BATTERY_LEVELS), True))
    return tuple(groups)


def multi_agent_actor(obs_dim: int, n_agents: int, groups, hidden: list[int], share_params: bool, spec,
                      device=None) -> ProbabilisticActor:
    """Decentralised actors: ("dc", "observation") [*, N, obs_dim] -> ("dc", "action") [*, N, act_dim].
    The output layer starts at zero (a uniform first policy, as the central PPO actor)."""
    net = MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=sum(g.num_scores for g in groups), n_agents=n_agents,
                        centralized=False, share_params=share_params, device=device, num_cells=list(hidden),
                        activation_class=nn.Tanh)
    with torch.no_grad():
        for name, p in net.params.items(True, True):
            if name[-1] in ("weight", "bias") and _is_last_layer(name, len(hidden)):
                p.zero_()
    return ProbabilisticActor(TensorDictModule(net, in_keys=[OBS], out_keys=[(GROUP, "scores")]),
                              in_keys={"scores": (GROUP, "scores")}, out_keys=[ACTION], spec=spec,
                              distribution_class=FactorisedCategorical, distribution_kwargs={"groups": tuple(groups)},
                              default_interaction_type=ExplorationType.RANDOM, return_log_prob=True,
                              log_prob_key=LOG_PROB)


def _is_last_layer(name: tuple, depth: int) -> bool:
    """MultiAgentMLP parameters are named (..., str(layer index in the Sequential), weight|bias);
    the output Linear is at index 2 * depth (Linear, activation pairs before it)."""
    return str(2 * depth) in name


def multi_agent_critic(obs_dim: int, n_agents: int, hidden: list[int], centralised: bool, share_params: bool,
                       device=None) -> TensorDictModule:
    """("dc", "observation") -> ("dc", "state_value") [*, N, 1]; centralised: each value reads all agents."""
    net = MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=1, n_agents=n_agents, centralized=centralised,
                        share_params=share_params, device=device, num_cells=list(hidden), activation_class=nn.Tanh)
    return TensorDictModule(net, in_keys=[OBS], out_keys=[(GROUP, "state_value")])


class MAPPO(PPO):
    """MAPPO (``agent.name: mappo``) and IPPO (``agent.name: ippo``) on the multi-agent view.
    ``env``: the per-provider view (:class:`dcsched.envs.multi_agent.MultiAgentDCSchedEnv`)."""

    name = "mappo"
    centralised_critic = True
    # the team reward, one copy per agent; shaper.name builds reward agents on each provider's own
    # (o_n, a_n); in process only: worker envs would be central envs, not the per-provider view
    capabilities = Capabilities(on_policy=True, shaping="per_agent", view="per_provider", reward_key=(GROUP, "reward"),
                                action_encodings=("discrete",), constraints=("none",), collector_backends=("inprocess",))

    def __init__(self, cfg, env, device, make_shaper=None):
        super().__init__(cfg, env, device, make_shaper)  # PPO's: actor and critic below, GAE, the loss
        c = cfg
        reward = (GROUP, "reward")
        if make_shaper is not None:
            from dcsched.shaping.per_agent import PerAgentShaping

            def one(seed: int):
                return make_shaper(self.obs_dim, self.act_dim, seed)

            self.shaper = PerAgentShaping(one, env.n_agents, env.agent_nvec, c.shaper.per_agent, c.seed,
                                          c.shaper.updates_per_batch, c.shaper.batch_size).to(self.train_device)
            reward = (GROUP, SHAPED_REWARD)
        keys = dict(reward=reward, done=(GROUP, "done"), terminated=(GROUP, "terminated"))
        self.advantage.set_keys(value=(GROUP, "state_value"), advantage=(GROUP, "advantage"),
                                value_target=(GROUP, "value_target"), **keys)
        self.loss.set_keys(action=ACTION, sample_log_prob=LOG_PROB, value=(GROUP, "state_value"),
                           advantage=(GROUP, "advantage"), value_target=(GROUP, "value_target"), **keys)

    @classmethod
    def actor_for_evaluation(cls, cfg, env):
        """The per-agent actors (shared or one each) for the per-provider view ``env``."""
        return multi_agent_actor(env.agent_obs_dim, env.n_agents, agent_groups(env.params, env.central.transfer_chunks),
                                 cfg.network.hidden_sizes, cfg.agent.share_params, env.full_action_spec_unbatched[ACTION],
                                 device=env.device)

    def build_actor_critic(self, cfg, env):
        a = cfg.agent
        self.obs_dim = env.agent_obs_dim
        self.act_dim = len(env.agent_nvec)
        actor = self.actor_for_evaluation(cfg, env)
        critic = multi_agent_critic(self.obs_dim, env.n_agents, cfg.network.hidden_sizes, self.centralised_critic,
                                    a.share_params, device=self.train_device)
        return actor, critic

    def build_loss(self, agent_cfg):
        # advantages are standardised per agent (over the batch, not across agents)
        return ClipPPOLoss(self.actor, self.critic, clip_epsilon=agent_cfg.clip_epsilon,
                           entropy_coeff=agent_cfg.entropy_coef, normalize_advantage=True,
                           normalize_advantage_exclude_dims=(-2,))

    def shape_rewards(self, data: TensorDictBase, frames: int) -> dict[str, float]:
        """Per-provider reward agents (dcsched/shaping/per_agent.py): ("next", "dc", SHAPED_REWARD)."""
        if self.shaper is None:
            return {}
        shaped, bonus, metrics = self.shaper.shape_batch(data, self.actor, frames, GROUP, diagnose=True)
        data.set(("next", GROUP, SHAPED_REWARD), shaped)
        data.set(("next", GROUP, SHAPER_SIGNAL), bonus)
        return metrics

    def shaping_diagnostics(self, data: TensorDictBase) -> dict[str, float]:
        """corr(F, the policy agent's GAE advantage) over the batch's rows (every agent)."""
        if self.shaper is None:
            return {}
        return {"diag/corr_r_aux_advantage": correlation(data["next", GROUP, SHAPER_SIGNAL], data[GROUP, "advantage"])}

    def act(self, td: TensorDictBase) -> torch.Tensor:
        """Deterministic per-agent levels for td[("dc", "observation")] [B, N, obs] -> [B, N, act_dim]."""
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return self.actor(td.select(OBS).clone())[ACTION]


class IPPO(MAPPO):
    """IPPO: every agent's critic reads its own observation only."""

    name = "ippo"
    centralised_critic = False
