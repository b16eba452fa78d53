"""Properties of the kernels that would break if the model were wrong, and the differential
test against the independent scalar reference."""

import dataclasses

import pytest
import torch

from dcsched.sim import kernels
from dcsched.sim.reference import params_to_python, reference_step
from helpers import exo_slot, random_decision

B = 64


def random_state(p, batch, gen):
    st = kernels.initial_state(p, (batch,))
    soc = p.soc_min + (p.soc_max - p.soc_min) * torch.rand(batch, p.num_dcs, generator=gen, dtype=torch.float64)
    frac = torch.rand(batch, p.num_dcs, generator=gen, dtype=torch.float64)
    work = frac * p.backlog_cap_gpu_s
    return kernels.SimState(soc=soc, backlog_work_gpu_s=work, backlog_energy_j=work * 300.0, backlog_jobs=work / 2.0)


def random_inputs(p, exo, gen, scale=1.0):
    day = torch.randint(0, len(exo.days), (B,), generator=gen)
    t = torch.randint(0, p.slots_per_day, (B,), generator=gen)
    rate = exo.arrival_rate[day, t] * scale
    arrivals = torch.poisson(rate, generator=gen)
    return arrivals, exo_slot(exo, day, t)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_every_job_ends_on_time_late_or_dropped(params64, exo_test64, gen, scale):
    p = params64
    state = random_state(p, B, gen)
    arrivals, exo = random_inputs(p, exo_test64, gen, scale)
    _, out = kernels.step(p, state, arrivals, random_decision(p, B, gen), exo)
    arrived = arrivals.sum((-1, -2))
    ended = out["on_time"].sum((-1, -2)) + out["late"].sum((-1, -2)) + out["dropped"].sum(-1)
    torch.testing.assert_close(ended, arrived, rtol=0, atol=1e-6)
    # per origin too, via the flows
    by_origin = out["flow_on_time"].sum((-2, -1)) + out["flow_late"].sum((-2, -1)) + out["flow_dropped"].sum(-1)
    torch.testing.assert_close(by_origin, arrivals.sum(-1), rtol=0, atol=1e-6)
    assert (out["on_time"] >= -1e-12).all() and (out["late"] >= -1e-12).all() and (out["dropped"] >= -1e-12).all()
    if scale == 3.0:
        assert out["dropped"].sum() > 0, "overload must drop jobs"


def test_power_balance_soc_bounds_and_dynamics(params64, exo_test64, gen):
    p = params64
    state = random_state(p, B, gen)
    arrivals, exo = random_inputs(p, exo_test64, gen)
    exo["price_usd_per_mwh"][: B // 4] = -20.0  # negative prices exercise curtailment
    nxt, o = kernels.step(p, state, arrivals, random_decision(p, B, gen), exo)
    lhs = o["grid_buy_kw"] - o["grid_sell_kw"]
    rhs = o["it_kw"] + o["cooling_kw"] + o["charge_kw"] - o["discharge_kw"] - o["pv_kw"] - o["wind_kw"] + o["curtail_kw"]
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-6)
    assert (nxt.soc >= p.soc_min - 1e-9).all() and (nxt.soc <= p.soc_max + 1e-9).all()
    expected = state.soc + (o["charge_kw"] * p.eta_charge - o["discharge_kw"] / p.eta_discharge) * p.slot_h / p.battery_kwh
    torch.testing.assert_close(nxt.soc, expected, rtol=0, atol=1e-9)
    assert ((o["charge_kw"] > 0) & (o["discharge_kw"] > 0)).sum() == 0
    assert (o["charge_kw"] <= p.battery_kw + 1e-9).all() and (o["discharge_kw"] <= p.battery_kw + 1e-9).all()
    assert (o["curtail_kw"] <= o["pv_kw"] + o["wind_kw"] + 1e-9).all()
    assert (o["grid_buy_kw"] >= 0).all() and (o["grid_sell_kw"] >= 0).all()


def test_soc_stays_in_bounds_over_a_day_with_learned_battery(params64, exo_test64, gen):
    p = dataclasses.replace(params64, learned_energy=True)
    state = kernels.initial_state(p, (B,))
    day = torch.randint(0, len(exo_test64.days), (B,), generator=gen)
    for t in range(p.slots_per_day):
        tt = torch.full((B,), t)
        d = random_decision(p, B, gen, with_battery=True)
        d.battery_frac = torch.sign(d.battery_frac)  # always push to a limit
        state, o = kernels.step(p, state, exo_test64.arrival_rate[day, tt], d, exo_slot(exo_test64, day, tt))
        assert (state.soc >= p.soc_min - 1e-9).all() and (state.soc <= p.soc_max + 1e-9).all()


