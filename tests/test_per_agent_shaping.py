"""DRESS-style reward agents for the per-provider agents (dcsched/shaping/per_agent.py): eta = 0 is
MAPPO exactly, the shaped reward of every agent by hand, a provider's reward agent sees only its
own provider's rows, exact resume with the reward agents."""

import pytest
import torch

from dcsched.training.harness import Agent
from dcsched.training.train import build_trainer
from dcsched.config import load_recipe, to_container
from dcsched.envs.multi_agent import GROUP
from dcsched.errors import ConfigError
from dcsched.shaping.per_agent import PerAgentShaping
from dcsched.agents.checkpoint_format import safe_globals

TINY = ["env.num_envs=4", "network.hidden_sizes=[16,16]", "agent.minibatch_size=64", "agent.ppo_epochs=1",
        "trainer.frames_per_batch=96", "trainer.checkpoint_every_batches=1", "trainer.progress=false",
        "logger.wandb_mode=disabled", "logger.csv=false", "seed=5", "shaper.hidden_sizes=[16,16]",
        "shaper.cond_hidden=16", "shaper.latent_dim=8", "shaper.updates_per_batch=2", "shaper.batch_size=32",
        "shaper.rs_learning_starts=0"]


def _fit(tmp_path, batches, extra=(), resume=None):
    cfg = load_recipe("quick/mappo", TINY + list(extra) + [f"trainer.total_frames={96 * batches}", f"out_dir={tmp_path}"])
    module = Agent(to_container(cfg))
    with safe_globals():  # dcsched's one checkpoint allow-list, as `dcsched train` resumes
        build_trainer(cfg, tmp_path, []).fit(module, ckpt_path=resume, weights_only=True)
    return module


def _policy_weights(module):
    return torch.cat([p.detach().flatten() for p in [*module.algorithm.actor.parameters(), *module.algorithm.critic.parameters()]])


def _shaper_weights(module):
    return torch.cat([p.detach().flatten() for p in module.shaper.parameters()])


def test_eta_zero_trains_mappo_exactly_while_the_reward_agent_learns(tmp_path):
    plain = _fit(tmp_path / "plain", 2)
    zero = _fit(tmp_path / "zero", 2, ["shaper.name=dress", "shaper.eta=0"])
    shaped = _fit(tmp_path / "shaped", 2, ["shaper.name=dress", "shaper.eta=0.4"])
    fresh = Agent(to_container(load_recipe("quick/mappo", TINY + ["shaper.name=dress", "shaper.eta=0"])))
    assert torch.equal(_policy_weights(zero), _policy_weights(plain)), "eta = 0 must leave MAPPO unchanged"
    assert not torch.equal(_shaper_weights(zero), _shaper_weights(fresh)), "the reward agent did not train"
    assert not torch.equal(_policy_weights(shaped), _policy_weights(plain)), "eta > 0 changed nothing"


def _pbrs(mode: str, seed: int = 0) -> tuple[Agent, object]:
    cfg = load_recipe("quick/mappo", TINY + ["shaper.name=dress_pbrs", "shaper.eta=0.5", f"shaper.per_agent={mode}",
                                             f"seed={seed}"])
    module = Agent(to_container(cfg))
    td = module.env.reset()
    batch = []
    for _ in range(3):  # a short on-policy rollout [B, 3]
        with torch.no_grad():
            td = module.algorithm.actor(td)
        out = module.env.step(td)
        batch.append(out.clone())
        td = module.env.step_mdp(out)
    return module, torch.stack(batch, dim=1)


@pytest.mark.parametrize("mode", ["shared", "per_provider"])
def test_the_shaped_reward_of_every_agent_is_its_own_potential_difference(mode):
    """PBRS is deterministic: after shape_batch, shaped - r^E = eta (gamma (1 - term) Phi_n(o'_n) - Phi_n(o_n))
    with Phi_n the reward agent of agent n (the shared one, or its own)."""
    module, batch = _pbrs(mode)
    shaped, _, metrics = module.shaper.shape_batch(batch, module.algorithm.actor, 10**6, GROUP)
    assert metrics["rs/active"] == 1.0
    N = module.env.n_agents
    assert len(module.shaper.shapers) == (1 if mode == "shared" else N)
    for n in range(N):
        ra = module.shaper.shapers[0 if mode == "shared" else n]
        o = batch[GROUP, "observation"][:, :, n].reshape(-1, module.obs_dim)
        o_next = batch["next", GROUP, "observation"][:, :, n].reshape(-1, module.obs_dim)
        term = batch["next", GROUP, "terminated"][:, :, n].reshape(-1, 1).float()
        f = 0.99 * (1 - term) * ra.potential(o_next) - ra.potential(o)
        r = batch["next", GROUP, "reward"][:, :, n].reshape(-1, 1)
        torch.testing.assert_close(shaped[:, :, n].reshape(-1, 1), r + 0.5 * f, rtol=0, atol=1e-6)
    assert not torch.allclose(shaped, batch["next", GROUP, "reward"])


def test_a_providers_own_reward_agent_never_sees_another_providers_rows():
    """per_provider: changing agent 1's observations (and so its rows) leaves every other agent's
    reward agent and shaped reward bit for bit unchanged; agent 1's changes."""
    module, batch = _pbrs("per_provider")
    twin, twin_batch = _pbrs("per_provider")  # the same module and rollout, built again (fresh optimisers)
    assert torch.equal(twin_batch[GROUP, "observation"], batch[GROUP, "observation"])
    base, _, _ = module.shaper.shape_batch(batch, module.algorithm.actor, 10**6, GROUP)
    for key in [(GROUP, "observation"), ("next", GROUP, "observation")]:
        twin_batch[key][:, :, 1] += 0.25
    other, _, _ = twin.shaper.shape_batch(twin_batch, twin.algorithm.actor, 10**6, GROUP)
    weights = lambda m, n: torch.cat([p.detach().flatten() for p in m.shaper.shapers[n].parameters()])  # noqa: E731
    for n in (0, 2):
        assert torch.equal(other[:, :, n], base[:, :, n]) and torch.equal(weights(twin, n), weights(module, n))
    assert not torch.allclose(other[:, :, 1], base[:, :, 1])
    assert not torch.equal(weights(twin, 1), weights(module, 1))


def test_mappo_with_reward_agents_resumes_exactly(tmp_path):
    extra = ["shaper.name=dress", "shaper.per_agent=per_provider"]
    _fit(tmp_path / "part", 1, extra)
    full = _fit(tmp_path / "full", 2, extra)
    resumed = _fit(tmp_path / "part", 2, extra, resume=str(tmp_path / "part" / "checkpoints" / "last.ckpt"))
    assert torch.equal(_policy_weights(resumed), _policy_weights(full))
    assert torch.equal(_shaper_weights(resumed), _shaper_weights(full))


def test_shaping_is_refused_where_it_has_no_meaning():
    with pytest.raises(ConfigError, match="shaper.name"):
        _build("quick/ppo_parallel", ["shaper.name=dress"])
    with pytest.raises(ConfigError, match="shaper.per_agent"):
        load_recipe("quick/mappo", ["shaper.name=dress", "shaper.per_agent=each"])
    with pytest.raises(ValueError, match="per_provider"):
        PerAgentShaping(lambda seed: None, 3, [3, 3], "each", 0, 1, 8)


def _build(recipe, extra):
    from dcsched.training.harness import Agent

    return Agent(to_container(load_recipe(recipe, TINY[:9] + list(extra))))
