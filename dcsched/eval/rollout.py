"""Run one policy over whole days in the batched env and stack the per-slot outcome."""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from dcsched.baselines.policy import Policy
from dcsched.envs.dc_env import DCSchedEnv


class PolicyStep:
    """A :class:`Policy` as the ``td -> td`` callable that ``EnvBase.rollout`` steps with: writes
    ``td["action"] = policy.act(td)`` and reports one slot to ``progress``."""

    def __init__(self, policy: Policy, progress=None):
        self.policy, self.progress = policy, progress

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        td["action"] = self.policy.act(td)
        if self.progress is not None:
            self.progress()
        return td


@torch.no_grad()
def run_days(env: DCSchedEnv, policy: Policy, progress=None) -> dict[str, np.ndarray]:
    """Play every day of ``env`` (sequential_days mode) once with ``policy``, through TorchRL's
    ``env.rollout`` (one reset, ``env.T`` steps, no reset after the last one, so a stochastic env's
    generator is left exactly where the day ended) under the deterministic exploration type (a
    TorchRL probabilistic actor acts with its mode / mean).

    Returns numpy arrays [D, T, ...] of every outcome key, plus ``price_usd_per_mwh``,
    ``temp_c``, ``carbon_g_per_kwh`` ([D, T, N]) and ``reward`` ([D, T]).
    """
    if not env.sequential_days:
        raise ValueError("run_days needs an env built with sequential_days=True")
    policy.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        trajectory = env.rollout(max_steps=env.T, policy=PolicyStep(policy, progress), auto_reset=True,
                                 break_when_any_done=True)  # [D, T]
    if trajectory.shape[-1] != env.T:
        raise RuntimeError(f"rollout ended after {trajectory.shape[-1]} of {env.T} slots: the env signalled done early")
    nxt = trajectory["next"]
    out = {key: value.cpu().numpy() for key, value in nxt["outcome"].items()}
    out["reward"] = nxt["reward"].squeeze(-1).cpu().numpy()
    out["price_usd_per_mwh"] = env.exo.price_usd_per_mwh.cpu().numpy()
    out["temp_c"] = env.exo.temp_c.cpu().numpy()
    out["carbon_g_per_kwh"] = env.exo.carbon_g_per_kwh.cpu().numpy()
    return out
