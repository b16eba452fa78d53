"""What ``trainer.compile=true`` buys: one gradient update (loss forward, backward, optimiser step)
with the eager loss and with the torch.compile'd loss, measured in one run on the same data.

    dcsched bench compile  [--recipes ppo_parallel mappo sac] [--updates 20] [--mode default] [key=value ...]

``key=value`` overrides apply to every recipe (e.g. ``env.device=cuda trainer.accelerator=gpu``).

For each recipe (its full networks and batch sizes): collects data with the untrained policy
(whole days for the PPO family, then GAE), compiles (the first calls, timed apart), then times
``--updates`` updates of each kind on the same minibatches. Prints ms per update and the
eager / compiled ratio (> 1: compiling pays). A ratio, not an absolute time, is the result on a
shared machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from dcsched.agents.compilation import compiled_loss
from dcsched.training.harness import Agent
from dcsched.config import load_recipe, to_container


def minibatches(module, updates: int) -> list:
    """``updates`` minibatches of the recipe's size from data the untrained policy collected."""
    a = module.cfg.agent
    with torch.no_grad():
        if module.uses_replay:  # off-policy: a short rollout, sampled like the replay buffer
            data = module.env.rollout(64, module.exploration_module(), break_when_any_done=False).reshape(-1)
            data = data.exclude("outcome", ("next", "outcome"))
            return [data[torch.randint(0, data.shape[0], (module.cfg.replay_buffer.batch_size,))] for _ in range(updates)]
        data = module.env.rollout(module.env.T if hasattr(module.env, "T") else module.env.central.T,
                                  module.exploration_module(), break_when_any_done=False)
        module.algorithm.advantage(data)
        flat = data.select(*module.algorithm.minibatch_keys()).reshape(-1)
        mb = min(a.minibatch_size, flat.shape[0])
        return [flat[torch.randint(0, flat.shape[0], (mb,))] for _ in range(updates)]


def time_updates(module, loss_fn, batches: list) -> float:
    """Seconds per update: loss, backward of the sum of its loss terms, one Adam step."""
    opt = torch.optim.Adam(module.algorithm.loss.parameters(), lr=1e-4)
    start = time.perf_counter()
    for td in batches:
        out = loss_fn(td.clone())
        opt.zero_grad()
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        opt.step()
    return (time.perf_counter() - start) / len(batches)


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["ppo_parallel", "mappo", "sac"])
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--mode", default="default", help="torch.compile mode (trainer.compile_mode)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="recipe overrides key=value, for every recipe")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, compile mode {args.mode}")
    for recipe in args.recipes:
        cfg = load_recipe(recipe, ["logger.wandb_mode=disabled", "logger.csv=false", *args.overrides])
        module = Agent(to_container(cfg))
        batches = minibatches(module, args.updates + 6)
        loss = module.algorithm.loss
        compiled = compiled_loss(loss, True, args.mode)
        start = time.perf_counter()
        time_updates(module, compiled, batches[:6])  # compiles (and recompiles while guards settle)
        warmup_s = time.perf_counter() - start
        time_updates(module, loss, batches[:6])  # eager warm-up
        eager_s = time_updates(module, loss, batches[6:])
        compiled_s = time_updates(module, compiled, batches[6:])
        rows = batches[0].shape[0]
        print(f"{recipe:14s} minibatch {rows:5d} rows: eager {1e3 * eager_s:8.1f} ms/update, compiled "
              f"{1e3 * compiled_s:8.1f} ms/update, ratio eager/compiled {eager_s / compiled_s:5.2f}x "
              f"(compilation {warmup_s:5.1f} s)")


if __name__ == "__main__":
    main()
