"""A user's own algorithm, registered from a plugin file, trains, resumes exactly and evaluates
through the same harness as the built-in ones (examples/custom_algorithm/a2c.py)."""

from pathlib import Path

import pytest
import torch

from dcsched.training.harness import Agent
from dcsched.training.train import build_trainer
from dcsched.config import load_recipe, to_container
from dcsched.errors import ConfigError
from dcsched.registry import AGENTS, PLUGINS_ENV, load_plugins
from dcsched.agents.checkpoint_format import safe_globals

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "custom_algorithm" / "a2c.py")
TINY = ["agent.name=a2c", "env.action_encoding=continuous", "env.num_envs=8", "network.hidden_sizes=[16,16]",
        "agent.minibatch_size=64", "agent.ppo_epochs=1", "trainer.frames_per_batch=128",
        "trainer.checkpoint_every_batches=2", "trainer.progress=false", "logger.wandb_mode=disabled",
        "logger.csv=false", "seed=1"]


@pytest.fixture
def a2c(monkeypatch):
    """Registers the example through DCSCHED_PLUGINS (a .py file) for one test, then unregisters it."""
    import sys

    assert "a2c" not in AGENTS  # (this loads the built-in components first)
    monkeypatch.setenv(PLUGINS_ENV, EXAMPLE)
    assert load_plugins() == [EXAMPLE]
    yield AGENTS.get("a2c")
    AGENTS._entries.pop("a2c", None)
    sys.modules.pop("dcsched_plugin_a2c", None)


def _fit(tmp_path, batches, resume=None):
    cfg = load_recipe("quick/ppo_parallel", TINY + [f"trainer.total_frames={128 * batches}", f"out_dir={tmp_path}"])
    module = Agent(to_container(cfg))
    with safe_globals():  # dcsched's one checkpoint allow-list, as `dcsched train` resumes
        build_trainer(cfg, tmp_path, []).fit(module, ckpt_path=resume, weights_only=True)
    return module


def _weights(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.algorithm.parameters()])


def test_a_plugin_algorithm_trains_resumes_exactly_and_evaluates(a2c, tmp_path):
    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.envs import make_env

    full = _fit(tmp_path / "full", 4)
    assert type(full.algorithm) is a2c and int(full.updates) == 4 * 2  # 128 rows / 64 per minibatch, 1 epoch
    first = _fit(tmp_path / "part", 2)
    assert not torch.equal(_weights(first), _weights(full))
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed = _fit(tmp_path / "part", 4, resume=str(ckpt))
    assert int(resumed.frames) == int(full.frames) and torch.equal(_weights(resumed), _weights(full))

    cfg = load_recipe("quick/ppo_parallel", TINY)
    env = make_env(cfg.scenario, cfg.env, num_envs=3, seed=7)
    td = env.reset()
    policy = load_checkpoint_policy(tmp_path / "full" / "checkpoints" / "last.ckpt", env)
    assert torch.equal(policy.act(td), full.act(td))


def test_the_harness_refuses_what_the_plugin_does_not_declare(a2c):
    for extra, key in ((["env.action_encoding=discrete"], "env.action_encoding"), (["shaper.name=dress"], "shaper.name")):
        cfg = load_recipe("quick/ppo_parallel", TINY + extra)
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            Agent(to_container(cfg))


def test_a_plugin_that_cannot_be_imported_is_named(tmp_path):
    with pytest.raises(ConfigError, match=f"{PLUGINS_ENV}.*no_such_module"):
        load_plugins("no_such_module")
    with pytest.raises(ConfigError, match=r"missing\.py"):
        load_plugins(str(tmp_path / "missing.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="boom"):
        load_plugins(str(broken))


def test_a_plugin_declares_its_own_agent_keys(a2c):
    """A2C's own key (critic_coef) loads for a2c, is documented by `dcsched list --keys`, reaches its
    loss, and is refused for an algorithm that does not declare it."""
    from dcsched.config import describe_keys

    cfg = load_recipe("quick/ppo_parallel", TINY + ["agent.critic_coef=0.25"])
    assert cfg.agent.critic_coef == 0.25
    rows = {key: (value, meaning) for key, value, _, meaning in describe_keys(cfg)}
    assert rows["agent.critic_coef"] == (0.25, "weight of the critic's loss beside the policy objective")
    assert rows["agent.ppo_epochs"][1] == "passes over each collected batch"  # inherited keys keep their meaning
    assert Agent(to_container(cfg)).algorithm.loss.critic_coeff == 0.25
    with pytest.raises(ConfigError) as err:
        load_recipe("quick/ppo_parallel", ["agent.critic_coef=0.25"])
    assert err.value.key == "agent.critic_coef" and "critic_coef" not in err.value.allowed
