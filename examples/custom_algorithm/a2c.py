"""A new learning method in one file: advantage actor-critic (TorchRL A2CLoss) as a dcsched Algorithm.

The harness (dcsched.training.harness.Agent) brings the env, the collector, the minibatch loop, the
counters, the checkpoints, exact resume, W&B/CSV logging and the evaluation on test days; the
algorithm brings its networks, its loss and one update. Importing this module registers it as
``agent.name=a2c``:

    DCSCHED_PLUGINS=examples/custom_algorithm/a2c.py dcsched train quick/ppo_parallel agent.name=a2c \
        env.action_encoding=continuous

(a file path, or a module name on PYTHONPATH; an installed package can instead declare its module
in the ``dcsched.plugins`` entry-point group). Its ``agent`` keys are :class:`A2CConfig`, registered
with it: the on-policy loop's (gamma, gae_lambda, entropy_coef, ppo_epochs, minibatch_size; one pass
of the whole batch is plain A2C) and one of its own, ``critic_coef``. `dcsched list --keys` prints
them with the comments below, and a key A2C does not declare is refused when the recipe loads.
"""

from __future__ import annotations

import torch
from torch import nn
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import A2CLoss
from torchrl.objectives.value import GAE

from dataclasses import dataclass

from dcsched.agents import networks
from dcsched.agents.algorithm import Algorithm, Capabilities
from dcsched.agents.configs import OnPolicyConfig
from dcsched.registry import AGENTS


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C's agent keys: the on-policy loop's, and its own below."""

    critic_coef: float = 1.0  # weight of the critic's loss beside the policy objective


class A2C(Algorithm):
    """Synchronous advantage actor-critic: GAE advantages, one gradient step per minibatch."""

    name = "a2c"
    capabilities = Capabilities(on_policy=True, shaping="none", action_encodings=("continuous",))

    def __init__(self, cfg, env, device, make_shaper=None):
        super().__init__(cfg, env, device, make_shaper)
        a, hidden = cfg.agent, list(cfg.network.hidden_sizes)
        self.obs_dim, self.act_dim = env.obs_dim, env.action_spec.shape[-1]
        self.actor = networks.ppo_actor(self.obs_dim, self.act_dim, hidden, env.action_spec_unbatched).to(device)
        self.critic = ValueOperator(MLP(in_features=self.obs_dim, out_features=1, num_cells=hidden,
                                        activation_class=nn.Tanh), in_keys=["observation"]).to(device)
        td = env.reset()
        self.actor(td)
        self.critic(td)
        self.advantage = GAE(gamma=a.gamma, lmbda=a.gae_lambda, value_network=self.critic, average_gae=False)
        self.loss = A2CLoss(self.actor, self.critic, entropy_coeff=a.entropy_coef, critic_coeff=a.critic_coef)

    def make_optimizers(self, optim):
        return [torch.optim.Adam([{"params": self.actor.parameters(), "lr": optim.lr_actor},
                                  {"params": self.critic.parameters(), "lr": optim.lr_critic}])]

    def before_epochs(self, data, frames):
        with torch.no_grad():
            self.advantage(data)  # writes "advantage" and "value_target" into the batch
        return {}

    def minibatch_keys(self):
        return ["observation", "action", "advantage", "value_target"]

    def update(self, sample, ctx):
        (opt,) = ctx.optimizers
        out = self.loss_call(sample)
        loss = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        opt.zero_grad()
        ctx.backward(loss)
        opt.step()
        return {"loss/objective": out["loss_objective"].item(), "loss/critic": out["loss_critic"].item()}


AGENTS.add("a2c", A2C, "A2C (TorchRL A2CLoss + GAE), on-policy; an example of a user-registered algorithm",
           config=A2CConfig)
