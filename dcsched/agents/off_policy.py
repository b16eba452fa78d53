"""Off-policy algorithms: SAC and TD3 (TorchRL SACLoss / TD3Loss) with an optional shaper.

Trained by the harness (:class:`dcsched.training.harness.Agent`): collector batches go to its
replay buffer, and each sampled batch comes to :meth:`OffPolicyAlgorithm.update`.

An optional shaper (``dcsched.shaping``, chosen by registry name and injected by the harness as a
constructor argument) acts on the data like a transform: it annotates each collected batch with the
auxiliary reward it proposes (``prepare``), and per update runs its own step and writes
r^E + eta * F to ("next", "shaped_reward"); the policy agent's loss is pointed at that key with
``set_keys`` (the sampled r^E is never overwritten).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.objectives import SACLoss, SoftUpdate, TD3Loss

from dcsched.agents import networks
from dcsched.agents.algorithm import Algorithm, Capabilities, UpdateContext
from dcsched.agents.episode_stats import EPISODE_REWARD, STEP_COUNT
from dcsched.shaping.base import R_AUX_NOW_KEY, SHAPED_REWARD, correlation


class OffPolicyAlgorithm(Algorithm):
    """The optional shaper around an off-policy loss; subclasses build the networks and the loss
    (``build``) and take one gradient step (``gradient_update``)."""

    capabilities = Capabilities(on_policy=False)

    def __init__(self, cfg, env, device, make_shaper=None):
        super().__init__(cfg, env, device, make_shaper)
        self.obs_dim = env.obs_dim
        self.act_dim = env.action_spec.shape[-1]
        if make_shaper is not None:  # built before the networks: the seeded draws keep their order
            self.shaper = make_shaper(self.obs_dim, self.act_dim, cfg.seed)
        self.build(cfg, env)
        if self.shaper is not None:
            self.loss.set_keys(reward=SHAPED_REWARD)

    def build(self, cfg, env) -> None:
        raise NotImplementedError

    def gradient_update(self, sample: TensorDictBase, ctx: UpdateContext) -> dict[str, float]:
        raise NotImplementedError

    def prepare(self, batch, frames):
        """The shaper annotates the batch (its proposal r^A for each row); the replay buffer keeps
        the transitions without the env's outcome record, the episode statistics and the batch
        queue's state (N * N * horizon values a row; the learner reads its observation buckets)."""
        if self.shaper is not None:
            self.shaper.annotate(batch)
        return batch.exclude("outcome", ("next", "outcome"), STEP_COUNT, EPISODE_REWARD, ("next", STEP_COUNT),
                             ("next", EPISODE_REWARD), "batch_queue", ("next", "batch_queue")), {}

    def update(self, sample, ctx):
        losses: dict[str, float] = {}
        if self.shaper is not None:
            losses.update(self.shaper.shape(sample, self.actor, ctx.frames, ctx.diagnose))
        losses.update(self.gradient_update(sample, ctx))
        if ctx.diagnose and self.shaper is not None:
            losses["diag/corr_r_aux_advantage"] = correlation(sample[R_AUX_NOW_KEY], self.advantage(sample))
        return losses

    @torch.no_grad()
    def advantage(self, sample: TensorDictBase) -> torch.Tensor:
        """The policy agent's advantage estimate A(s, a) = Q(s, a) - Q(s, mean action), with Q the
        minimum over its Q-networks (the loss module's current parameters). Returns [B, 1]."""
        loss = self.loss
        mean_action = networks.mean_action(self.actor, sample)

        def min_q(action):
            td = sample.select("observation").clone().set("action", action)
            values = []
            for j in range(loss.num_qvalue_nets):
                with loss.qvalue_network_params[j].to_module(loss.qvalue_network):
                    values.append(loss.qvalue_network(td.clone())["state_action_value"])
            return torch.stack(values).min(0).values

        return min_q(sample["action"]) - min_q(mean_action)


