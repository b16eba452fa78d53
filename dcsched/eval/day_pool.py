"""Play a day-separable policy's days in worker processes (the evaluation process pool).

A policy is *day-separable* when its decisions on one day do not depend on which other days are
evaluated beside it: the rules and the planners (each plans one env row, that is one day, from
that day's data; the forecasters' noise is seeded by day and slot). Their class says so with
``day_separable = True`` (:class:`dcsched.baselines.policy.Policy`); ``random`` (one generator
over the whole batch) and checkpoints (a batched network) are not, and are evaluated in one batch.
Deterministic arrivals only: a stochastic env draws every day's arrivals from one generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path


CHUNK_DAYS_MAX = 4  # days per chunk at most: what an interruption can cost, in days of planning


def is_day_separable(policy: str) -> bool:
    """Whether ``policy`` (a registered name with options, or a checkpoint path) plays each day
    independently of the others in the batch."""
    if Path(policy).suffix == ".ckpt":
        return False
    from dcsched.registry import POLICIES

    return bool(getattr(POLICIES.get(policy.partition(":")[0]), "day_separable", False))


def day_chunks(dates: list[str], workers: int = 1, chunk_days: int = 0) -> list[list[str]]:
    """``dates`` cut into consecutive chunks of ``chunk_days`` (0: as many days as keeps
    ``workers`` processes busy, at most :data:`CHUNK_DAYS_MAX`)."""
    if workers < 1 or chunk_days < 0:
        raise ValueError(f"workers must be >= 1 and chunk_days >= 0, got {workers} and {chunk_days}")
    size = chunk_days or max(1, min(CHUNK_DAYS_MAX, math.ceil(len(dates) / workers)))
    return [dates[i : i + size] for i in range(0, len(dates), size)]


def outcomes_in_processes(scenario_cfg, env_cfg, policy: str, dates: list[str], seed: int, workers: int,
                          progress: Callable[[float], None] | None = None) -> dict:
    """:func:`dcsched.eval.rollout.run_days`' outcome arrays ([D, T, ...], days in the order of
    ``dates``) of a day-separable ``policy``, its chunks of days played in ``workers`` processes
    (deterministic arrivals): the arrays of one batched rollout. ``progress(share)`` with the share
    of the days each finished chunk held."""
    import numpy as np

    chunks = day_chunks(dates, workers)
    outs: dict[int, dict] = {}

    def finished(index: int, out: dict) -> None:
        outs[index] = out
        if progress is not None:
            progress(len(chunks[index]) / len(dates))

    in_processes(_outcome_in_worker, scenario_cfg, (env_cfg, policy, seed), chunks, workers, finished)
    return {key: np.concatenate([outs[i][key] for i in range(len(chunks))], axis=0) for key in outs[0]}


def _outcome_in_worker(scenario: dict, env_cfg, policy: str, seed: int, dates: list[str]) -> dict:
    """One chunk's rollout arrays in a worker process."""
    from dcsched.eval.policies import make_policy
    from dcsched.data.exogenous import parse_days
    from dcsched.envs.dc_env import make_env
    from dcsched.eval.rollout import run_days

    cfg = worker_scenario(scenario)
    env = make_env(cfg, env_cfg, days=parse_days(cfg, ",".join(dates)), sequential_days=True, stochastic=False,
                   seed=seed)
    agent = make_policy(policy, env, seed=seed)
    env.rng.manual_seed(int(seed))  # as evaluate_policies does (unused by deterministic arrivals)
    return run_days(env, agent)


def worker_scenario(scenario: dict):
    """The scenario config back from its plain dict (what crosses the process boundary), and one
    torch thread for this worker."""
    import torch
    from omegaconf import OmegaConf

    from dcsched.config import ScenarioConfig

    torch.set_num_threads(1)
    return OmegaConf.merge(OmegaConf.structured(ScenarioConfig), scenario)


def in_processes(work, scenario_cfg, args: tuple, chunks: list[list[str]], workers: int, finished) -> None:
    """``work(scenario as a plain dict, *args, chunk)`` for each chunk in ``workers`` spawned
    processes; ``finished(chunk index, value)`` in this process, in completion order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from omegaconf import OmegaConf

    scenario = OmegaConf.to_container(scenario_cfg, resolve=True)
    # spawn: a fresh interpreter per worker (no forked torch or HiGHS state)
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(work, scenario, *args, chunk): i for i, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            finished(futures[future], future.result())
