"""Run one policy over whole days in the batched env and stack the per-slot outcome."""

from __future__ import annotations

import numpy as np
import torch

from dcsched.baselines.policy import Policy
from dcsched.envs.dc_env import DCSchedEnv


@torch.no_grad()
def run_days(env: DCSchedEnv, policy: Policy, progress=None) -> dict[str, np.ndarray]:
    """Play every day of ``env`` (sequential_days mode) once with ``policy``.

    Returns numpy arrays [D, T, ...] of every outcome key, plus ``price_usd_per_mwh``,
    ``temp_c`` ([D, T, N]) and ``reward`` ([D, T]).
    """
    if not env.sequential_days:
        raise ValueError("run_days needs an env built with sequential_days=True")
    policy.reset()
    td = env.reset()
    rows: dict[str, list[torch.Tensor]] = {}
    for t in range(env.T):
        td["action"] = policy.act(td)
        td = env.step(td)
        nxt = td["next"]
        for key, value in nxt["outcome"].items():
            rows.setdefault(key, []).append(value)
        rows.setdefault("reward", []).append(nxt["reward"].squeeze(-1))
        td = env.step_mdp(td)
        if progress is not None:
            progress()
    out = {k: torch.stack(v, dim=1).cpu().numpy() for k, v in rows.items()}
    out["price_usd_per_mwh"] = env.exo.price_usd_per_mwh.cpu().numpy()
    out["temp_c"] = env.exo.temp_c.cpu().numpy()
    out["carbon_g_per_kwh"] = env.exo.carbon_g_per_kwh.cpu().numpy()
    return out
