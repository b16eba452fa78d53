"""PPO (TorchRL ClipPPOLoss + GAE), an on-policy Algorithm.

Trained by the harness (:class:`dcsched.training.harness.Agent`): each collector batch
[num_envs, steps] gets its advantages (GAE, :meth:`PPO.before_epochs`) and is used for
``ppo_epochs`` passes of shuffled minibatches (the update of
:class:`~dcsched.agents.on_policy.OnPolicyActorCritic`, which PPO, MAPPO and A2C share), then dropped. Shapers do not
apply to the central PPO (they need replayed transitions).

Two action encodings: ``continuous`` (a tanh-squashed Gaussian on the [-1, 1] box, as SAC's) and
``discrete`` (one categorical per component of the schedule, ordinal for ordered levels:
:mod:`dcsched.agents.distributions`). The massively parallel recipes (``ppo_parallel``) use the
discrete one with thousands of envs and one whole day per env in each batch.

Lagrangian PPO (``agent.constraint=violation``): the per-slot late + dropped share c_t is a cost
with the constraint E[c] <= ``agent.cost_limit``. GAE and the loss see r_t - lambda c_t, written to
("next", "penalised_reward") (the sampled reward is kept); after each batch the multiplier takes a
projected dual-ascent step lambda <- max(0, lambda + ``agent.lr_lagrange`` (mean c - limit)). With
``lr_lagrange`` 0 and ``lagrange_init`` 0 the updates equal plain PPO's exactly (tested).
"""

from __future__ import annotations

import torch
from torch import nn
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import ClipPPOLoss

from dcsched.agents import networks
from dcsched.agents.algorithm import Capabilities
from dcsched.agents.on_policy import OnPolicyActorCritic

PENALISED_REWARD = "penalised_reward"  # ("next", PENALISED_REWARD): r - lambda c, Lagrangian PPO only


def penalised_reward(reward: torch.Tensor, cost: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
    """r - lambda c. reward [B, T, 1] (env reward), cost [B, T] (violation share), multiplier []."""
    return reward - multiplier * cost.unsqueeze(-1).to(reward.dtype)


def dual_step(multiplier: torch.Tensor, mean_cost: float, limit: float, lr: float) -> torch.Tensor:
    """Projected dual ascent on the Lagrange multiplier: max(0, lambda + lr (mean cost - limit))."""
    return (multiplier + lr * (mean_cost - limit)).clamp(min=0.0)


class PPO(OnPolicyActorCritic):
    """PPO with a clipped objective, GAE, normalised advantages and gradient clipping at norm 1."""

    name = "ppo"
    capabilities = Capabilities(on_policy=True, shaping="none", action_encodings=("continuous", "discrete"),
                                constraints=("none", "violation"))
    max_grad_norm = 1.0

    def __init__(self, cfg, env, device, make_shaper=None):
        super().__init__(cfg, env, device, make_shaper)
        a = cfg.agent
        if a.constraint == "violation":
            self.register_buffer("lagrange", torch.tensor(float(a.lagrange_init)))
            self.advantage.set_keys(reward=PENALISED_REWARD)

    @classmethod
    def actor_for_evaluation(cls, cfg, env):
        """The policy network for ``env``'s encoding: a squashed Gaussian, or one categorical per
        component of the discrete schedule."""
        spec = env.action_spec_unbatched
        if cfg.env.action_encoding == "discrete":
            from dcsched.agents.distributions import groups_for

            return networks.ppo_discrete_actor(env.obs_dim, groups_for(env.params, env.transfer_chunks),
                                               cfg.network.hidden_sizes, spec)
        return networks.ppo_actor(env.obs_dim, env.action_spec.shape[-1], cfg.network.hidden_sizes, spec)

    def build_actor_critic(self, cfg, env):
        self.obs_dim = env.obs_dim
        self.act_dim = env.action_spec.shape[-1]
        actor = self.actor_for_evaluation(cfg, env)
        critic = ValueOperator(MLP(in_features=self.obs_dim, out_features=1, num_cells=list(cfg.network.hidden_sizes),
                                   activation_class=nn.Tanh), in_keys=["observation"])
        return actor, critic

    def build_loss(self, agent_cfg):
        return ClipPPOLoss(self.actor, self.critic, clip_epsilon=agent_cfg.clip_epsilon,
                           entropy_coeff=agent_cfg.entropy_coef, normalize_advantage=True)

    def prepare(self, batch, frames):
        """Lagrangian PPO: the penalised reward r - lambda c for GAE, then one dual step on lambda."""
        a = self.cfg.agent
        data = batch.exclude("outcome", ("next", "outcome"))
        metrics: dict[str, float] = {}
        if a.constraint == "violation":
            cost = batch["next", "outcome", "violation_share"]  # [B, T]
            data.set(("next", PENALISED_REWARD), penalised_reward(data["next", "reward"], cost, self.lagrange))
            mean_cost = float(cost.mean())
            self.lagrange.copy_(dual_step(self.lagrange, mean_cost, a.cost_limit, a.lr_lagrange))
            metrics.update({"lagrange/multiplier": float(self.lagrange), "lagrange/cost": mean_cost})
        return data, metrics
