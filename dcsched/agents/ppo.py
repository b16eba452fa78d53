"""PPO (TorchRL ClipPPOLoss + GAE), an on-policy Algorithm.

Trained by the harness (:class:`dcsched.training.harness.Agent`): each collector batch
[num_envs, steps] gets its advantages (GAE, :meth:`PPO.before_epochs`) and is used for
``ppo_epochs`` passes of shuffled minibatches (:meth:`PPO.update`), then dropped. Shapers do not
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
from tensordict import TensorDictBase
from torch import nn
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from dcsched.agents import networks
from dcsched.agents.algorithm import Algorithm, Capabilities

PENALISED_REWARD = "penalised_reward"  # ("next", PENALISED_REWARD): r - lambda c, Lagrangian PPO only


def penalised_reward(reward: torch.Tensor, cost: torch.Tensor, multiplier: torch.Tensor) -> torch.Tensor:
    """r - lambda c. reward [B, T, 1] (env reward), cost [B, T] (violation share), multiplier []."""
    return reward - multiplier * cost.unsqueeze(-1).to(reward.dtype)


def dual_step(multiplier: torch.Tensor, mean_cost: float, limit: float, lr: float) -> torch.Tensor:
    """Projected dual ascent on the Lagrange multiplier: max(0, lambda + lr (mean cost - limit))."""
    return (multiplier + lr * (mean_cost - limit)).clamp(min=0.0)


class PPO(Algorithm):
    """PPO with a clipped objective, GAE, normalised advantages and gradient clipping at norm 1."""

    name = "ppo"
    capabilities = Capabilities(on_policy=True, shaping="none", action_encodings=("continuous", "discrete"),
                                constraints=("none", "violation"))

    def __init__(self, cfg, env, device, make_shaper=None):
        super().__init__(cfg, env, device, make_shaper)
        c, a = cfg, cfg.agent
        self.obs_dim = env.obs_dim
        self.act_dim = env.action_spec.shape[-1]
        spec = env.action_spec_unbatched
        if c.env.action_encoding == "discrete":
            from dcsched.agents.distributions import groups_for

            self.actor = networks.ppo_discrete_actor(self.obs_dim, groups_for(env.params, env.transfer_chunks),
                                                    c.network.hidden_sizes, spec)
        else:
            self.actor = networks.ppo_actor(self.obs_dim, self.act_dim, c.network.hidden_sizes, spec)
        self.critic = ValueOperator(MLP(in_features=self.obs_dim, out_features=1, num_cells=list(c.network.hidden_sizes),
                                        activation_class=nn.Tanh), in_keys=["observation"])
        self.actor.to(self.train_device)
        self.critic.to(self.train_device)
        td = env.reset()
        self.actor(td)
        self.critic(td)
        self.advantage = GAE(gamma=a.gamma, lmbda=a.gae_lambda, value_network=self.critic, average_gae=False)
        self.loss = ClipPPOLoss(self.actor, self.critic, clip_epsilon=a.clip_epsilon, entropy_coeff=a.entropy_coef,
                                normalize_advantage=True)
        if a.constraint == "violation":
            self.register_buffer("lagrange", torch.tensor(float(a.lagrange_init)))
            self.advantage.set_keys(reward=PENALISED_REWARD)

    def minibatch_keys(self) -> list:
        """What the loss reads once GAE has run: the networks' inputs, the action, its log-prob under
        the acting policy, the advantage, the value target and the old value. Indexing only these
        into minibatches (not the whole batch with its ("next", ...) copy) cuts the indexing from
        about 32 to 4 ms per minibatch of 4,096 rows."""
        k = self.loss.tensor_keys
        return sorted({*self.actor.in_keys, *self.critic.in_keys, k.action, k.sample_log_prob, k.advantage,
                       k.value_target, k.value}, key=str)

    def shape_rewards(self, data: TensorDictBase, frames: int) -> dict[str, float]:
        """Write a shaped reward for GAE into ``data`` (algorithms with a shaper); returns its metrics."""
        return {}

    def shaping_diagnostics(self, data: TensorDictBase) -> dict[str, float]:
        """Diagnostics of the shaped reward against GAE's advantage (algorithms with a shaper)."""
        return {}

    def make_optimizers(self, optim):
        return torch.optim.Adam([{"params": self.actor.parameters(), "lr": optim.lr_actor},
                                 {"params": self.critic.parameters(), "lr": optim.lr_critic}])

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

    def before_epochs(self, data, frames):
        metrics = self.shape_rewards(data, frames)
        with torch.no_grad():
            self.advantage(data)
        metrics.update(self.shaping_diagnostics(data))
        return metrics

    def update(self, sample, ctx):
        (opt,) = ctx.optimizers
        loss_td = self.loss_call(sample)
        loss = loss_td["loss_objective"] + loss_td["loss_critic"] + loss_td["loss_entropy"]
        opt.zero_grad()
        ctx.backward(loss)
        nn.utils.clip_grad_norm_([*self.actor.parameters(), *self.critic.parameters()], 1.0)
        opt.step()
        return {"loss/objective": loss_td["loss_objective"].item(), "loss/critic": loss_td["loss_critic"].item(),
                "loss/entropy": loss_td["loss_entropy"].item()}
