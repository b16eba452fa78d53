"""Evaluate a checkpoint trained on a Gymnasium task (``task: gym:...``): its deterministic (mean)
action for a number of whole episodes on evaluation seeds of their own.

The evaluation envs are seeded with ``EVAL_SEED_OFFSET + seed``, so they never replay the training
envs' episodes (those are seeded ``seed + w``). Returns and writes ``summary.json``: the mean
return with a 95 % t interval over the episodes, the success rate (episodes that terminated at the
goal rather than at the time limit, :func:`dcsched.envs.gym_task.success`) and the mean length.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dcsched.io import atomic_write_json
from dcsched.stats import t_ci

EVAL_SEED_OFFSET = 1_000_003  # evaluation envs' seeds: far from any training env's seed + w


@torch.no_grad()
def evaluate_task_checkpoint(ckpt: str | Path, episodes: int, seed: int, out_dir: str | Path | None = None) -> dict:
    """Mean return, its 95 % t interval, success rate and length over ``episodes`` episodes of the
    checkpoint's own task (its deterministic action). Writes ``out_dir/summary.json`` when given."""
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    from dcsched.agents.checkpoint_format import algorithm_class, load_checkpoint, migrate_state_dict, typed_config
    from dcsched.envs.gym_task import make_task_env, max_episode_steps, success

    ckpt = Path(ckpt)
    saved = load_checkpoint(ckpt, "cpu", "checkpoint")
    cfg = typed_config(saved["hyper_parameters"]["cfg"])
    episodes = int(episodes)
    env = make_task_env(cfg.task, episodes, EVAL_SEED_OFFSET + int(seed))
    prefix = "algorithm.actor."
    weights = {k[len(prefix):]: v for k, v in migrate_state_dict(saved["state_dict"]).items() if k.startswith(prefix)}
    with torch.random.fork_rng(devices=[]):
        actor = algorithm_class(cfg.agent.name).actor_for_evaluation(cfg, env)
    actor.load_state_dict(weights)
    actor.eval()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        roll = env.rollout(max_episode_steps(cfg.task), policy=actor, break_when_any_done=False)  # [episodes, steps]
    nxt = roll["next"]
    done = nxt["done"].squeeze(-1)
    first_done = torch.where(done.any(-1), done.float().argmax(-1), torch.full((episodes,), done.shape[-1] - 1))
    steps = torch.arange(done.shape[-1]).expand_as(done)
    within = steps <= first_done.unsqueeze(-1)  # the first episode of each env (later ones are auto-reset repeats)
    total = (nxt["reward"].squeeze(-1).to(torch.float64) * within).sum(-1)
    length = first_done + 1
    ended = done.gather(-1, first_done.unsqueeze(-1)).squeeze(-1)
    reached = ended & success(nxt["terminated"].squeeze(-1), nxt["truncated"].squeeze(-1)).gather(
        -1, first_done.unsqueeze(-1)).squeeze(-1)
    env.close()
    mean = float(total.mean())
    lo, hi = t_ci(total.tolist()) if episodes > 1 else (mean, mean)
    summary = {"checkpoint": str(ckpt), "task": cfg.task, "episodes": episodes, "eval_seed": EVAL_SEED_OFFSET + int(seed),
               "return_mean": mean, "return_ci95": [lo, hi], "success_rate": float(reached.double().mean()),
               "length_mean": float(length.double().mean()), "returns": total.tolist()}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "summary.json", summary)
    return summary
