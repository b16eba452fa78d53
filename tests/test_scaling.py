"""Scale-out: Ray experiment launcher and multi-process / Ray collectors.

Ray runs as a local instance bound to the loopback interface (dcsched.ray_runtime.init_ray)
with 2 CPUs, and is shut down by every test that starts it.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from tensordict.nn import TensorDictModule

from dcsched.training.collection import make_collector
from dcsched.config import load_recipe
from dcsched.envs.dc_env import make_env
from dcsched.errors import ConfigError
from dcsched.experiments import run_experiment

pytestmark = pytest.mark.ray
RAY_TEST_LIMIT_S = 600  # a hung Ray or worker process ends the test run instead of eating CI's time


@pytest.fixture(autouse=True)
def bounded_time():
    import faulthandler

    faulthandler.dump_traceback_later(RAY_TEST_LIMIT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()

SWEEP = """
name: sweep
description: 2 methods x 2 seeds of very short training
kind: table
seeds: [0, 1]
max_days: 1
with_bound: false
overrides: [trainer.total_frames=2048, agent.warmup_frames=1024, trainer.checkpoint_every_batches=1,
            "network.hidden_sizes=[32,32]", replay_buffer.batch_size=64, env.num_envs=8]
methods:
  - {label: SAC, recipe: sac}
  - {label: TD3, recipe: dress_td3, overrides: [shaper.name=none]}
"""


def _results(exp_dir):
    return {json.loads(p.read_text())["spec"]["key"]: json.loads(p.read_text()) for p in exp_dir.glob("runs/*/result.json")}


def _ray_processes() -> int:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True)
    return len(out.stdout.split())


@pytest.mark.slow  # about 90 s: in `make test-slow` and CI, not the default suite
def test_ray_sweep_equals_sequential_and_resumes(tmp_path):
    import ray

    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    common = ["wandb_mode=disabled", "reuse=false"]
    run_experiment(str(path), [*common, f"out_dir={tmp_path / 'seq'}", "threads_per_run=1"])
    ray_dir = tmp_path / "ray"
    ray_args = [*common, f"out_dir={ray_dir}", "launcher=ray", "ray_num_cpus=2", "cpus_per_run=1"]
    _, first = run_experiment(str(path), [*ray_args, "max_runs=2"])  # "interrupted" after 2 runs
    assert len(first) == 2 and not ray.is_initialized()
    mtimes = {p: p.stat().st_mtime_ns for p in (ray_dir / "sweep").glob("runs/*/result.json")}
    _, second = run_experiment(str(path), ray_args)
    assert len(second) == 2  # only the two unfinished runs were launched
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    seq, par = _results(tmp_path / "seq" / "sweep"), _results(ray_dir / "sweep")
    assert seq.keys() == par.keys() and len(seq) == 4
    for key in seq:
        assert par[key]["launcher"] == "ray" and seq[key]["launcher"] == "sequential"
        assert par[key]["pid"] != seq[key]["pid"]  # really ran in a Ray worker
        assert par[key]["summary"]["utility_usd"] == pytest.approx(seq[key]["summary"]["utility_usd"], rel=1e-9), key
        assert par[key]["train"]["frames"] == seq[key]["train"]["frames"] == 2048
    # the same layout: tables and report in both
    for name in ("report.md", "summary.csv", "runs.csv", "table_paper3.md"):
        assert (ray_dir / "sweep" / name).exists() and (tmp_path / "seq" / "sweep" / name).exists()
    assert not ray.is_initialized() and _ray_processes() == 0  # stopped cleanly


# --------------------------------------------------------------------------- collectors
def _cfg(backend: str, workers: int, num_envs: int = 8):
    return load_recipe("sac", [f"env.num_envs={num_envs}", "trainer.frames_per_batch=256", f"collector.backend={backend}",
                               f"collector.num_workers={workers}", "scenario.arrivals.stochastic=false"])


def _policy(env):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(env.obs_dim, env.action_spec.shape[-1]), torch.nn.Tanh())
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


def _collect(cfg, env, policy, n_batches: int = 3):
    collector = make_collector(cfg, env, policy, None)
    out = []
    try:
        for i, batch in enumerate(collector):
            out.append(batch.exclude("collector").clone())
            if i + 1 == n_batches:
                break
    finally:
        if cfg.collector.backend != "inprocess":
            collector.shutdown()
    return out


def _same(a, b) -> bool:
    keys = ["observation", "action", ("next", "reward"), ("next", "observation"), ("next", "done")]
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in keys) and len(a) == len(b)


def _shard_reference(cfg, workers: int, n_batches: int = 3):
    """In-process collection of each worker's env shard (seed + w, num_envs / workers), concatenated."""
    per = cfg.env.num_envs // workers
    shards = []
    for w in range(workers):
        env = make_env(cfg.scenario, cfg.env, num_envs=per, seed=cfg.seed + w, report_outcome=True)
        one = load_recipe("sac", [f"env.num_envs={per}", f"trainer.frames_per_batch={256 // workers}",
                                  "scenario.arrivals.stochastic=false"])
        shards.append(_collect(one, env, _policy(env), n_batches))
    return [torch.cat([s[i] for s in shards], 0) for i in range(n_batches)]


