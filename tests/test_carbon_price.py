"""A carbon price (energy.carbon_price_usd_per_t) charges the carbon of grid purchases in the
kernels, the scalar reference and the LP alike; at 0 nothing changes, hashes included."""

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from dcsched.baselines.lp_bound import bound_scenario_hash
from dcsched.baselines.lp_solve import solve_window, window_from_exo
from dcsched.baselines.lp_model import build_lp
from dcsched.baselines.lp_replay import replay_day
from dcsched.config import load_scenario, to_container
from dcsched.data.exogenous import load_exogenous
from dcsched.sim import kernels
from dcsched.sim.params import build_params
from dcsched.sim.reference import params_to_python, reference_step
from helpers import assert_lp_contains, exo_slot, random_decision


def test_kernels_charge_carbon_as_the_reference_does(params64, exo_test64):
    B = 24
    gen = torch.Generator().manual_seed(21)
    day, t = torch.randint(0, len(exo_test64.days), (B,), generator=gen), torch.randint(0, 288, (B,), generator=gen)
    exo = exo_slot(exo_test64, day, t)
    arrivals = torch.poisson(exo_test64.arrival_rate[day, t], generator=gen)
    state = kernels.initial_state(params64, (B,))
    d = random_decision(params64, B, gen)
    priced = dataclasses.replace(params64, carbon_price_usd_per_kg=0.2)  # 200 $/t
    _, free = kernels.step(params64, state, arrivals, d, exo)
    _, out = kernels.step(priced, state, arrivals, d, exo)
    assert (free["carbon_cost_usd"] == 0).all() and (out["carbon_kg"] > 0).any()
    torch.testing.assert_close(out["carbon_cost_usd"], 0.2 * out["carbon_kg"])
    torch.testing.assert_close(out["utility_usd"], free["utility_usd"] - out["carbon_cost_usd"])
    P = params_to_python(priced)
    for b in range(B):
        st_b = {k: getattr(state, k)[b].tolist() for k in ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")}
        dec_b = {"transfer": d.transfer[b].tolist(), "steps_idx": d.steps_idx[b].tolist(),
                 "freq_idx": d.freq_idx[b].tolist(), "battery_frac": None}
        _, ref = reference_step(P, st_b, arrivals[b].tolist(), dec_b, {k: v[b].tolist() for k, v in exo.items()})
        for key in ("carbon_cost_usd", "utility_usd"):
            torch.testing.assert_close(out[key][b], torch.tensor(ref[key], dtype=torch.float64), rtol=1e-6, atol=1e-9)


def test_lp_prices_carbon_like_the_env_and_buys_less_of_it_when_dearer():
    H = 96  # the first 8 hours: enough to show it, a third of a day's LP
    cfg = load_scenario("paper3_energy", ["energy.carbon_price_usd_per_t=200"])
    p = build_params(cfg, dtype=torch.float64)
    assert p.carbon_price_usd_per_kg == pytest.approx(0.2)
    exo = load_exogenous(cfg, [100], dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    slots = replay_day(p, exo, 0, lambda t, s: random_decision(p, 1, gen))[:H]
    assert sum(float(s["carbon_cost_usd"].sum()) for s in slots) > 1.0
    w = window_from_exo(p, exo, 0, horizon=H)
    model = build_lp(p, w)
    assert_lp_contains(model, slots, len(p.freq_levels))

    def lp_carbon_kg(price_usd_per_kg):
        res = solve_window(dataclasses.replace(p, carbon_price_usd_per_kg=price_usd_per_kg), w, "carbon")
        off, count, _ = res.model.blocks["buy"]
        return float((res.x[off:off + count] * w.carbon_g_per_kwh.reshape(-1)).sum() * p.slot_h / 1000.0)

    free, dear = lp_carbon_kg(0.0), lp_carbon_kg(2.0)
    assert dear < free - 1.0, (free, dear)


def test_a_zero_carbon_price_hashes_as_before_the_key_existed():
    base = load_scenario("paper3")
    older = to_container(base)
    del older["energy"]["carbon_price_usd_per_t"]
    assert bound_scenario_hash(base) == bound_scenario_hash(OmegaConf.create(older))
    assert bound_scenario_hash(load_scenario("paper3", ["energy.carbon_price_usd_per_t=50"])) != bound_scenario_hash(base)