def test_backlog_never_exceeds_cap(params64, exo_test64, gen):
    p = params64
    state = random_state(p, B, gen)
    for _ in range(5):
        arrivals, exo = random_inputs(p, exo_test64, gen, scale=4.0)
        state, o = kernels.step(p, state, arrivals, random_decision(p, B, gen), exo)
        assert (state.backlog_work_gpu_s <= p.backlog_cap_gpu_s * (1 + 1e-12)).all()
        assert (o["busy_gpu_s" if "busy_gpu_s" in o else "it_kw"] >= 0).all()


def test_short_jobs_are_served_before_long(params64, exo_test64, gen):
    """Short work alone exceeds capacity: no long job may be served on time, short ones are."""
    p = params64
    n_b = 8
    state = kernels.initial_state(p, (n_b,))
    _, exo = random_inputs(p, exo_test64, gen)
    d = random_decision(p, n_b, gen)
    d.transfer = torch.eye(p.num_dcs, dtype=torch.float64).unsqueeze(-1).expand(n_b, -1, -1, p.num_classes).clone()
    d.steps_idx[:] = 6  # 30 steps: feasible for both classes everywhere
    d.freq_idx[:] = len(p.freq_levels) - 1
    exec_s, _ = kernels.job_time_and_energy(p, p.steps_grid[d.steps_idx], p.freq_levels[d.freq_idx])
    cap_jobs = p.capacity_gpu_s / exec_s[0, :, 0]
    frac = torch.rand(n_b, 1, generator=gen, dtype=torch.float64)
    arrivals = torch.stack([cap_jobs * (1.1 + frac), cap_jobs * (0.5 + frac)], dim=-1)  # short > capacity
    _, out = kernels.step(p, state, arrivals, d, {k: v[:n_b] for k, v in exo.items()})
    torch.testing.assert_close(out["on_time"][..., 0], cap_jobs.expand(n_b, -1), rtol=1e-9, atol=1e-6)
    assert (out["on_time"][..., 1] == 0).all()
    # with half the short load, long jobs get exactly the leftover capacity
    arrivals[..., 0] = cap_jobs * 0.5
    _, out = kernels.step(p, state, arrivals, d, {k: v[:n_b] for k, v in exo.items()})
    torch.testing.assert_close(out["on_time"][..., 0], arrivals[..., 0])
    leftover = (p.capacity_gpu_s - arrivals[..., 0] * exec_s[:, :, 0]) / exec_s[:, :, 1]
    torch.testing.assert_close(out["on_time"][..., 1], torch.minimum(leftover, arrivals[..., 1]))


def test_infeasible_execution_is_never_on_time(params64, exo_test64, gen):
    p = params64
    state = kernels.initial_state(p, (B,))
    arrivals, exo = random_inputs(p, exo_test64, gen)
    d = random_decision(p, B, gen)
    d.steps_idx[:] = len(p.steps_grid) - 1  # 42 steps
    d.freq_idx[:] = 0  # slowest clock: SD3.5 and SDXL exceed the 5 s deadline
    s = kernels.serve(p, state, arrivals, d)
    too_slow = (s["exec_s"].unsqueeze(-3) + p.transfer_delay_s.unsqueeze(-1)) > p.deadline_s
    assert too_slow.any()
    assert (s["on_time"][too_slow] == 0).all()


