"""MAPPO / IPPO on the multi-agent view: decentralised actors, the critic's information, exact
resume, and evaluation of a checkpoint on the central env."""

import shutil

import pytest
import torch
from tensordict import TensorDict

from dcsched.training.harness import Agent
from dcsched.training.train import build_trainer
from dcsched.config import load_recipe, to_container
from dcsched.envs.multi_agent import GROUP
from dcsched.agents.checkpoint_format import safe_globals

TINY = ["env.num_envs=8", "network.hidden_sizes=[16,16]", "agent.minibatch_size=64", "agent.ppo_epochs=2",
        "trainer.frames_per_batch=128", "trainer.checkpoint_every_batches=2", "trainer.progress=false",
        "logger.wandb_mode=disabled", "logger.csv=false", "seed=3"]


def _module(algo, extra=()):
    cfg = load_recipe(f"quick/{algo}", TINY + list(extra))
    return cfg, Agent(to_container(cfg))


def _fit(tmp_path, batches, algo="mappo", resume=None):
    cfg = load_recipe(f"quick/{algo}", TINY + [f"trainer.total_frames={128 * batches}", f"out_dir={tmp_path}"])
    module = Agent(to_container(cfg))
    with safe_globals():  # dcsched's one checkpoint allow-list, as `dcsched train` resumes
        build_trainer(cfg, tmp_path, []).fit(module, ckpt_path=resume, weights_only=True)
    return module


def _weights(module):
    return torch.cat([p.detach().flatten() for p in [*module.algorithm.actor.parameters(), *module.algorithm.critic.parameters()]])


def _perturbed(module, j):
    """A reset tensordict and a copy in which only agent j's observation changed."""
    td = module.env.reset()
    obs = td[GROUP, "observation"]
    moved = obs.clone()
    moved[:, j] += torch.linspace(0.5, 1.5, obs.shape[-1])
    mk = lambda o: TensorDict({GROUP: TensorDict({"observation": o}, batch_size=o.shape[:2])},  # noqa: E731
                              batch_size=o.shape[:1])
    return mk(obs), mk(moved)


@pytest.mark.parametrize("algo,share", [("mappo", True), ("ippo", False)])
def test_actors_are_decentralised_and_only_mappo_critics_see_every_agent(algo, share):
    """Changing agent j's observation moves only agent j's action scores (both methods, shared or
    not); it moves every agent's value under MAPPO's centralised critic and only j's under IPPO."""
    _, module = _module(algo, [f"agent.share_params={str(share).lower()}"])
    with torch.no_grad():  # start from non-zero output layers, so that the scores react at all
        for p in module.algorithm.actor.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    j, N = 1, module.env.n_agents
    base, moved = _perturbed(module, j)
    others = [i for i in range(N) if i != j]
    with torch.no_grad():
        s0 = module.algorithm.actor.module[0](base.clone())[GROUP, "scores"]
        s1 = module.algorithm.actor.module[0](moved.clone())[GROUP, "scores"]
        v0 = module.algorithm.critic(base.clone())[GROUP, "state_value"]
        v1 = module.algorithm.critic(moved.clone())[GROUP, "state_value"]
    assert torch.equal(s0[:, others], s1[:, others]) and not torch.allclose(s0[:, j], s1[:, j])
    assert not torch.allclose(v0[:, j], v1[:, j])
    if algo == "mappo":
        assert all(not torch.allclose(v0[:, i], v1[:, i]) for i in others)
    else:
        assert torch.equal(v0[:, others], v1[:, others])


def test_the_first_policy_is_uniform_and_parameter_sharing_is_a_switch():
    _, shared = _module("mappo")
    _, separate = _module("mappo", ["agent.share_params=false"])
    td = shared.env.reset()
    with torch.no_grad():
        scores = shared.algorithm.actor.module[0](td.clone())[GROUP, "scores"]
    assert scores.abs().max() == 0.0
    n_shared = sum(p.numel() for p in shared.algorithm.actor.parameters())
    n_separate = sum(p.numel() for p in separate.algorithm.actor.parameters())
    assert n_separate == shared.env.n_agents * n_shared


def test_mappo_resumes_exactly_and_its_checkpoint_acts_on_the_central_env(tmp_path):
    part = _fit(tmp_path / "part", 2)
    full = _fit(tmp_path / "full", 4)
    resumed = _fit(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoints" / "last.ckpt"))
    assert int(resumed.updates) == int(full.updates) > int(part.updates) > 0
    assert torch.equal(_weights(resumed), _weights(full)), "resumed MAPPO updates differ from the uninterrupted run"
    assert not torch.equal(_weights(full), _weights(part)), "training changed nothing"

    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.envs import make_env
    from dcsched.envs.multi_agent import MultiAgentDCSchedEnv

    cfg = load_recipe("quick/mappo")
    env = make_env(cfg.scenario, cfg.env, num_envs=6, seed=1)
    policy = load_checkpoint_policy(tmp_path / "full" / "checkpoints" / "last.ckpt", env)
    view = MultiAgentDCSchedEnv(env)
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from dcsched.envs.dc_env import STATE_KEYS
    from dcsched.envs.multi_agent import received_from_others

    td = env.reset()
    for slot in range(2):  # the first slot and one with the transfers the others sent in the first
        action = policy.act(td)
        received = received_from_others(td["outcome", "transfer"], td["outcome", "arrivals"])
        assert bool(received.eq(0).all()) == (slot == 0)
        obs = view.agent_observation(td["arrivals"], {k: td[k] for k in STATE_KEYS}, td["day_idx"], td["t"], received)
        inner = TensorDict({GROUP: TensorDict({"observation": obs}, batch_size=obs.shape[:2])}, batch_size=[6])
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            levels = full.algorithm.actor(inner)[GROUP, "action"]
        assert not torch.equal(levels, torch.zeros_like(levels)), "a trained policy that only picks level 0"
        assert torch.equal(action, view.central_action(levels))
        td = env.step_mdp(env.step(td.set("action", action)))  # a valid central action


def test_a_multi_agent_checkpoint_refuses_another_scenario(tmp_path):
    _fit(tmp_path, 1)
    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.envs import make_env
    from dcsched.errors import ConfigError

    cfg = load_recipe("quick/mappo", ["scenario=global8"])
    with pytest.raises(ConfigError, match="trained on 'paper3'"):
        load_checkpoint_policy(tmp_path / "checkpoints" / "last.ckpt", make_env(cfg.scenario, cfg.env, num_envs=2))


def test_multi_agent_needs_the_discrete_encoding():
    from dcsched.errors import ConfigError

    with pytest.raises(ConfigError, match="env.action_encoding"):
        _module("ippo", ["env.action_encoding=continuous"])


def test_multi_agent_refuses_worker_collectors():
    """Worker processes would build central envs, not the per-provider view: refused by name."""
    from dcsched.errors import ConfigError

    with pytest.raises(ConfigError, match="collector.backend"):
        _module("mappo", ["collector.backend=process", "collector.num_workers=2"])
