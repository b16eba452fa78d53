"""Actor and critic networks for the policy agents (TorchRL modules)."""

from __future__ import annotations

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, AdditiveGaussianModule, ProbabilisticActor, TanhNormal, ValueOperator


def sac_actor(obs_dim: int, act_dim: int, hidden: list[int], spec) -> ProbabilisticActor:
    """Gaussian policy squashed by tanh onto the [-1, 1] box."""
    net = nn.Sequential(MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=list(hidden),
                            activation_class=nn.ReLU), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
                              distribution_kwargs={"low": -1.0, "high": 1.0},
                              default_interaction_type=ExplorationType.RANDOM, return_log_prob=False)


def ppo_actor(obs_dim: int, act_dim: int, hidden: list[int], spec) -> ProbabilisticActor:
    """PPO's Gaussian policy (Tanh MLP) squashed by tanh onto the [-1, 1] box, with its log-prob."""
    net = nn.Sequential(MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=list(hidden),
                            activation_class=nn.Tanh), NormalParamExtractor())
    return ProbabilisticActor(TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
                              in_keys=["loc", "scale"], spec=spec, distribution_class=TanhNormal,
                              distribution_kwargs={"low": -1.0, "high": 1.0},
                              default_interaction_type=ExplorationType.RANDOM, return_log_prob=True)


def ppo_discrete_actor(obs_dim: int, groups, hidden: list[int], spec) -> ProbabilisticActor:
    """PPO's policy over the factorised discrete encoding: a Tanh MLP scores every level of every
    component (:class:`~dcsched.agents.distributions.FactorisedCategorical`; ordinal for ordered
    levels). The output layer starts at zero, so the first policy is uniform over each component."""
    from dcsched.agents.distributions import FactorisedCategorical

    mlp = MLP(in_features=obs_dim, out_features=sum(g.num_scores for g in groups), num_cells=list(hidden),
              activation_class=nn.Tanh)
    last = [m for m in mlp.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return ProbabilisticActor(TensorDictModule(mlp, in_keys=["observation"], out_keys=["scores"]),
                              in_keys=["scores"], spec=spec, distribution_class=FactorisedCategorical,
                              distribution_kwargs={"groups": tuple(groups)},
                              default_interaction_type=ExplorationType.RANDOM, return_log_prob=True)


def deterministic_actor(obs_dim: int, act_dim: int, hidden: list[int]) -> TensorDictModule:
    net = nn.Sequential(MLP(in_features=obs_dim, out_features=act_dim, num_cells=list(hidden),
                            activation_class=nn.ReLU), nn.Tanh())
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


def exploration_policy(actor: TensorDictModule, spec, sigma: float) -> TensorDictSequential:
    noise = AdditiveGaussianModule(spec=spec, sigma_init=sigma, sigma_end=sigma, annealing_num_steps=1)
    return TensorDictSequential(actor, noise)


def q_network(obs_dim: int, act_dim: int, hidden: list[int]) -> ValueOperator:
    net = MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=list(hidden), activation_class=nn.ReLU)
    return ValueOperator(net, in_keys=["observation", "action"])


@torch.no_grad()
def mean_action(actor: TensorDictModule, td) -> torch.Tensor:
    """The actor's deterministic (mean) action for td["observation"] [B, S] -> [B, A]; td is not modified."""
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        return actor(td.select("observation").clone())["action"]
