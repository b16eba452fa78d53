"""The LP bound of one day with and without deferrable batch work (MODEL.md section 11: one
paper3 day must still solve in under 30 s), measured in one run.

    python benchmarks/lp_batch_day.py [--scenario paper3] [--day 124] [--out FILE.json]

Solves the same day's LP bound (HiGHS, as `dcsched solve` does: dual simplex without batch work,
interior point with it) for the scenario as it is and with ``batch.share=0.3`` at the 2 h and
12 h deadlines, and prints sizes, build and solve seconds and the ratio of the solve times to the
scenario without batch work. The output file records the machine's load average: other work on
the machine slows the solves.
"""

from __future__ import annotations

import argparse
import platform


def solve(scenario: str, day: int, overrides: list[str]) -> dict:
    from dcsched.baselines.lp_solve import solve_window, window_from_exo
    from dcsched.config import load_scenario
    from dcsched.data.exogenous import load_exogenous
    from dcsched.sim.params import build_params

    cfg = load_scenario(scenario, overrides + ["arrivals.stochastic=false"])
    p = build_params(cfg)
    exo = load_exogenous(cfg, [day])
    res = solve_window(p, window_from_exo(p, exo, 0), f"{scenario} day {day}")
    return {"overrides": overrides, "value_usd": res.value_usd, "variables": res.num_variables,
            "constraints": res.num_constraints, "build_s": res.build_s, "solve_s": res.solve_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="paper3")
    ap.add_argument("--day", type=int, default=124, help="0-based day of the year (124: 5 May 2023, a test day)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    cases = [[], ["batch.share=0.3", "batch.deadline_slots=24", "batch.horizon_slots=48"],
             ["batch.share=0.3", "batch.deadline_slots=144", "batch.horizon_slots=288"]]
    rows = [solve(args.scenario, args.day, ov) for ov in cases]
    base = rows[0]["solve_s"]
    for r in rows:
        r["solve_ratio_to_no_batch"] = r["solve_s"] / base
        print(f"{' '.join(r['overrides']) or 'no batch work':60s} {r['variables']:8d} vars {r['constraints']:7d} rows "
              f"build {r['build_s']:6.2f} s  solve {r['solve_s']:7.2f} s  x{r['solve_ratio_to_no_batch']:.1f}  "
              f"value {r['value_usd']:.2f} $")
    if args.out:
        from pathlib import Path

        from dcsched.io import atomic_write_json

        import os

        report = {"scenario": args.scenario, "day": args.day, "machine": platform.machine(), "cpus": os.cpu_count(),
                  "load_average_1m_at_end": os.getloadavg()[0],  # other work on the machine slows every case alike
                  "cases": rows}
        atomic_write_json(Path(args.out), report)


if __name__ == "__main__":
    main()
