"""Faults (the dc_outage and link_down stresses): the kernels' rules, the scalar reference, the LP
and the planners all agree, and every job is still accounted for."""

import pytest
import torch

from dcsched.eval.policies import make_policy
from dcsched.baselines.lp_solve import solve_window, window_from_exo
from dcsched.baselines.lp_model import build_lp
from dcsched.baselines.lp_replay import replay_day
from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import load_exogenous
from dcsched.envs import make_env
from dcsched.eval.rollout import run_days
from dcsched.sim import kernels
from dcsched.sim.params import build_params
from dcsched.sim.reference import params_to_python, reference_step
from helpers import assert_lp_contains, exo_slot, random_decision

DAY = [187]
OUTAGE = "dc_outage:dc=1,start_h=12,hours=2"
LINK = "link_down:origin=0,dest=2"
HOUR = torch.arange(288) * 300 / 3600


def _exo(*specs, scenario="paper3"):
    quoted = ",".join(f'"{s}"' for s in specs)
    return load_exogenous(load_scenario(scenario, [f"stress=[{quoted}]"] if specs else []), DAY, dtype=torch.float64)


def test_fault_stresses_set_only_their_fault_tensors():
    base, out, link = _exo(), _exo(OUTAGE), _exo(LINK)
    assert base.capacity_frac is None and base.link_up is None  # no fault: the fault-free kernels
    win = (HOUR >= 12) & (HOUR < 14)
    assert (out.capacity_frac[:, win, 1] == 0).all() and (out.capacity_frac[:, ~win] == 1).all()
    assert (out.capacity_frac[..., [0, 2]] == 1).all() and (out.link_up == 1).all()
    down = torch.zeros(3, 3, dtype=torch.bool)
    down[0, 2] = down[2, 0] = True  # both directions by default
    assert (link.link_up[..., down] == 0).all() and (link.link_up[..., ~down] == 1).all()
    assert (link.capacity_frac == 1).all()
    for key in ("price_usd_per_mwh", "arrival_rate", "temp_c", "pv_kw_per_kwp"):
        assert torch.equal(getattr(out, key), getattr(base, key)) and torch.equal(getattr(link, key), getattr(base, key))
    one_way = _exo("link_down:origin=0,dest=2,both=0")
    assert (one_way.link_up[..., 0, 2] == 0).all() and (one_way.link_up[..., 2, 0] == 1).all()


@pytest.mark.parametrize("spec, message", [
    ("link_down:origin=1,dest=1", "origin and dest must differ"),
    ("link_down:origin=0,dest=7", "not a data centre index"),
    ("dc_outage:up_share=1", "up_share"),
])
def test_a_bad_fault_is_refused_with_the_key(spec, message):
    from dcsched.errors import ConfigError

    with pytest.raises(ConfigError, match="scenario.stress") as err:
        load_exogenous(load_scenario("paper3", [f'stress=["{spec}"]']), DAY)
    assert message in str(err.value)


def _random_faults(p, B, gen):
    N = p.num_dcs
    levels = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    now = levels[torch.randint(0, 3, (B, N), generator=gen)]
    nxt = levels[torch.randint(0, 3, (B, N), generator=gen)]
    link = (torch.rand(B, N, N, generator=gen) < 0.6).double()
    link = torch.maximum(link, torch.eye(N, dtype=torch.float64))
    return {"capacity_frac": now, "capacity_frac_next": nxt, "link_up": link}


