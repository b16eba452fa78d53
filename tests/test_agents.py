"""Agents and shapers: exact eta=0 reduction, exact resume, the VP schedule, gradients, learning."""

import math

import pytest
import torch

from dcsched.training.harness import Agent
from dcsched.training.train import build_trainer
from dcsched.config import load_recipe, to_container
from dcsched.shaping.reward_agent import R_AUX_KEY, DiffusionRewardActor, RewardAgentShaper
from dcsched.shaping.vp_schedule import DiffusionSchedule, vp_betas
from dcsched.agents.checkpoint_format import load_checkpoint, safe_globals

TINY = [
    "env.num_envs=4", "network.hidden_sizes=[32,32]", "replay_buffer.batch_size=32", "agent.warmup_frames=128",
    "trainer.frames_per_batch=64", "trainer.checkpoint_every_batches=2", "trainer.progress=false",
    "logger.wandb_mode=disabled", "logger.csv=false", "shaper.latent_dim=16", "shaper.hidden_sizes=[32,32]",
    "shaper.cond_hidden=32", "shaper.rs_learning_starts=0",
]


def fit(recipe, overrides, tmp_path, epochs, resume=None):
    cfg = load_recipe(recipe, TINY + [f"trainer.total_frames={64 * 2 * epochs}", f"out_dir={tmp_path}", *overrides])
    module = Agent(to_container(cfg))
    trainer = build_trainer(cfg, tmp_path, [])
    with safe_globals():  # dcsched's one checkpoint allow-list, as `dcsched train` resumes
        trainer.fit(module, ckpt_path=resume, weights_only=True)
    return module


def params(module):
    return torch.cat([p.detach().flatten() for p in module.algorithm.loss.actor_network_params.flatten_keys().values()])


def test_eta_zero_reduces_exactly_to_sac(tmp_path):
    sac = fit("recipes/sac.yaml", ["seed=5"], tmp_path / "a", epochs=2)
    dress = fit("recipes/dress_sac.yaml", ["seed=5", "shaper.eta=0.0"], tmp_path / "b", epochs=2)
    assert int(sac.updates) > 0 and int(sac.updates) == int(dress.updates)
    assert torch.equal(params(sac), params(dress)), "eta = 0 must leave the policy agent's updates unchanged"
    q_sac = torch.cat([p.flatten() for p in sac.algorithm.loss.qvalue_network_params.flatten_keys().values()])
    q_dress = torch.cat([p.flatten() for p in dress.algorithm.loss.qvalue_network_params.flatten_keys().values()])
    assert torch.equal(q_sac, q_dress)
    # and eta > 0 does change them
    shaped = fit("recipes/dress_sac.yaml", ["seed=5", "shaper.eta=0.4"], tmp_path / "c", epochs=2)
    assert not torch.equal(params(sac), params(shaped))


def test_logged_frames_per_second_count_only_this_fits_frames(tmp_path, monkeypatch):
    """A resumed run's fps: the frames since this fit started over the time since then (the frames
    restored from the checkpoint would inflate it)."""
    from dcsched.training import harness

    module = fit("recipes/sac.yaml", ["seed=1"], tmp_path, epochs=1)
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(harness.time, "perf_counter", lambda: next(clock))
    module.frames.fill_(1000)  # as restored from a checkpoint
    monkeypatch.setattr(harness, "check_placement", lambda *args: None)
    module.on_train_start()  # t = 100 s
    module.frames += 500
    assert module.frames_per_s() == pytest.approx(50.0)  # 500 frames in 10 s, not 1,500


@pytest.mark.parametrize("recipe", ["recipes/dress_sac.yaml", "recipes/dress_td3.yaml"])
def test_resume_continues_exactly(tmp_path, recipe):
    full = fit(recipe, ["seed=2"], tmp_path / "full", epochs=4)
    fit(recipe, ["seed=2"], tmp_path / "part", epochs=2)
    ckpt = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert ckpt.exists() and not list(ckpt.parent.glob(".*.tmp"))
    resumed = fit(recipe, ["seed=2"], tmp_path / "part", epochs=4, resume=str(ckpt))
    assert int(resumed.frames) == int(full.frames) and int(resumed.updates) == int(full.updates)
    assert len(resumed.rb) == len(full.rb)
    assert torch.equal(params(resumed), params(full)), "resumed updates differ from the uninterrupted run"
    for a, b in zip(resumed.shaper.parameters(), full.shaper.parameters()):
        assert torch.equal(a, b)


