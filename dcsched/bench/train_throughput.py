"""Training throughput of SAC vs DRESS-SAC on paper3 (or a Gymnasium task), measured in one run.

    dcsched bench train  [--updates 200] [--frames 8192] [--task gym:MountainCarContinuous-v0] [--out FILE.json]

With ``--task`` both run recipes/tasks/mountaincar_sac.yaml on that task (DRESS-SAC with
``shaper.name=dress shaper.eta=0.2``: ReLara's settings, one env, one update per frame), which
is what the positive_control experiment costs per frame. ``--out`` also writes the numbers as JSON.

Prints environment frames per second (collection), gradient updates per second of the policy
agent alone and with the reward agent (its own SAC step and the shaped target), and
the wall time per environment frame of a full training loop at the recipe's update-to-data ratio
for both, with their ratio (target: DRESS-SAC at most 1.6x SAC; the paper reports 2.4x).
"""

from __future__ import annotations

import argparse
import time

import torch

from dcsched.agents.algorithm import UpdateContext
from dcsched.training.harness import Agent
from dcsched.config import DC_TASK, load_recipe, to_container


def build(recipe: str, overrides: list[str]) -> Agent:
    cfg = load_recipe(recipe, ["logger.wandb_mode=disabled", "logger.csv=false", *overrides])
    return Agent(to_container(cfg))


def time_collection(module: Agent, frames: int) -> float:
    from torchrl.collectors import Collector

    collector = Collector(module.env, module.algorithm.actor, frames_per_batch=module.cfg.trainer.frames_per_batch,
                          total_frames=frames, auto_register_policy_transforms=False)
    start = time.perf_counter()
    n = 0
    for batch in collector:
        n += batch.numel()
        if module.shaper is not None:
            module.shaper.annotate(batch)
        module.rb.extend(batch.exclude("outcome", ("next", "outcome")).reshape(-1))
    return n / (time.perf_counter() - start)


def time_updates(module: Agent, updates: int) -> dict[str, float]:
    algorithm = module.algorithm
    ctx = UpdateContext(optimizers=algorithm.make_optimizers(module.cfg.optim), backward=lambda loss: loss.backward(),
                        frames=10**9, updates=0)  # outside a Trainer
    t = {"sample": 0.0, "policy": 0.0, "reward_agent": 0.0}
    if module.shaper is not None:
        module.shaper.first_update_frame.fill_(0)  # measured past the shaping start: the signal is computed
    for _ in range(updates):
        t0 = time.perf_counter()
        sample = module.rb.sample()
        t1 = time.perf_counter()
        if module.shaper is not None:  # its own step and the shaped target, past the shaping start
            module.shaper.shape(sample, algorithm.actor, 10**9)
        t2 = time.perf_counter()
        algorithm.gradient_update(sample, ctx)
        t3 = time.perf_counter()
        t["sample"] += t1 - t0
        t["reward_agent"] += t2 - t1
        t["policy"] += t3 - t2
    return {k: v / updates for k, v in t.items()}


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--frames", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--task", default="", help="a Gymnasium task (gym:ENV_ID): the positive control's recipe on it")
    ap.add_argument("--out", default="", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = {}
    if args.task:
        task = [f"task={args.task}"]
        runs = (("SAC", "recipes/tasks/mountaincar_sac.yaml", task),
                ("DRESS-SAC", "recipes/tasks/mountaincar_sac.yaml", [*task, "shaper.name=dress", "shaper.eta=0.2"]))
    else:
        runs = (("SAC", "recipes/sac.yaml", []), ("DRESS-SAC", "recipes/dress_sac.yaml", []))
    for name, recipe, overrides in runs:
        torch.manual_seed(0)
        module = build(recipe, overrides)
        fps = time_collection(module, args.frames)
        per = time_updates(module, args.updates)
        per_update = sum(per.values())
        c = module.cfg
        updates_per_frame = c.optim.utd_ratio / c.env.num_envs
        per_frame = 1.0 / fps + updates_per_frame * per_update
        rows[name] = dict(fps=fps, per=per, per_update=per_update, per_frame=per_frame,
                          training_frames_per_s=1.0 / per_frame, recipe=recipe, overrides=overrides)
        print(f"{name:10s} collection {fps:9,.0f} frames/s | {1 / per_update:7.1f} updates/s "
              f"(sample {per['sample'] * 1e3:.1f} ms, policy {per['policy'] * 1e3:.1f} ms, "
              f"reward agent step + shaped target {per['reward_agent'] * 1e3:.1f} ms) | "
              f"training wall time {per_frame * 1e6:.1f} us/frame at utd={c.optim.utd_ratio}, num_envs={c.env.num_envs}")
    ratio = rows["DRESS-SAC"]["per_frame"] / rows["SAC"]["per_frame"]
    print(f"DRESS-SAC / SAC wall time per environment frame: {ratio:.2f}x (target <= 1.6x; paper: 107/45 = 2.4x)")
    if args.out:
        from pathlib import Path

        from dcsched.io import atomic_write_json
        from dcsched.provenance import git_commit

        atomic_write_json(Path(args.out), {"benchmark": "dcsched bench train", "task": args.task or DC_TASK,
                                           "threads": args.threads, "updates": args.updates, "frames": args.frames,
                                           "code": git_commit(), "rows": rows, "dress_over_sac_per_frame": ratio})


if __name__ == "__main__":
    main()
