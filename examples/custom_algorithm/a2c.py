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

from torch import nn
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import A2CLoss

from dataclasses import dataclass

from dcsched.agents import networks
from dcsched.agents.algorithm import Capabilities
from dcsched.agents.configs import OnPolicyConfig
from dcsched.agents.on_policy import OnPolicyActorCritic
from dcsched.registry import AGENTS


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C's agent keys: the on-policy loop's, and its own below."""

    critic_coef: float = 1.0  # weight of the critic's loss beside the policy objective


class A2C(OnPolicyActorCritic):
    """Synchronous advantage actor-critic: GAE advantages, one gradient step per minibatch. The base
    class brings GAE, the optimiser, the minibatch keys and the update; A2C brings its networks and
    its loss."""

    name = "a2c"
    capabilities = Capabilities(on_policy=True, shaping="none", action_encodings=("continuous",))

    def build_actor_critic(self, cfg, env):
        hidden = list(cfg.network.hidden_sizes)
        self.obs_dim, self.act_dim = env.obs_dim, env.action_spec.shape[-1]
        actor = networks.ppo_actor(self.obs_dim, self.act_dim, hidden, env.action_spec_unbatched)
        critic = ValueOperator(MLP(in_features=self.obs_dim, out_features=1, num_cells=hidden,
                                   activation_class=nn.Tanh), in_keys=["observation"])
        return actor, critic

    def build_loss(self, agent_cfg):
        return A2CLoss(self.actor, self.critic, entropy_coeff=agent_cfg.entropy_coef, critic_coeff=agent_cfg.critic_coef)

    def minibatch_keys(self):
        return ["observation", "action", "advantage", "value_target"]


AGENTS.add("a2c", A2C, "A2C (TorchRL A2CLoss + GAE), on-policy; an example of a user-registered algorithm",
           config=A2CConfig)
