"""The capacity table of docs/scenarios.md, regenerated from the scenario, never typed:
``python -m dcsched.eval.capacity [SCENARIO] [--days test] [--max-days N]``.

Two views of the property that G_n is tuned for (MODEL.md section 2), local_only at 30 steps and
f_max: the fluid estimate of :func:`dcsched.sim.calibration.capacity_report` (1 - capacity / peak
of the year's expected hourly arrivals) and what the simulator does on the chosen days with
expected (deterministic) arrivals: the late + dropped share in each DC's peak slot of each day and
over whole days. The simulated shares are higher than the fluid one: the backlog carried from the
overloaded slots before the peak is served first (MODEL.md section 5), so by the peak slot the new
arrivals find no room and are all late or dropped.
"""

from __future__ import annotations

import argparse

import numpy as np

from dcsched.baselines.rules import LocalOnly
from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import SPLITS, split_days
from dcsched.envs import make_env
from dcsched.eval.rollout import run_days
from dcsched.sim.calibration import capacity_report


def simulated_violation(cfg, days: list[int]) -> dict[str, np.ndarray]:
    """local_only on ``days`` (expected arrivals). Per DC [N]: mean over days of the late + dropped
    share in the DC's peak-arrival slot, and the day's late + dropped jobs over its arrivals."""
    env = make_env(cfg, EnvConfig(num_envs=1, dtype="float64"), days=days, sequential_days=True, stochastic=False)
    out = run_days(env, LocalOnly().bind(env))
    arrived = out["arrivals"].sum(-1)  # [D, T, N]: origin == serving DC under local_only
    bad = out["late"].sum(-1) + out["dropped"]  # [D, T, N]
    peak = arrived.argmax(axis=1)[:, None, :]  # [D, 1, N]
    peak_share = np.take_along_axis(bad, peak, 1)[:, 0] / np.take_along_axis(arrived, peak, 1)[:, 0]
    day_share = bad.sum(1) / arrived.sum(1)
    return {"peak_slot_share": peak_share.mean(0), "day_share": day_share.mean(0)}


def capacity_markdown(cfg, days: list[int]) -> str:
    fluid = capacity_report(cfg)
    sim = simulated_violation(cfg, days)
    lines = ["| DC | e(30 steps) | G | capacity (jobs/slot) | peak arrivals (jobs/slot) | fluid peak violation "
             f"| simulated: peak slot | simulated: whole day |", "|---|---|---|---|---|---|---|---|"]
    for n, dc in enumerate(cfg.dcs):
        lines.append(f"| {dc.region} / {dc.model} | {fluid['exec_s'][n]:.3f} s | {dc.num_gpus} "
                     f"| {fluid['capacity_jobs_per_slot'][n]:,.0f} | {fluid['peak_arrivals_per_slot'][n]:,.0f} "
                     f"| {100 * fluid['peak_violation_share'][n]:.1f} % | {100 * sim['peak_slot_share'][n]:.1f} % "
                     f"| {100 * sim['day_share'][n]:.1f} % |")
    total_cap = sum(fluid["capacity_jobs_per_slot"])
    lines.append("")
    lines.append(f"Joint capacity / peak of the total arrivals = {total_cap:,.0f} / "
                 f"{total_cap / fluid['joint_capacity_over_total_peak']:,.0f} = "
                 f"**{fluid['joint_capacity_over_total_peak']:.2f}**; simulated over {len(days)} day(s).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dcsched.eval.capacity", description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="paper3")
    ap.add_argument("--days", default="test", choices=SPLITS)
    ap.add_argument("--max-days", type=int, default=0, help="only the first N days (0 = all)")
    args = ap.parse_args(argv)
    cfg = load_scenario(args.scenario)
    days = split_days(cfg, args.days)
    if args.max_days > 0:
        days = days[: args.max_days]
    print(capacity_markdown(cfg, days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
