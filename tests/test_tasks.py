"""Gymnasium tasks as training envs (``task: gym:ENV_ID``, issue #41 item 1): the single-agent recipes
train, checkpoint, resume and evaluate on them with the same shaper registry; what a task cannot do
is refused by key; the sparse-goal variant pays exactly at the goal."""

import json

import numpy as np

import pytest
import torch

from dcsched.config import load_recipe
from dcsched.errors import ConfigError
from dcsched.paths import RECIPES_DIR

TINY = ["trainer.total_frames=800", "trainer.frames_per_batch=200", "trainer.checkpoint_every_batches=2",
        "agent.warmup_frames=200", "trainer.progress=false", "logger.wandb_mode=disabled", "env.num_envs=2",
        "eval.episodes=2", "replay_buffer.batch_size=64", "shaper.rs_learning_starts=200", "network.hidden_sizes=[32,32]"]


def _recipe(name, tmp_path, task="gym:Pendulum-v1", extra=()):
    return load_recipe(RECIPES_DIR / f"{name}.yaml", [f"out_dir={tmp_path}", f"task={task}", *TINY, *extra])


@pytest.mark.parametrize("recipe", ["sac", "dress_sac", "dress_td3", "ppo"])
def test_single_agent_recipes_train_and_evaluate_on_a_gym_task(recipe, tmp_path):
    from dcsched.training.train import train_and_evaluate

    extra = ["env.reward_mode=dense"] if recipe == "ppo" else []
    module, run_dir = train_and_evaluate(_recipe(recipe, tmp_path, extra=extra))
    assert int(module.frames) == 800 and int(module.updates) > 0
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    metrics = (run_dir / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/episode_return" in metrics and "train/success_rate" in metrics  # Pendulum: 200-step episodes end
    assert "train/utility_usd_per_slot" not in metrics  # no DC outcome on a task
    if recipe == "dress_sac":  # the shaper registry and its diagnostics work unchanged
        for key in ("rs/r_aux_mean", "rs/loss_actor", "diag/dq_ra_dr_aux_abs_mean", "diag/corr_r_aux_advantage"):
            assert key in metrics, key
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["task"] == "gym:Pendulum-v1" and summary["episodes"] == 2
    assert len(summary["returns"]) == 2 and summary["length_mean"] == 200.0  # Pendulum's time limit
    # Pendulum's reward per step is in [-16.27, 0]: a return outside 200 x that range would be a wrong sum
    assert all(-16.3 * 200 <= r <= 0.0 for r in summary["returns"])
    assert summary["success_rate"] == 0.0  # Pendulum never terminates: every episode is cut by its time limit


def test_task_evaluation_is_deterministic_and_leaves_the_global_stream_alone(tmp_path):
    from dcsched.eval.task_eval import evaluate_task_checkpoint
    from dcsched.training.train import train_from_config

    _, run_dir = train_from_config(_recipe("sac", tmp_path))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = evaluate_task_checkpoint(ckpt, 3, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    b = evaluate_task_checkpoint(ckpt, 3, seed=0)
    c = evaluate_task_checkpoint(ckpt, 3, seed=1)
    assert a["returns"] == b["returns"] and a["returns"] != c["returns"]  # seeded episodes, deterministic actions


def test_a_task_run_resumes_from_its_checkpoint(tmp_path):
    from dcsched.training.train import train_from_config

    module, run_dir = train_from_config(_recipe("sac", tmp_path))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    module2, run_dir2 = train_from_config(_recipe("sac", tmp_path, extra=[f"resume={ckpt}", "trainer.total_frames=1200"]))
    assert run_dir2 == run_dir and int(module2.frames) == 1200 and int(module2.updates) > int(module.updates)
    assert len(module2.rb) == 1200  # the buffer came back with the checkpoint and kept growing


def test_sparse_goal_variant_pays_one_exactly_on_reaching_the_goal():
    from dcsched.envs.gym_task import _make_one

    env = _make_one("MountainCarContinuous-v0", sparse=True)
    env.set_seed(0)
    td = env.reset()
    inner = env._env.unwrapped
    rewards = []
    for _ in range(3):  # far from the flag: no reward, whatever the action costs in the dense task
        td = env.step(td.set("action", torch.ones(1)))
        rewards.append(float(td["next", "reward"]))
        td = td["next"].clone()
    assert rewards == [0.0, 0.0, 0.0]
    inner.state = np.array([0.449, 0.07])  # just below the flag at 0.45, moving right
    td = env.step(td.set("action", torch.ones(1)))
    assert bool(td["next", "terminated"]) and float(td["next", "reward"]) == 1.0


@pytest.mark.parametrize("task, needle", [
    ("gym:MountainCarContinuous-v9", "not a registered Gymnasium id"),
    ("gym:CartPole-v1", "Discrete action space"),
    ("gym:", "is not a task"),
    ("gym:sparse:", "names no Gymnasium id"),
])
def test_a_bad_task_is_refused_by_key(task, needle, tmp_path):
    from dcsched.training.train import train_from_config

    with pytest.raises(ConfigError) as err:
        train_from_config(_recipe("sac", tmp_path, task=task))
    assert err.value.key == "task" and needle in str(err.value) and "gym:ENV_ID" in str(err.value)
    assert not any(tmp_path.rglob("last.ckpt"))


@pytest.mark.parametrize("recipe, extra, key", [
    ("mappo", [], "task"),  # per-provider view
    ("ppo", ["env.action_encoding=discrete"], "env.action_encoding"),
    ("ppo", ["agent.constraint=violation"], "agent.constraint"),
    ("sac", ["collector.backend=process"], "collector.backend"),
])
def test_what_a_task_cannot_do_is_refused_by_key(recipe, extra, key, tmp_path):
    from dcsched.training.train import train_from_config

    with pytest.raises(ConfigError) as err:
        train_from_config(_recipe(recipe, tmp_path, extra=extra))
    assert err.value.key == key


def test_the_default_task_leaves_every_recorded_cell_hash_unchanged():
    from dcsched.experiments.spec import run_config_hash

    from omegaconf import OmegaConf

    cfg = load_recipe(RECIPES_DIR / "sac.yaml")
    assert cfg.task == "dc"
    with_key = run_config_hash(cfg)
    without = OmegaConf.to_container(cfg)
    del without["task"]  # the layout every record was hashed in
    assert run_config_hash(OmegaConf.create(without)) == with_key
    cfg2 = load_recipe(RECIPES_DIR / "sac.yaml", ["task=gym:Pendulum-v1"])
    assert run_config_hash(cfg2) != with_key  # a task run hashes apart from the DC run


TASK_EXPERIMENT = """
name: tiny_task_control
description: a task experiment in miniature
kind: task
scenarios: ["gym:Pendulum-v1"]
seeds: [0, 1]
overrides: [trainer.total_frames=600, trainer.frames_per_batch=200, trainer.checkpoint_every_batches=3,
            agent.warmup_frames=200, replay_buffer.batch_size=32, "network.hidden_sizes=[16,16]",
            shaper.rs_learning_starts=200, eval.episodes=2, env.num_envs=2]
methods:
  - {label: SAC, recipe: sac, overrides: [env.reward_mode=dense]}
  - {label: placebo, recipe: placebo_rs_sac, overrides: [env.reward_mode=dense, shaper.eta=0.2]}
paired:
  - [placebo, SAC]
"""


def test_a_task_experiment_trains_evaluates_and_pairs_by_seed(tmp_path):
    from dcsched.experiments import run_experiment
    from dcsched.experiments.spec import expand, load_experiment

    path = tmp_path / "tiny_task_control.yaml"
    path.write_text(TASK_EXPERIMENT)
    specs = expand(load_experiment(str(path)))
    assert [s.kind for s in specs] == ["train"] * 4  # no bound, no baselines: a task has neither
    assert all(s.overrides[0] == "task=gym:Pendulum-v1" for s in specs)
    report, outcome = run_experiment(str(path), ["wandb_mode=disabled", f"out_dir={tmp_path / 'out'}", "records_dir="])
    assert all(v == "done" or isinstance(v, dict) for v in outcome.values()), outcome
    exp_dir = report.parent
    runs = (exp_dir / "runs.csv").read_text()
    assert "task_return" in runs and "success_rate" in runs
    result = json.loads(next((exp_dir / "runs").glob("*placebo__s1/result.json")).read_text())
    assert result["summary"]["task_episode_length"] == 200.0 and len(result["per_episode"]) == 2
    assert all(-16.3 * 200 <= r <= 0 for r in result["per_episode"])
    text = report.read_text()
    assert "return (eval episodes)" in text and "placebo − SAC" in text and "LP bound" not in text


@pytest.mark.parametrize("body, key", [
    (TASK_EXPERIMENT.replace("- {label: SAC, recipe: sac", "- {label: local, policy: local_only}\n  - {label: SAC, recipe: sac"),
     "methods.0"),
    (TASK_EXPERIMENT.replace("kind: task", "kind: table"), "scenarios.0"),
    (TASK_EXPERIMENT.replace("gym:Pendulum-v1", "gym:CartPole-v1"), "task"),
])
def test_a_task_experiment_is_checked_by_key(body, key, tmp_path):
    from dcsched.experiments.spec import load_experiment

    path = tmp_path / "bad_task_experiment.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_experiment(str(path))
    assert err.value.key == key


def test_the_task_throughput_benchmark_writes_its_numbers(tmp_path):
    from dcsched.bench.train_throughput import main

    out = tmp_path / "bench.json"
    main(["--task", "gym:Pendulum-v1", "--frames", "600", "--updates", "5", "--threads", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["task"] == "gym:Pendulum-v1" and set(data["rows"]) == {"SAC", "DRESS-SAC"}
    assert all(row["training_frames_per_s"] > 0 and row["per_frame"] > 0 for row in data["rows"].values())
    # the ratio is of the two rows' times per frame, as printed
    assert abs(data["dress_over_sac_per_frame"] - data["rows"]["DRESS-SAC"]["per_frame"] / data["rows"]["SAC"]["per_frame"]) < 1e-12


def test_dcsched_evaluate_plays_a_task_checkpoint_and_refuses_a_mix(tmp_path, capsys):
    from dcsched.cli import main
    from dcsched.training.train import train_from_config

    _, run_dir = train_from_config(_recipe("sac", tmp_path))
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["evaluate", "--policy", ckpt, "--episodes", "2", "--out", str(tmp_path / "ev")]) == 0
    summary = json.loads((tmp_path / "ev" / "policy-0" / "summary.json").read_text())
    assert summary["episodes"] == 2 and summary["task"] == "gym:Pendulum-v1"
    assert main(["evaluate", "--policy", ckpt, "--policy", "local_only", "--out", str(tmp_path / "ev2")]) == 2
    assert "data-centre policy" in capsys.readouterr().err and not (tmp_path / "ev2").exists()
