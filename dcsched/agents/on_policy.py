"""The on-policy actor-critic base: what PPO, MAPPO / IPPO and an on-policy plugin (A2C) share.

A subclass builds its actor and critic (:meth:`OnPolicyActorCritic.build_actor_critic`) and its
TorchRL loss (:meth:`OnPolicyActorCritic.build_loss`); the base moves them to the training device,
lets their lazy layers take their shapes from one reset of the env, sets up GAE from ``agent.gamma``
and ``agent.gae_lambda`` (:class:`~dcsched.agents.configs.OnPolicyConfig`), and implements the
on-policy hooks the harness calls: the advantages before the epochs (with the optional shaped
reward and its diagnostics), the minibatch keys, one Adam optimiser over actor and critic, and one
update (objective + critic + entropy, gradients clipped at ``max_grad_norm`` when set)."""

from __future__ import annotations

from typing import ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.objectives.value import GAE

from dcsched.agents.algorithm import Algorithm


class OnPolicyActorCritic(Algorithm):
    """GAE + an actor-critic TorchRL loss whose output has ``loss_objective``, ``loss_critic`` and
    ``loss_entropy``. ``env``: the env of the algorithm's view (read for specs and one reset)."""

    max_grad_norm: ClassVar[float | None] = None  # clip the actor's and critic's gradient norm at this (None: no clip)

    def __init__(self, cfg, env, device, make_shaper=None):
        super().__init__(cfg, env, device, make_shaper)
        self.actor, self.critic = self.build_actor_critic(cfg, env)
        self.actor.to(self.train_device)
        self.critic.to(self.train_device)
        td = env.reset()
        self.actor(td)  # lazy layers take their shapes
        self.critic(td)
        a = cfg.agent
        self.advantage = GAE(gamma=a.gamma, lmbda=a.gae_lambda, value_network=self.critic, average_gae=False)
        self.loss = self.build_loss(a)

    def build_actor_critic(self, cfg, env) -> tuple[nn.Module, nn.Module]:
        """(actor, critic) for ``env``; also sets ``self.obs_dim`` and ``self.act_dim``. The actor is
        built first (the order fixes which random numbers initialise which network)."""
        raise NotImplementedError

    def build_loss(self, agent_cfg) -> nn.Module:
        """The TorchRL loss over ``self.actor`` and ``self.critic`` (``agent_cfg``: the ``agent`` group)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the harness's on-policy hooks
    def shape_rewards(self, data: TensorDictBase, frames: int) -> dict[str, float]:
        """Write a shaped reward for GAE into ``data`` (algorithms with a shaper); returns its metrics."""
        return {}

    def shaping_diagnostics(self, data: TensorDictBase) -> dict[str, float]:
        """Diagnostics of the shaped reward against GAE's advantage (algorithms with a shaper)."""
        return {}

    def before_epochs(self, data, frames):
        metrics = self.shape_rewards(data, frames)
        with torch.no_grad():
            self.advantage(data)  # writes the advantage and value target into the batch
        metrics.update(self.shaping_diagnostics(data))
        return metrics

    def minibatch_keys(self) -> list:
        """What the loss reads once GAE has run: the networks' inputs, the action, its log-prob under
        the acting policy, the advantage, the value target and the old value. Indexing only these
        into minibatches (not the whole batch with its ("next", ...) copy) cuts the indexing from
        about 32 to 4 ms per minibatch of 4,096 rows."""
        k = self.loss.tensor_keys
        return sorted({*self.actor.in_keys, *self.critic.in_keys, k.action, k.sample_log_prob, k.advantage,
                       k.value_target, k.value}, key=str)

    def make_optimizers(self, optim):
        return torch.optim.Adam([{"params": self.actor.parameters(), "lr": optim.lr_actor},
                                 {"params": self.critic.parameters(), "lr": optim.lr_critic}])

    def update(self, sample, ctx):
        (opt,) = ctx.optimizers
        loss_td = self.loss_call(sample)
        loss = loss_td["loss_objective"] + loss_td["loss_critic"] + loss_td["loss_entropy"]
        opt.zero_grad()
        ctx.backward(loss)
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_([*self.actor.parameters(), *self.critic.parameters()], self.max_grad_norm)
        opt.step()
        return {"loss/objective": loss_td["loss_objective"].item(), "loss/critic": loss_td["loss_critic"].item(),
                "loss/entropy": loss_td["loss_entropy"].item()}