def test_vp_schedule_matches_hand_computed_numbers():
    """W = 5, beta in [0.1, 10]: beta_i = 1 - exp(-0.02 - 0.198 (2i - 1)), worked out by hand, and the
    product of (1 - beta_i) over all steps is exp(-(b_min + (b_max - b_min) / 2)) = exp(-5.05)."""
    W, bmin, bmax = 5, 0.1, 10.0
    betas = vp_betas(W, bmin, bmax, torch.float64)
    hand = [0.1958745583, 0.4588181934, 0.6357810204, 0.7548781880, 0.8350313792]
    assert betas.tolist() == pytest.approx(hand, abs=1e-10)
    assert torch.prod(1 - betas).item() == pytest.approx(math.exp(-5.05), rel=1e-12)
    s = DiffusionSchedule(W, bmin, bmax)
    torch.testing.assert_close(s.alphas_cumprod, torch.cumprod(1 - betas, 0).float())
    assert (betas[1:] > betas[:-1]).all() and 0 < betas.min() and betas.max() < 1


def test_gradients_reach_every_layer_of_the_chain():
    actor = DiffusionRewardActor(cond_dim=10, latent_dim=8, num_steps=5, hidden=16, cond_hidden=16)
    gen = torch.Generator().manual_seed(0)
    mu, log_std = actor(torch.randn(32, 10), gen)
    (mu.sum() + log_std.sum()).backward()
    for name, p in actor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_reward_agent_stores_what_it_proposed_and_shapes_per_sample():
    from tensordict import TensorDict

    from dcsched.shaping.base import SHAPED_REWARD

    shaper = RewardAgentShaper(6, 3, latent_dim=8, num_steps=3, hidden=[16, 16], cond_hidden=16, eta=0.5,
                               rs_learning_starts=0, seed=1)
    batch = TensorDict({"observation": torch.randn(4, 5, 6), "action": torch.rand(4, 5, 3) * 2 - 1}, batch_size=[4, 5])
    state = shaper.gen.get_state()
    shaper.annotate(batch)
    shaper.gen.set_state(state)
    again, _ = shaper.propose(batch["observation"].reshape(-1, 6), batch["action"].reshape(-1, 3))
    torch.testing.assert_close(batch[R_AUX_KEY].reshape(-1, 1), again)
    assert (batch[R_AUX_KEY].abs() <= 1).all()
    sample = batch.reshape(-1)
    sample.set("next", TensorDict({"observation": torch.randn(20, 6), "reward": torch.zeros(20, 1),
                                   "terminated": torch.zeros(20, 1, dtype=torch.bool)}, [20]))
    shaper.shape(sample, _random_actor(3), frames=10)
    shaped = sample["next", SHAPED_REWARD]
    assert shaped.shape == (20, 1) and shaped.std() > 0, "r^A must be per sample, not one value broadcast"
    assert torch.equal(sample["next", "reward"], torch.zeros(20, 1)), "the sampled r^E must not be overwritten"


def _random_actor(act_dim):
    """A stand-in policy agent actor: a' uniform in [-1, 1] from the global RNG."""
    from tensordict.nn import TensorDictModule

    return TensorDictModule(lambda obs: torch.rand(obs.shape[0], act_dim) * 2 - 1, ["observation"], ["action"])


def test_short_training_beats_random_on_deterministic_dense_env(tmp_path):
    from dcsched.baselines.rules import RandomPolicy
    from dcsched.config import EnvConfig
    from dcsched.data.exogenous import split_days
    from dcsched.envs import make_env
    from dcsched.eval.rollout import run_days

    torch.manual_seed(0)
    cfg = load_recipe("recipes/sac.yaml", [
        "env.num_envs=16", "env.reward_mode=dense", "scenario.arrivals.stochastic=false", "seed=0",
        "network.hidden_sizes=[64,64]", "replay_buffer.batch_size=128", "agent.warmup_frames=1024", "optim.utd_ratio=0.25",
        "trainer.frames_per_batch=1024", "trainer.total_frames=12288", "trainer.checkpoint_every_batches=12",
        "trainer.progress=false", "logger.wandb_mode=disabled", "logger.csv=false", f"out_dir={tmp_path}"])
    module = Agent(to_container(cfg))
    build_trainer(cfg, tmp_path, []).fit(module)
    days = split_days(cfg.scenario, "test")[:3]
    env = make_env(cfg.scenario, EnvConfig(), days=days, sequential_days=True, stochastic=False)
    from dcsched.agents.checkpoint_policy import CheckpointPolicy

    learned = run_days(env, CheckpointPolicy(module, tmp_path / "x.ckpt").bind(env))["utility_usd"].sum()
    rand = run_days(env, RandomPolicy(seed=0).bind(env))["utility_usd"].sum()
    assert learned > rand * 1.05, (learned, rand)