@pytest.mark.slow  # about 35 s (three spawned interpreters): in `make test-slow` and CI (15-minute line)
def test_process_collector_gives_the_in_process_frames():
    cfg = _cfg("inprocess", 1)
    env = make_env(cfg.scenario, cfg.env, seed=cfg.seed, report_outcome=True)
    reference = _collect(cfg, env, _policy(env))
    cfg1 = _cfg("process", 1)
    assert _same(reference, _collect(cfg1, env, _policy(env)))  # one worker: identical to in-process
    cfg2 = _cfg("process", 2)
    two = _collect(cfg2, env, _policy(env))
    assert two[0].shape == reference[0].shape == torch.Size([8, 32])
    assert _same(_shard_reference(cfg2, 2), two)  # two workers: exactly their two env shards


@pytest.mark.slow  # about 27 s: in `make test-slow` and CI, not the default suite (15-minute line)
def test_ray_collector_gives_the_process_collector_frames():
    import ray

    cfg = _cfg("process", 2)
    env = make_env(cfg.scenario, cfg.env, seed=cfg.seed, report_outcome=True)
    by_process = _collect(cfg, env, _policy(env))
    try:
        by_ray = _collect(_cfg("ray", 2), env, _policy(env))
    finally:
        ray.shutdown()
    assert by_ray[0].shape == torch.Size([8, 32])
    assert _same(by_process, by_ray)


@pytest.mark.slow  # a Ray instance: about 10 s; CI runs it
def test_a_local_ray_instance_runs_its_tasks_at_the_commands_priority(monkeypatch):
    """Ray's default worker niceness (15) let any normal-priority process starve an experiment's cells."""
    import os

    import ray

    from dcsched.ray_runtime import init_ray

    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    init_ray(num_cpus=1)
    try:
        niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())
    finally:
        ray.shutdown()
    assert niceness == os.nice(0)


def test_workers_receive_updated_weights():
    cfg = _cfg("process", 2)
    env = make_env(cfg.scenario, cfg.env, seed=cfg.seed, report_outcome=True)
    policy = _policy(env)
    collector = make_collector(cfg, env, policy, None)
    try:
        it = iter(collector)
        next(it)
        with torch.no_grad():
            policy.module[0].weight.zero_()
            policy.module[0].bias.fill_(0.5)
        collector.update_policy_weights_(policy)
        batch = next(it)
    finally:
        collector.shutdown()
    assert torch.allclose(batch["action"], torch.full_like(batch["action"], torch.tanh(torch.tensor(0.5)).item()))


def test_workers_must_divide_the_envs():
    cfg = _cfg("process", 3)
    env = make_env(cfg.scenario, cfg.env, seed=cfg.seed, report_outcome=True)
    with pytest.raises(ConfigError, match="divide env.num_envs=8") as err:
        make_collector(cfg, env, _policy(env), None)
    assert err.value.key == "collector.num_workers"
    with pytest.raises(ConfigError):
        make_collector(_cfg("inprocess", 2), env, _policy(env), None)
    with pytest.raises(ConfigError, match="collector.backend"):
        load_recipe("sac", ["collector.backend=mpi"])
