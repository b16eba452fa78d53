"""One source for the physics: a formula changed in dcsched/sim/physics.py changes the env's
kernels and the LP bound together (the LP evaluated at the env's own trajectory still equals the
env's utility to 1e-6), and the change is visible (the utility moves)."""

import pytest
import torch

from dcsched.baselines.lp_solve import window_from_exo
from dcsched.baselines.lp_model import build_lp
from dcsched.baselines.lp_replay import max_violation, replay_day, trajectory_vector
from dcsched.config import load_scenario
from dcsched.data.exogenous import load_exogenous, split_days
from dcsched.sim import physics
from dcsched.sim.params import build_params
from helpers import random_decision

# each a different, still linear-in-flows, law: the LP can represent it, so equality must survive
CHANGED = {
    "pue": lambda temp_c, base, slope, threshold: base + 3.0 * slope * physics.positive_part(temp_c - threshold + 8.0),
    "it_power_kw": lambda energy_j, idle_s, idle_w, base_w, slot_s: (energy_j + 0.7 * idle_w * idle_s
                                                                     + 2.0 * base_w * slot_s) / slot_s / 1000.0,
    "soc_next": lambda soc, ch, dis, eta_c, eta_d, slot_h, kwh: soc + (0.9 * ch * eta_c - 0.9 * dis / eta_d) * slot_h / kwh,
    "grid_cost_usd": lambda buy, sell, price, factor, slot_h: 1.3 * (buy - 0.5 * factor * sell) * (slot_h / 1000.0) * price,
    "degradation_usd": lambda ch, dis, usd_per_kwh, slot_h: 40.0 * usd_per_kwh * (ch + dis) * slot_h,
}


@pytest.fixture(scope="module")
def day():
    cfg = load_scenario("paper3")
    p = build_params(cfg, dtype=torch.float64)
    exo = load_exogenous(cfg, split_days(cfg, "test")[:1], dtype=torch.float64)
    return p, exo, env_utility_and_lp_value(p, exo)[0]


def env_utility_and_lp_value(p, exo):
    gen = torch.Generator().manual_seed(3)
    slots = replay_day(p, exo, 0, lambda t, s: random_decision(p, 1, gen))
    utility = sum(float(s["utility_usd"].sum()) for s in slots)
    model = build_lp(p, window_from_exo(p, exo, 0))
    x = trajectory_vector(model, slots, len(p.freq_levels))
    return utility, float(model.c @ x), max_violation(model, x), float(abs(model.b_eq).max())


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_a_changed_formula_changes_the_env_and_the_lp_together(day, monkeypatch, name):
    p, exo, before = day
    monkeypatch.setattr(physics, name, CHANGED[name])
    utility, lp_value, violation, scale = env_utility_and_lp_value(p, exo)
    assert utility != pytest.approx(before, rel=1e-9), f"changing physics.{name} must change the env's utility"
    assert lp_value == pytest.approx(utility, rel=1e-6), f"the LP does not follow physics.{name}"
    assert violation < 1e-6 * max(1.0, scale)
