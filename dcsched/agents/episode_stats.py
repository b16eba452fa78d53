"""Episode statistics of a training env through TorchRL transforms (RewardSum, StepCounter).

The collector steps ``with_episode_stats(env)``: every collected step then carries the return of
its episode so far (``episode_reward``, next to the reward it sums, e.g. ("dc", "episode_reward")
on the multi-agent view) and its slot count (``step_count``, at the root). Both are reset by the
env's own resets and travel with the collector's carrier, so a checkpoint that saves the carrier
resumes them exactly. The transforms draw no random numbers and change no other key.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.envs import Compose, EnvBase, RewardSum, StepCounter, TransformedEnv

EPISODE_REWARD = "episode_reward"
STEP_COUNT = "step_count"


def episode_reward_key(reward_key: str | tuple) -> str | tuple:
    """Where RewardSum writes the running return of ``reward_key`` (beside it, same group)."""
    return (*reward_key[:-1], EPISODE_REWARD) if isinstance(reward_key, tuple) else EPISODE_REWARD


def with_episode_stats(env: EnvBase, reward_key: str | tuple = "reward") -> TransformedEnv:
    """``env`` with a StepCounter (no step limit: a day ends by the env's own done) and a RewardSum
    of ``reward_key``."""
    return TransformedEnv(env, Compose(StepCounter(max_steps=None),
                                       RewardSum(in_keys=[reward_key], out_keys=[episode_reward_key(reward_key)])))


def finished_episodes(batch: TensorDictBase, reward_key: str | tuple = "reward") -> dict[str, float]:
    """Mean return and length of the episodes that ended in ``batch`` ([num_envs, steps], collected
    from :func:`with_episode_stats`); {} when none ended. A multi-agent return is agent 0's (the
    team reward is the same for every agent)."""
    done = batch["next", "done"].squeeze(-1)  # [B, steps]
    if not bool(done.any()):
        return {}
    returns = batch["next", episode_reward_key(reward_key)]
    returns = returns.reshape(*done.shape, -1)[..., 0]  # [B, steps]: the scalar (or agent 0's) return
    lengths = batch["next", STEP_COUNT].reshape(done.shape)
    return {"train/episode_return": float(returns[done].to(torch.float64).mean()),
            "train/episode_length": float(lengths[done].to(torch.float64).mean())}