def test_kernels_with_faults_equal_the_reference_and_conserve_jobs(params64, exo_test64):
    p, B = params64, 48
    gen = torch.Generator().manual_seed(7)
    day = torch.randint(0, len(exo_test64.days), (B,), generator=gen)
    t = torch.randint(0, 288, (B,), generator=gen)
    exo = {**exo_slot(exo_test64, day, t), **_random_faults(p, B, gen)}
    arrivals = torch.poisson(1.5 * exo_test64.arrival_rate[day, t], generator=gen)
    work = torch.rand(B, p.num_dcs, generator=gen, dtype=torch.float64) * p.backlog_cap_gpu_s * exo["capacity_frac"]
    state = kernels.SimState(soc=torch.full((B, p.num_dcs), 0.5, dtype=torch.float64), backlog_work_gpu_s=work,
                             backlog_energy_j=work * 300.0, backlog_jobs=work / 2.0)
    d = random_decision(p, B, gen)
    nxt, out = kernels.step(p, state, arrivals, d, exo)
    # rules: nothing crosses a down link; a down DC serves nothing new; the backlog fits the next slot
    assert (out["transfer"] * (1 - exo["link_up"]).unsqueeze(-1) == 0).all()
    torch.testing.assert_close(out["transfer"].sum(-2), torch.ones_like(out["transfer"].sum(-2)))
    down = exo["capacity_frac"] == 0
    assert (out["on_time"][down] == 0).all() and (out["busy_gpu_s"][down] == 0).all()
    assert (nxt.backlog_work_gpu_s <= p.backlog_cap_gpu_s * exo["capacity_frac_next"] + 1e-9).all()
    ended = out["on_time"].sum((-1, -2)) + out["late"].sum((-1, -2)) + out["dropped"].sum(-1)
    torch.testing.assert_close(ended, arrivals.sum((-1, -2)), rtol=0, atol=1e-6)
    P = params_to_python(p)
    for b in range(B):
        st_b = {k: getattr(state, k)[b].tolist() for k in ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")}
        dec_b = {"transfer": d.transfer[b].tolist(), "steps_idx": d.steps_idx[b].tolist(),
                 "freq_idx": d.freq_idx[b].tolist(), "battery_frac": None}
        ref_state, ref = reference_step(P, st_b, arrivals[b].tolist(), dec_b, {k: v[b].tolist() for k, v in exo.items()})
        for key, val in ref.items():
            torch.testing.assert_close(out[key][b], torch.tensor(val, dtype=torch.float64), rtol=1e-6, atol=1e-9,
                                       msg=lambda m, key=key: f"{key}: {m}")
        for key, val in ref_state.items():
            torch.testing.assert_close(getattr(nxt, key)[b], torch.tensor(val, dtype=torch.float64), rtol=1e-6, atol=1e-9)


def test_no_fault_tensors_mean_the_fault_free_kernels_bit_for_bit(params64, exo_test64):
    p, B = params64, 16
    gen = torch.Generator().manual_seed(8)
    day, t = torch.zeros(B, dtype=torch.long), torch.arange(B) * 17
    exo = exo_slot(exo_test64, day, t)
    ones = {"capacity_frac": torch.ones(B, p.num_dcs, dtype=torch.float64),
            "link_up": torch.ones(B, p.num_dcs, p.num_dcs, dtype=torch.float64)}
    state = kernels.initial_state(p, (B,))
    d = random_decision(p, B, gen)
    arrivals = exo_test64.arrival_rate[day, t]
    _, plain = kernels.step(p, state, arrivals, d, exo)
    _, all_up = kernels.step(p, state, arrivals, d, {**exo, **ones})
    for key in ("utility_usd", "on_time", "dropped", "it_kw", "grid_buy_kw"):
        assert torch.equal(plain[key], all_up[key]), key


def test_lp_contains_the_env_on_a_fault_day_and_bounds_the_planners():
    """On a day with an outage and a link down: the LP at a replayed env trajectory reproduces its
    utility and satisfies every constraint; greedy_myopic moves jobs away from the down DC
    (local_only drops them) and stays under the bound."""
    cfg = load_scenario("paper3", [f'stress=["{OUTAGE}","{LINK}"]'])
    p = build_params(cfg, dtype=torch.float64)
    exo = load_exogenous(cfg, DAY, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    slots = replay_day(p, exo, 0, lambda t, s: random_decision(p, 1, gen))
    w = window_from_exo(p, exo, 0)
    model = build_lp(p, w)
    assert_lp_contains(model, slots, len(p.freq_levels))
    bound = solve_window(p, w, "fault day").value_usd
    env = make_env(cfg, EnvConfig(dtype="float64"), days=DAY, sequential_days=True, stochastic=False)
    results = {name: run_days(env, make_policy(name, env)) for name in ("local_only", "greedy_myopic")}
    for name, out in results.items():
        assert out["utility_usd"].sum() <= bound + 1e-6 * abs(bound), name
    win = ((HOUR >= 12) & (HOUR < 14)).numpy()
    dropped_at_1 = {name: out["dropped"][0, win, 1].sum() for name, out in results.items()}
    assert dropped_at_1["local_only"] > 100 and dropped_at_1["greedy_myopic"] == pytest.approx(0.0, abs=1e-6)
    transfer = results["greedy_myopic"]["transfer"][0]  # [T, i, n, k]
    assert (transfer[:, 0, 2] == 0).all() and (transfer[:, 2, 0] == 0).all()


def test_evaluate_takes_a_stress_grid_and_writes_table_and_heat_map(tmp_path):
    import pandas as pd

    from dcsched.cli import main

    out = tmp_path / "grid"
    assert main(["evaluate", "--policy", "local_only", "--policy", "centre_action", "--days", "2023-07-07",
                 "--stress", "none", "--stress", "dc_outage:dc=0,start_h=0,hours=24", "--with-bound",
                 "--out", str(out), "--no-plots"]) == 0
    table = pd.read_csv(out / "stress_table.csv").set_index(["method", "setting"])
    outage = "dc_outage:dc=0,start_h=0,hours=24"
    assert table.loc[("local_only", outage), "violation_rate"] > table.loc[("local_only", "none"), "violation_rate"] + 0.2
    assert table["share_of_bound"].between(-1, 1).all()
    assert (out / "stress_heatmap.png").stat().st_size > 0 and "| local_only |" in (out / "stress_table.md").read_text()
    assert (out / f"stress-dc_outage_dc=0_start_h=0_hours=24" / "local_only" / "summary.json").exists()
    assert main(["evaluate", "--policy", "local_only", "--stress", "dc_outag", "--out", str(tmp_path / "x")]) == 2
    assert main(["evaluate", "--policy", "local_only", "--stress", "none", "--bounds", "b.json",
                 "--out", str(tmp_path / "y")]) == 2


def test_observe_faults_appends_the_fault_state_to_the_observation():
    cfg = load_scenario("paper3", [f'stress=["{OUTAGE}","{LINK}"]'])
    plain = make_env(cfg, EnvConfig(), days=DAY, sequential_days=True, stochastic=False)
    seen = make_env(cfg, EnvConfig(observe_faults=True), days=DAY, sequential_days=True, stochastic=False)
    N = 3
    assert seen.obs_dim == plain.obs_dim + 2 * N + N * (N - 1)
    td_plain, td_seen = plain.reset(), seen.reset()
    obs = []
    for t in range(288):
        assert torch.equal(td_seen["observation"][:, : plain.obs_dim - 2], td_plain["observation"][:, :-2])
        obs.append(td_seen["observation"][0, plain.obs_dim - 2 : -2])
        action = torch.zeros(1, plain.action_spec.shape[-1])
        td_plain = plain.step_mdp(plain.step(td_plain.set("action", action)))
        td_seen = seen.step_mdp(seen.step(td_seen.set("action", action)))
    feats = torch.stack(obs)  # [T, 2N + N(N-1)]
    win = (HOUR >= 12) & (HOUR < 14)
    assert (feats[win, 1] == 0).all() and (feats[~win, 1] == 1).all()  # DC 1's GPUs up, this slot
    nxt = torch.roll(win, -1)
    nxt[-1] = win[-1]
    assert torch.equal(feats[:, N + 1] == 0, nxt)  # ... and next slot
    links = feats[:, 2 * N:]  # off-diagonal, row-major: 0->1, 0->2, 1->0, 1->2, 2->0, 2->1
    assert (links[:, [1, 4]] == 0).all() and (links[:, [0, 2, 3, 5]] == 1).all()
    calm = make_env(load_scenario("paper3"), EnvConfig(observe_faults=True), days=DAY, sequential_days=True)
    assert (calm.reset()["observation"][0, plain.obs_dim - 2 : -2] == 1).all()