def test_kernels_equal_scalar_reference(params64, exo_test64, gen):
    p = params64
    P = params_to_python(p)
    state = random_state(p, B, gen)
    arrivals, exo = random_inputs(p, exo_test64, gen, scale=1.5)
    d = random_decision(p, B, gen)
    nxt, out = kernels.step(p, state, arrivals, d, exo)
    for b in range(B):
        st_b = {k: getattr(state, k)[b].tolist() for k in ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")}
        dec_b = {"transfer": d.transfer[b].tolist(), "steps_idx": d.steps_idx[b].tolist(),
                 "freq_idx": d.freq_idx[b].tolist(), "battery_frac": None}
        exo_b = {k: v[b].tolist() for k, v in exo.items()}
        ref_state, ref = reference_step(P, st_b, arrivals[b].tolist(), dec_b, exo_b)
        for key, val in ref.items():
            torch.testing.assert_close(out[key][b], torch.tensor(val, dtype=torch.float64), rtol=1e-6, atol=1e-9,
                                       msg=lambda m, key=key: f"{key}: {m}")
        for key, val in ref_state.items():
            torch.testing.assert_close(getattr(nxt, key)[b], torch.tensor(val, dtype=torch.float64), rtol=1e-6, atol=1e-9)


def test_learned_battery_matches_reference(params64, exo_test64, gen):
    p = dataclasses.replace(params64, learned_energy=True)
    P = params_to_python(p)
    state = random_state(p, 16, gen)
    day = torch.randint(0, len(exo_test64.days), (16,), generator=gen)
    t = torch.randint(0, 288, (16,), generator=gen)
    exo = exo_slot(exo_test64, day, t)
    d = random_decision(p, 16, gen, with_battery=True)
    arrivals = exo_test64.arrival_rate[day, t]
    _, out = kernels.step(p, state, arrivals, d, exo)
    for b in range(16):
        st_b = {k: getattr(state, k)[b].tolist() for k in ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")}
        dec_b = {"transfer": d.transfer[b].tolist(), "steps_idx": d.steps_idx[b].tolist(),
                 "freq_idx": d.freq_idx[b].tolist(), "battery_frac": d.battery_frac[b].tolist()}
        _, ref = reference_step(P, st_b, arrivals[b].tolist(), dec_b, {k: v[b].tolist() for k, v in exo.items()})
        for key in ("charge_kw", "discharge_kw", "soc", "utility_usd"):
            torch.testing.assert_close(out[key][b], torch.tensor(ref[key], dtype=torch.float64), rtol=1e-6, atol=1e-9)


def test_dvfs_slows_steps_and_saves_energy(params64):
    p = params64
    f = p.freq_levels.expand(p.num_dcs, -1).T  # [F, N]
    tau = kernels.step_time_s(p, f)
    energy = kernels.gpu_power_w(p, f) * tau
    assert (tau[:-1] > tau[1:]).all(), "lower clocks take longer per step"
    torch.testing.assert_close(tau[-1], p.tau_step_s)
    torch.testing.assert_close(energy[-1], p.busy_power_w * p.tau_step_s)  # = E_step at f_max
    assert (energy[0] < energy[-1]).all(), "the lowest clock saves energy per step"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_cuda_equals_cpu(params64, exo_test64, gen):
    p = params64
    state = random_state(p, B, gen)
    arrivals, exo = random_inputs(p, exo_test64, gen)
    d = random_decision(p, B, gen)
    nxt, out = kernels.step(p, state, arrivals, d, exo)
    pc = p.to("cuda")
    mv = lambda x: x.cuda()  # noqa: E731
    d_c = kernels.Decision(mv(d.transfer), mv(d.steps_idx), mv(d.freq_idx))
    st_c = kernels.SimState(*(mv(getattr(state, k)) for k in ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")))
    nxt_c, out_c = kernels.step(pc, st_c, mv(arrivals), d_c, {k: mv(v) for k, v in exo.items()})
    for key in ("utility_usd", "grid_buy_kw", "on_time", "soc"):
        torch.testing.assert_close(out_c[key].cpu(), out[key], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("control", ["heuristic", "learned"])
def test_kernels_equal_reference_over_a_whole_day_from_the_scenario_file(control):
    """288 slots chained, each model carrying its own state, the reference with parameters it
    derives itself from the scenario (reference_params), on a test day with negative prices; the
    battery reaches both SoC bounds."""
    from dcsched.config import load_scenario
    from dcsched.data.exogenous import load_exogenous
    from dcsched.sim.params import build_params
    from dcsched.sim.reference import reference_params

    cfg = load_scenario("paper3", [f"energy.control={control}"])
    p = build_params(cfg, dtype=torch.float64)
    P = reference_params(cfg)
    exo = load_exogenous(cfg, [124], dtype=torch.float64)  # 4 May 2023: negative prices in CAISO
    assert (exo.price_usd_per_mwh[0] < 0).any()
    g = torch.Generator().manual_seed(5)
    state = kernels.initial_state(p, (1,))
    ref_state = {"soc": [P["soc_init"]] * p.num_dcs, "backlog_work_gpu_s": [0.0] * p.num_dcs,
                 "backlog_energy_j": [0.0] * p.num_dcs, "backlog_jobs": [0.0] * p.num_dcs}
    socs = []
    for t in range(p.slots_per_day):
        d = random_decision(p, 1, g, with_battery=control == "learned")
        if control == "learned":  # charge in the first half of the day, discharge in the second
            d.battery_frac[:] = 1.0 if t < p.slots_per_day // 2 else -1.0
        arrivals = exo.arrival_rate[0, t].unsqueeze(0) * 1.3
        ex = exo_slot(exo, torch.tensor([0]), torch.tensor([t]))
        state, out = kernels.step(p, state, arrivals, d, ex)
        dec = {"transfer": d.transfer[0].tolist(), "steps_idx": d.steps_idx[0].tolist(), "freq_idx": d.freq_idx[0].tolist(),
               "battery_frac": d.battery_frac[0].tolist() if d.battery_frac is not None else None}
        ref_state, ref = reference_step(P, ref_state, arrivals[0].tolist(), dec, {k: v[0].tolist() for k, v in ex.items()})
        for key, val in ref.items():
            torch.testing.assert_close(out[key][0], torch.tensor(val, dtype=torch.float64), rtol=1e-6, atol=1e-7,
                                       msg=lambda m, key=key, t=t: f"slot {t}, {key}: {m}")
        socs.append(ref_state["soc"])
    socs = torch.tensor(socs)
    assert torch.isclose(socs, torch.tensor(P["soc_max"], dtype=socs.dtype)).any(), "the battery never filled"
    assert torch.isclose(socs, torch.tensor(P["soc_min"], dtype=socs.dtype)).any(), "the battery never emptied"
