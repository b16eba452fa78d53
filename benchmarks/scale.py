"""Scale-out on this machine, measured in one run (issue 8).

    python benchmarks/scale.py [--envs 64] [--batches 20] [--workers 1 2 4] [--sweep-frames 8192]
                               [--skip-collection] [--skip-sweep]

1. Collection: environment frames per second of the SAC actor (stochastic, as in training) over
   ``--envs`` paper3 envs, in-process and with the process backend at 1, 2 and 4 workers (each
   worker steps envs / workers of them). The first batch (worker start-up) is not timed.
2. Sweeps: runs per hour of the same 4-run sweep (2 methods x 2 seeds of a short training, one
   test day) with the sequential launcher and with Ray (local instance, 2 CPUs, 1 per run),
   including Ray's start-up and shutdown.

Ratios are against the in-process collector and the sequential launcher of the same run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SWEEP = """
name: scale_sweep
description: benchmark sweep
kind: table
seeds: [0, 1]
max_days: 1
with_bound: false
overrides: [trainer.total_frames={frames}, agent.warmup_frames=2048, trainer.checkpoint_every_batches=4,
            "network.hidden_sizes=[64,64]", replay_buffer.batch_size=128]
methods:
  - {label: SAC, recipe: sac}
  - {label: DRESS-SAC, recipe: dress_sac, overrides: ["shaper.hidden_sizes=[64,64]", shaper.cond_hidden=64, shaper.rs_learning_starts=2048]}
"""


def collection_fps(backend: str, workers: int, envs: int, batches: int) -> float:
    from dcsched.training.collection import make_collector
    from dcsched.training.harness import Agent
    from dcsched.config import load_recipe, to_container

    steps = 32
    cfg = load_recipe("sac", ["logger.wandb_mode=disabled", "logger.csv=false", f"env.num_envs={envs}",
                              f"trainer.frames_per_batch={envs * steps}", f"collector.backend={backend}",
                              f"collector.num_workers={workers}"])
    agent = Agent(to_container(cfg))
    collector = make_collector(agent.cfg, agent.env, agent.exploration_module(), None)
    try:
        it = iter(collector)
        next(it)  # start-up
        start, frames = time.perf_counter(), 0
        for _ in range(batches):
            frames += next(it).numel()
        return frames / (time.perf_counter() - start)
    finally:
        if backend != "inprocess":
            collector.shutdown()


def sweep_runs_per_hour(launcher: str, root: Path, frames: int) -> tuple[float, dict]:
    from dcsched.experiments import run_experiment

    path = root / "scale_sweep.yaml"
    path.write_text(SWEEP.replace("{frames}", str(frames)))
    extra = ["launcher=ray", "ray_num_cpus=2", "cpus_per_run=1"] if launcher == "ray" else ["threads_per_run=1"]
    start = time.perf_counter()
    _, outcome = run_experiment(str(path), ["wandb_mode=disabled", "reuse=false", f"out_dir={root / launcher}", *extra])
    hours = (time.perf_counter() - start) / 3600
    return len(outcome) / hours, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--sweep-frames", type=int, default=8192, help="training frames of each sweep run")
    parser.add_argument("--skip-collection", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; torch threads in the learner process: default")
    if not args.skip_collection:
        base = collection_fps("inprocess", 1, args.envs, args.batches)
        print(f"collection, {args.envs} envs, SAC actor: in-process {base:,.0f} frames/s (1.00x)")
        for w in args.workers:
            fps = collection_fps("process", w, args.envs, args.batches)
            print(f"collection, {args.envs} envs, process backend, {w} worker(s): {fps:,.0f} frames/s ({fps / base:.2f}x)")
    if args.skip_sweep:
        return
    with tempfile.TemporaryDirectory() as tmp:
        seq, out_seq = sweep_runs_per_hour("sequential", Path(tmp), args.sweep_frames)
        par, out_par = sweep_runs_per_hour("ray", Path(tmp), args.sweep_frames)
    same = all(abs(out_seq[k]["summary"]["utility_usd"] - out_par[k]["summary"]["utility_usd"]) < 1e-6 for k in out_seq)
    print(f"sweep of {len(out_seq)} runs x {args.sweep_frames} frames: sequential {seq:,.1f} runs/h, Ray 2 workers {par:,.1f} runs/h "
          f"({par / seq:.2f}x); per-run results identical: {same}")


if __name__ == "__main__":
    main()
