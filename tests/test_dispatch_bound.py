"""The dispatch-only bound (the LP with the env's battery rule): it contains every env trajectory
under the rule, so it still bounds every policy, and it is at most the full bound."""

import json

import numpy as np
import pytest
import torch

from dcsched.baselines.lp_solve import solve_window, window_from_exo
from dcsched.baselines.lp_model import battery_modes, build_lp
from dcsched.baselines.lp_replay import replay_day
from dcsched.config import load_scenario
from dcsched.data.exogenous import load_exogenous
from dcsched.sim.kernels import Decision
from dcsched.sim.params import build_params
from helpers import assert_lp_contains, random_decision

SPIKE_DAY = 236  # 2023-08-25: paper3_energy's price-spike test day


@pytest.fixture(scope="module")
def energy_day():
    cfg = load_scenario("paper3_energy")
    p = build_params(cfg, dtype=torch.float64)
    return cfg, p, load_exogenous(cfg, [SPIKE_DAY], dtype=torch.float64)


@pytest.mark.parametrize("which, day", [("random", SPIKE_DAY), ("idle", 100)])
def test_every_env_trajectory_under_the_battery_rule_lies_in_the_dispatch_only_lp(energy_day, which, day):
    """Random decisions (busy DCs, deficits) and an idle schedule (renewable surpluses that the
    rule stores, on a day when the battery has room for them) both satisfy the rule's rows, at the
    env's own utility."""
    cfg, p, exo = energy_day
    if day != SPIKE_DAY:
        exo = load_exogenous(cfg, [day], dtype=torch.float64)
    N, K = p.num_dcs, p.num_classes
    gen = torch.Generator().manual_seed(11)
    if which == "random":
        decide = lambda t, s: random_decision(p, 1, gen)  # noqa: E731
    else:  # everything local at the fewest steps, slowest clock: little load
        eye = torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(1, N, N, K).clone()
        decide = lambda t, s: Decision(eye, torch.zeros(1, N, K, dtype=torch.long), torch.zeros(1, N, dtype=torch.long))  # noqa: E731
    slots = replay_day(p, exo, 0, decide)
    w = window_from_exo(p, exo, 0)
    modes = battery_modes(w)
    assert {0, 1, 2} <= set(np.unique(modes)), "the day exercises every mode of the rule"
    charged = np.array([s["charge_kw"] for s in slots])
    discharged = np.array([s["discharge_kw"] for s in slots])
    if which == "random":
        assert (discharged[modes == 2] > 0).any(), "the rule discharges to cover deficits"
    else:
        assert (charged[modes == 0] > 0).any(), "the rule stores a renewable surplus"
    model = build_lp(p, w, battery_rule=True)
    assert_lp_contains(model, slots, len(p.freq_levels), rhs=model.b_ub)


def test_dispatch_only_bound_is_tighter_and_forbids_battery_export(energy_day, tmp_path):
    """On the spike day the full LP sells stored energy; the dispatch-only LP cannot, and its
    value lies between the planners' and the full bound. The CLI writes both, and evaluate
    reports both shares."""
    from dcsched.cli import main

    cfg, p, exo = energy_day
    w = window_from_exo(p, exo, 0, start=180, horizon=72)  # 15:00-21:00 UTC, the spike in the middle
    ruled = solve_window(p, w, "ruled", battery_rule=True)
    assert ruled.value_usd < solve_window(p, w, "full").value_usd - 1.0
    off, count, _ = ruled.model.blocks["discharge"]
    dis = ruled.x[off:off + count].reshape(-1, p.num_dcs)
    assert (dis[battery_modes(w) != 2] == 0).all() and (dis > 0).any()
    out = tmp_path / "b"
    assert main(["solve", "--scenario", "paper3_energy", "--days", "2023-08-25", "--out", str(out), "--dispatch-only"]) == 0
    row = json.loads((out / "bounds.json").read_text())["per_day"][0]
    assert row["dispatch_bound_usd"] < row["lp_bound_usd"] - 1.0  # the full LP sells stored energy at the spike
    assert main(["evaluate", "--scenario", "paper3_energy", "--policy", "local_only", "--days", "2023-08-25",
                 "--out", str(tmp_path / "ev"), "--bounds", str(out / "bounds.json"), "--no-plots"]) == 0
    mean = json.loads((tmp_path / "ev" / "summary.json").read_text())["mean"]
    assert mean["share_of_bound"] * row["lp_bound_usd"] == pytest.approx(mean["utility_usd"])
    assert mean["share_of_dispatch_bound"] * row["dispatch_bound_usd"] == pytest.approx(mean["utility_usd"])
    assert mean["utility_usd"] < 0  # local_only loses money on the spike day (both bounds are positive)
    assert main(["solve", "--scenario", "paper3_energy", "--days", "2023-08-25", "--out", str(out),
                 "--dispatch-only", "scenario.energy.control=learned"]) == 2
