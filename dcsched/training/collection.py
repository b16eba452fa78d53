"""TorchRL collectors for the agents: in the learner's process, or over worker processes / Ray actors.

The learner (a LightningModule) stays in the main process; only environment stepping and action
sampling move to the workers. Worker w builds its own batched env of ``env.num_envs / num_workers``
envs seeded with ``seed + w``; batches come back concatenated along the env dimension
([num_envs, steps], worker-major), the same layout as the in-process collector.
"""

from __future__ import annotations

from functools import partial

from torchrl.collectors import Collector

from dcsched.config import to_container
from dcsched.errors import ConfigError


def build_worker_env(scenario: dict, env: dict, seed: int, num_envs: int):
    """Env factory run inside a worker (plain dicts: picklable, no OmegaConf objects cross processes)."""
    from omegaconf import OmegaConf

    from dcsched.agents.episode_stats import with_episode_stats
    from dcsched.envs.dc_env import make_env

    return with_episode_stats(make_env(OmegaConf.create(scenario), OmegaConf.create(env), num_envs=num_envs, seed=seed,
                                       report_outcome=True))


def worker_env_fns(cfg) -> list:
    """One picklable env constructor per worker."""
    workers = int(cfg.collector.num_workers)
    if workers < 1 or cfg.env.num_envs % workers:
        raise ConfigError("recipe", "collector.num_workers",
                          f"must be >= 1 and divide env.num_envs={cfg.env.num_envs}, got {workers}")
    scenario, env = to_container(cfg.scenario), to_container(cfg.env)
    per_worker = cfg.env.num_envs // workers
    return [partial(build_worker_env, scenario, env, int(cfg.seed) + w, per_worker) for w in range(workers)]


def make_collector(cfg, env, policy, init_random_frames: int | None):
    """The collector selected by ``cfg.collector`` (see CollectorConfig)."""
    common = dict(frames_per_batch=cfg.trainer.frames_per_batch, total_frames=-1,
                  init_random_frames=init_random_frames)
    backend = cfg.collector.backend
    if backend == "inprocess":
        if cfg.collector.num_workers != 1:
            raise ConfigError("recipe", "collector.num_workers", "the inprocess backend has exactly one worker",
                              "1 (or collector.backend=process|ray)")
        return Collector(env, policy, auto_register_policy_transforms=False, **common)
    fns = worker_env_fns(cfg)
    if backend == "process":
        return Collector(fns, policy, backend="process", sync=True, cat_results=0, **common)
    from dcsched.ray_runtime import init_ray

    import ray

    if not ray.is_initialized():
        init_ray(cfg.collector.ray_address)
    common["total_frames"] = 2**62  # RayCollector treats -1 as "no frames"; training stops at its own budget
    return Collector(fns, policy, backend="ray", sync=True, postproc=merge_workers,
                     backend_options={"remote_configs": {"num_cpus": 1}}, **common)


def merge_workers(batch):
    """RayCollector stacks worker batches [workers, envs, steps]: merge to [workers * envs, steps]."""
    return batch.reshape(-1, batch.shape[-1]) if batch.ndim == 3 else batch