class SAC(OffPolicyAlgorithm):
    """Soft actor-critic (TorchRL SACLoss, twin Q, soft target updates, auto-tuned alpha)."""

    name = "sac"

    @classmethod
    def actor_for_evaluation(cls, cfg, env):
        return networks.sac_actor(env.obs_dim, env.action_spec.shape[-1], cfg.network.hidden_sizes,
                                  env.action_spec_unbatched)

    def build(self, c, env) -> None:
        a = c.agent
        spec = env.action_spec_unbatched
        self.actor = networks.sac_actor(self.obs_dim, self.act_dim, c.network.hidden_sizes, spec).to(self.train_device)
        self.actor(env.reset())  # initialise lazy shapes
        q_net = networks.q_network(self.obs_dim, self.act_dim, c.network.hidden_sizes).to(self.train_device)
        self.loss = SACLoss(self.actor, q_net,
                            num_qvalue_nets=2, alpha_init=a.alpha_init, fixed_alpha=a.fixed_alpha, action_spec=spec,
                            loss_function=a.critic_loss)
        self.loss.make_value_estimator(gamma=a.gamma)
        _ = self.loss.target_entropy  # lazily registered buffer: touch it so checkpoints load strictly
        self.target_updater = SoftUpdate(self.loss, tau=a.tau)

    def make_optimizers(self, optim):
        opts = [torch.optim.Adam(self.loss.actor_network_params.flatten_keys().values(), lr=optim.lr_actor),
                torch.optim.Adam(self.loss.qvalue_network_params.flatten_keys().values(), lr=optim.lr_critic)]
        if not self.cfg.agent.fixed_alpha:
            opts.append(torch.optim.Adam([self.loss.log_alpha], lr=optim.lr_alpha))
        return opts

    def gradient_update(self, sample, ctx):
        opts = ctx.optimizers
        loss_td = self.loss_call(sample)
        total = loss_td["loss_actor"] + loss_td["loss_qvalue"]
        if not self.cfg.agent.fixed_alpha:
            total = total + loss_td["loss_alpha"]
        for o in opts:
            o.zero_grad()
        ctx.backward(total)
        for o in opts:
            o.step()
        self.target_updater.step()
        return {"loss/actor": loss_td["loss_actor"].item(), "loss/critic": loss_td["loss_qvalue"].item(),
                "alpha": loss_td["alpha"].item(), "entropy": loss_td["entropy"].item()}


class TD3(OffPolicyAlgorithm):
    """TD3 (TorchRL TD3Loss): deterministic actor, Gaussian exploration, target smoothing, delayed actor."""

    name = "td3"

    @classmethod
    def actor_for_evaluation(cls, cfg, env):
        return networks.deterministic_actor(env.obs_dim, env.action_spec.shape[-1], cfg.network.hidden_sizes)

    def build(self, c, env) -> None:
        a = c.agent
        spec = env.action_spec_unbatched
        self.actor = networks.deterministic_actor(self.obs_dim, self.act_dim, c.network.hidden_sizes).to(self.train_device)
        self.explorer = networks.exploration_policy(self.actor, spec, a.exploration_noise).to(self.train_device)
        self.actor(env.reset())
        q_net = networks.q_network(self.obs_dim, self.act_dim, c.network.hidden_sizes).to(self.train_device)
        self.loss = TD3Loss(self.actor, q_net,
                            action_spec=spec, num_qvalue_nets=2, policy_noise=a.policy_noise, noise_clip=a.noise_clip,
                            loss_function=a.critic_loss)
        self.loss.make_value_estimator(gamma=a.gamma)
        self.target_updater = SoftUpdate(self.loss, tau=a.tau)

    def exploration_module(self):
        return self.explorer

    def make_optimizers(self, optim):
        return [torch.optim.Adam(self.loss.actor_network_params.flatten_keys().values(), lr=optim.lr_actor),
                torch.optim.Adam(self.loss.qvalue_network_params.flatten_keys().values(), lr=optim.lr_critic)]

    def gradient_update(self, sample, ctx):
        opt_actor, opt_q = ctx.optimizers
        loss_td = self.loss_call(sample)
        update_actor = ctx.updates % self.cfg.agent.policy_delay == 0
        opt_actor.zero_grad()
        opt_q.zero_grad()
        total = loss_td["loss_qvalue"] + (loss_td["loss_actor"] if update_actor else 0.0)
        ctx.backward(total)
        opt_q.step()
        if update_actor:
            opt_actor.step()
            self.target_updater.step()
        return {"loss/actor": loss_td["loss_actor"].item(), "loss/critic": loss_td["loss_qvalue"].item()}