def test_replay_buffer_checkpoint_holds_only_filled_rows():
    """A checkpoint stores the filled rows (not the whole pre-allocated capacity) and restores the
    same buffer: same rows, length, cursor, and the same samples for the same generator state."""
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

    from dcsched.training.torchrl_adapter import compact_state, expand_state

    def make():
        return TensorDictReplayBuffer(storage=LazyTensorStorage(10_000), batch_size=8)

    rb = make()
    rb.extend(TensorDict({"obs": torch.randn(100, 5), "next": {"reward": torch.randn(100, 1)}}, [100]))
    state = compact_state(rb.state_dict())
    leaves = [v for v in state["_storage"]["_storage"].values() if isinstance(v, torch.Tensor)]
    assert leaves and all(t.shape[0] == 100 for t in leaves)
    full = rb.state_dict()["_storage"]["_storage"]
    assert all(t.shape[0] == 10_000 for t in full.values() if isinstance(t, torch.Tensor))
    restored = make()
    restored.load_state_dict(expand_state(state))
    assert len(restored) == 100 and restored.storage._storage.batch_size == torch.Size([10_000])
    assert (restored.storage._storage[:100] == rb.storage._storage[:100]).all()
    torch.manual_seed(3)
    a = rb.sample()
    torch.manual_seed(3)
    b = restored.sample()
    assert (a["obs"] == b["obs"]).all()
    restored.extend(TensorDict({"obs": torch.ones(4, 5), "next": {"reward": torch.ones(4, 1)}}, [4]))
    assert len(restored) == 104


def test_the_torchrl_internals_the_adapter_needs_are_there(tmp_path):
    """dcsched/training/torchrl_adapter.py is the only code using TorchRL internals; this fails when a
    TorchRL upgrade moves one of them (then fix the adapter, not its callers)."""
    from tensordict import TensorDictBase

    from dcsched.training.torchrl_adapter import collector_state, storage_tensors

    module = fit("recipes/sac.yaml", [], tmp_path, epochs=1)
    tensors = storage_tensors(module.rb.storage)
    assert tensors and all(t.shape[0] == module.cfg.replay_buffer.size for t in tensors.values())
    state = module.rb.state_dict()["_storage"]
    assert {"_storage", "_len", "initialized"} <= set(state) and isinstance(state["_storage"], dict)
    module.train_dataloader()
    saved = collector_state(module.collector)
    assert isinstance(saved["carrier"], TensorDictBase) and "observation" in saved["carrier"].keys()


def test_a_checkpoint_from_before_the_config_groups_and_the_algorithm_split_loads_and_resumes(tmp_path):
    """A checkpoint in the old layout - its stored config has agent.hidden_sizes, agent.batch_size, ...
    (before replay_buffer / optim / network) and its state_dict keeps the networks at the top level
    (actor.*, loss.*, shaper.*: before the Algorithm / harness split) - evaluates with the same
    actions, resumes exactly, and a finished one loads its weights without training."""
    import copy

    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.training.train import train_from_config
    from dcsched.config import legacy_layout
    from dcsched.envs import make_env

    recipe = "recipes/dress_sac.yaml"
    fit(recipe, ["seed=3"], tmp_path / "part", epochs=1)
    new_path = tmp_path / "part" / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(new_path, "cpu")
    stored = copy.deepcopy(ckpt["hyper_parameters"]["cfg"])
    stored = stored if isinstance(stored, dict) else to_container(stored)
    ckpt["hyper_parameters"]["cfg"] = legacy_layout(stored)
    assert ckpt["hyper_parameters"]["cfg"]["agent"]["hidden_sizes"] == [32, 32]
    assert any(k.startswith("algorithm.shaper.") for k in ckpt["state_dict"])
    ckpt["state_dict"] = {k.removeprefix("algorithm."): v for k, v in ckpt["state_dict"].items()}
    assert "actor.module.0.module.0.0.weight" in ckpt["state_dict"] or any(k.startswith("actor.") for k in ckpt["state_dict"])
    old_path = tmp_path / "old.ckpt"
    torch.save(ckpt, old_path)

    cfg = load_recipe(recipe)
    env = make_env(cfg.scenario, cfg.env, num_envs=3, seed=4)
    td = env.reset()
    new_action = load_checkpoint_policy(new_path, env).act(td)
    old_action = load_checkpoint_policy(old_path, env).act(td)
    assert torch.equal(new_action, old_action)

    full = fit(recipe, ["seed=3"], tmp_path / "full", epochs=2)
    resumed = fit(recipe, ["seed=3"], tmp_path / "part", epochs=2, resume=str(old_path))
    assert int(resumed.updates) == int(full.updates) > 0
    assert torch.equal(params(resumed), params(full))
    for a, b in zip(resumed.shaper.parameters(), full.shaper.parameters(), strict=True):
        assert torch.equal(a, b)

    # a finished old-layout checkpoint: nothing is trained, every weight is the checkpoint's
    finished = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt", "cpu")
    finished["state_dict"] = {k.removeprefix("algorithm."): v for k, v in finished["state_dict"].items()}
    finished_path = tmp_path / "finished_old.ckpt"
    torch.save(finished, finished_path)
    run_cfg = load_recipe(recipe, TINY + ["seed=3", f"trainer.total_frames={64 * 2 * 2}", f"out_dir={tmp_path}",
                                          f"resume={finished_path}", "eval.policies=null"])
    loaded, _ = train_from_config(run_cfg, run_dir=tmp_path / "finished")
    assert int(loaded.frames) == int(full.frames)
    for (k, a), b in zip(loaded.state_dict().items(), full.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
