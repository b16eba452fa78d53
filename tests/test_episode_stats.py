"""Episode statistics of the training env through TorchRL's RewardSum and StepCounter."""

import pytest
import torch
from torchrl.collectors import Collector

from dcsched.agents.episode_stats import episode_reward_key, finished_episodes, with_episode_stats
from dcsched.config import EnvConfig, load_scenario
from dcsched.envs import make_env
from dcsched.envs.multi_agent import GROUP, MultiAgentDCSchedEnv


def _two_days(env, policy):
    """One batch of two whole days per env ([num_envs, 2T]) from a collector on the wrapped env."""
    B, T = env.batch_size[0], env.T if hasattr(env, "T") else env.central.T
    collector = Collector(with_episode_stats(env, "reward" if not isinstance(env, MultiAgentDCSchedEnv)
                                             else (GROUP, "reward")),
                          policy, frames_per_batch=B * 2 * T, total_frames=-1)
    batch = next(iter(collector))
    collector.shutdown()
    return batch, T


@pytest.mark.parametrize("multi_agent", [False, True])
def test_episode_return_and_length_are_each_days_own_sum_and_slot_count(multi_agent):
    """Two days per env in one batch: the logged return is the mean of the per-day reward sums (it
    fails if the running sum is not reset between days) and the length is T."""
    cfg = load_scenario("paper3")
    env = make_env(cfg, EnvConfig(num_envs=3, action_encoding="discrete"), seed=0)
    if multi_agent:
        env = MultiAgentDCSchedEnv(env)
    torch.manual_seed(0)

    def random_policy(td):
        return td.update(env.full_action_spec.rand())

    batch, T = _two_days(env, random_policy)
    reward_key = (GROUP, "reward") if multi_agent else "reward"
    reward = batch["next", reward_key]
    reward = reward.reshape(*batch.shape, -1)[..., 0]  # [B, 2T]
    per_day = torch.stack([reward[:, :T].sum(1), reward[:, T:].sum(1)], 1).to(torch.float64)
    stats = finished_episodes(batch, reward_key)
    assert stats["train/episode_length"] == T
    assert stats["train/episode_return"] == pytest.approx(float(per_day.mean()), rel=1e-5)
    assert not torch.allclose(per_day[:, 0], per_day[:, 1])  # the two days differ: a missed reset would show
    running = batch["next", episode_reward_key(reward_key)].reshape(*batch.shape, -1)[..., 0]
    assert torch.allclose(running[:, T - 1], per_day[:, 0].float(), rtol=1e-5)


def test_no_episode_ended_no_statistic():
    cfg = load_scenario("paper3")
    env = make_env(cfg, EnvConfig(num_envs=2, action_encoding="discrete"), seed=0)
    collector = Collector(with_episode_stats(env), lambda td: td.update(env.full_action_spec.zero()),
                          frames_per_batch=2 * 10, total_frames=-1)
    batch = next(iter(collector))
    assert finished_episodes(batch) == {}
    assert int(batch["next", "step_count"][:, -1].max()) == 10
