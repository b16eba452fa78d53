"""What ``--workers`` / ``eval_workers`` buys: a planner's (or rule's) evaluation on the same days
in one process and in ``--workers`` processes, measured in one run, with the outcomes checked equal.

    dcsched bench eval  [--policy greedy_myopic] [--scenario paper3] [--days 8] [--workers 2]

Prints the wall time of each and the speed-up (one process / N processes). The planners solve one
LP per env row and slot, so the work splits across days; the speed-up is bounded by the cores
that are free, the processes' start (about 5-10 s each: a fresh interpreter imports torch) and
the last chunk. A ratio measured in one run, not an absolute time, is the result on a shared machine.
"""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="greedy_myopic", help="a day-separable policy, with options")
    ap.add_argument("--scenario", default="paper3")
    ap.add_argument("--days", type=int, default=8, help="the first N test days")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    from dcsched.config import load_scenario
    from dcsched.eval.day_pool import is_day_separable
    from dcsched.eval.evaluate import evaluate_policies

    if not is_day_separable(args.policy):
        ap.error(f"--policy {args.policy} is not day-separable: it always plays one batch")
    if args.workers < 2:
        ap.error("--workers must be >= 2 (the comparison is against one process)")
    torch.set_num_threads(1)  # each worker runs one torch thread: compare like with like
    cfg = load_scenario(args.scenario)
    walls, results = {}, {}
    for workers in (1, args.workers):
        start = time.perf_counter()
        results[workers] = evaluate_policies(cfg, [args.policy], "test", None, max_days=args.days, plots=False,
                                             workers=workers)
        walls[workers] = time.perf_counter() - start
    same = [next(iter(r.values()))["per_day"] for r in results.values()]
    if same[0] != same[1]:
        raise SystemExit("the outcomes differ between 1 and N processes: a bug (tests/test_chunked_eval.py)")
    utility = next(iter(results[1].values()))["mean"]["utility_usd"]
    print(f"{args.policy} on the first {args.days} test days of {args.scenario}: {utility:,.2f} $/day either way")
    print(f"| processes | wall s |\n|---|---|\n| 1 | {walls[1]:.1f} |\n| {args.workers} | {walls[args.workers]:.1f} |")
    print(f"speed-up with {args.workers} processes: {walls[1] / walls[args.workers]:.2f}x")
    return 0


if __name__ == "__main__":
    main()
