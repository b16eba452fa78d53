"""Turn a policy name or a checkpoint path into a bound :class:`Policy`."""

from __future__ import annotations

from pathlib import Path

from dcsched.baselines.policy import Policy
from dcsched.registry import POLICIES


def make_policy(name_or_path: str, env, seed: int = 0) -> Policy:
    path = Path(name_or_path)
    if path.suffix == ".ckpt":
        from dcsched.agents.checkpoint_policy import load_checkpoint_policy

        return load_checkpoint_policy(path, env)
    cls = POLICIES.get(name_or_path)
    kwargs = {"seed": seed} if "seed" in cls.__init__.__code__.co_varnames else {}
    policy = cls(**kwargs)
    return policy.bind(env)
