"""One training device: the env, networks, replay buffer and shaper share it, and a stray tensor
fails loudly. On CPU machines the mixing is provoked with the ``meta`` device; the CUDA tests run
where a GPU is visible (``dcsched bench gpu`` runs them too)."""

import pytest
import torch

from dcsched.training.harness import Agent
from dcsched.training.placement import DevicePlacementError, check_placement, misplaced_tensors, resolve_device
from dcsched.training.train import build_trainer
from dcsched.config import load_recipe, to_container
from dcsched.errors import ConfigError

from test_agents import TINY


def agent(recipe="recipes/dress_sac.yaml", extra=()):
    cfg = load_recipe(recipe, TINY + ["trainer.total_frames=256", *extra])
    return cfg, Agent(to_container(cfg))


def test_env_is_not_a_child_module():
    """Lightning moves child modules to its device: the env must not be one (it keeps its own)."""
    _, module = agent()
    assert "env" not in dict(module.named_children())
    assert not any(k.startswith("env.") for k in module.state_dict())


def test_every_part_is_on_the_training_device():
    _, module = agent()
    parts = module.placed()
    assert {"agent", "shaper.gen", "env.params", "env.rng"} <= set(parts)
    assert misplaced_tensors(parts, torch.device("cpu")) == []
    # the same parts all count as misplaced for another device: the check looks at every one
    wrong = misplaced_tensors(parts, torch.device("meta"))
    assert any(w.startswith("agent.algorithm.shaper.") for w in wrong)
    assert "shaper.gen (random generator) on cpu" in wrong
    assert any(w.startswith("env.params.") for w in wrong)


def test_a_stray_tensor_fails_loudly_at_training_start():
    _, module = agent()
    module.shaper.q1.to("meta")  # a placement bug: one network left on another device
    with pytest.raises(DevicePlacementError, match=r"shaper\.q1\.0\.weight on meta"):
        module.on_train_start()


def test_replay_buffer_storage_is_checked(tmp_path):
    cfg, module = agent(extra=[f"out_dir={tmp_path}", "trainer.total_frames=128"])
    build_trainer(cfg, tmp_path, []).fit(module)
    assert len(module.rb) > 0 and "replay_buffer" in module.placed()
    check_placement(module.placed(), torch.device("cpu"), "test")
    with pytest.raises(DevicePlacementError, match=r"replay_buffer\.observation on cpu"):
        check_placement({"replay_buffer": module.placed()["replay_buffer"]}, torch.device("meta"), "test")


def test_device_and_accelerator_must_agree():
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu"):
        resolve_device("cpu", "gpu")
    with pytest.raises(ConfigError, match="allowed: cpu, gpu, auto"):
        resolve_device("cpu", "tpu")
    with pytest.raises(ConfigError, match="env.device"):
        resolve_device("npu", "auto")
    assert resolve_device("cpu", "auto") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA device"):
            resolve_device("cuda", "gpu")


def test_recipe_rejects_unknown_accelerator():
    with pytest.raises(ConfigError, match="trainer.accelerator"):
        load_recipe("recipes/sac.yaml", ["trainer.accelerator=tpu"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_keeps_one_device_and_eta_zero_equals_sac(tmp_path):
    over = ["env.device=cuda", "trainer.accelerator=gpu", "seed=3", "trainer.total_frames=512"]
    runs = {}
    for name, recipe, extra in (("sac", "recipes/sac.yaml", []), ("dress", "recipes/dress_sac.yaml", ["shaper.eta=0"])):
        cfg = load_recipe(recipe, TINY + over + extra + [f"out_dir={tmp_path / name}"])
        module = Agent(to_container(cfg))
        build_trainer(cfg, tmp_path / name, []).fit(module)  # on_train_start checks the placement
        # (Lightning moves the module back to the CPU when fit ends; the buffer stays on the GPU)
        assert module.train_device.type == "cuda" and int(module.updates) > 0
        assert module.rb.storage._storage["observation"].device.type == "cuda"
        runs[name] = module
    for a, b in zip(runs["sac"].algorithm.actor.parameters(), runs["dress"].algorithm.actor.parameters()):
        assert torch.equal(a, b), "eta = 0 must not change the policy agent on CUDA either"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_hybrid_ppo_trains_on_one_device(tmp_path):
    """The massively parallel path on CUDA: PPO over the headroom env, two whole-day batches."""
    from dcsched.training.train import train_from_config

    cfg = load_recipe("recipes/quick/hybrid.yaml", [
        "env.device=cuda", "trainer.accelerator=gpu", "env.num_envs=8", "trainer.frames_per_batch=2304",
        "trainer.total_frames=4608", "agent.minibatch_size=512", "eval.policies=null", "logger.wandb_mode=disabled",
        "trainer.progress=false", f"out_dir={tmp_path}"])
    module, _ = train_from_config(cfg)  # on_train_start checks the placement
    assert module.train_device.type == "cuda" and int(module.frames) == 4608 and int(module.updates) > 0
    assert all(p.isfinite().all() for p in module.algorithm.actor.parameters())
