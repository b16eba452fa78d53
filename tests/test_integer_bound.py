"""The integer-level bound (one step level per (DC, class), one frequency per DC, as the env) and
the planners that plan in the env's own levels (``levels=milp``)."""

import numpy as np
import pytest
import torch

from dcsched.baselines.integer_bound import (integer_level_bound, slot_problem, solve_window_integer,
                                             split_by_slot)
from dcsched.baselines.lp_solve import solve_model, solve_window, window_from_exo
from dcsched.baselines.lp_model import build_lp, level_coefficients
from dcsched.baselines.lp_replay import replay_day, trajectory_vector
from dcsched.config import load_scenario
from dcsched.data.exogenous import load_exogenous, split_days
from dcsched.sim import kernels
from dcsched.sim.kernels import Decision
from dcsched.sim.params import build_params
from helpers import random_decision

SPIKE_DAY = 236  # 2023-08-25, a paper3_energy test day


@pytest.fixture(scope="module")
def energy_day():
    cfg = load_scenario("paper3_energy")
    p = build_params(cfg, dtype=torch.float64)
    return p, load_exogenous(cfg, [SPIKE_DAY], dtype=torch.float64)


def test_the_slot_split_is_the_same_lp(energy_day):
    """Every row but the coupling rows reads one slot only, and the split LP has the LP's optimum."""
    p, exo = energy_day
    w = window_from_exo(p, exo, 0, start=180, horizon=8)
    model = build_lp(p, w)
    split = split_by_slot(model, p.num_dcs)
    for A, row_slot in ((split.model.A_eq, split.eq_slot), (split.model.A_ub, split.ub_slot)):
        A = A.tocsr()
        for r in np.nonzero(row_slot >= 0)[0]:
            cols = A.indices[A.indptr[r]:A.indptr[r + 1]]
            assert (split.var_slot[cols] == row_slot[r]).all()
    assert (split.eq_slot < 0).sum() > 0, "the soc and the backlog couple the slots"
    _, value = solve_model(model, "lp")
    _, split_value = solve_model(split.model, "split")
    assert split_value == pytest.approx(value, rel=1e-9)


def _slot_vectors(p, split, coef, w, slots):
    """The env trajectory ``slots`` as every slot problem's vector: its variables (copies equal to
    their originals) and the binaries of the levels it used."""
    x = trajectory_vector(build_lp(p, w, coef), slots, len(p.freq_levels))
    n = x.size
    copies = split.model.A_eq[np.nonzero(split.eq_slot < 0)[0]].tocsr()[:, :n]  # x_j - x_copy: the original's column
    x_aug = np.concatenate([x, copies @ x])
    N, K = p.num_dcs, p.num_classes
    S, F = len(p.steps_grid), len(p.freq_levels)
    for t, s in enumerate(slots):
        sp_ = slot_problem(split, coef, w.arrivals, t, N, K)
        z_s = np.zeros((N, K, S))
        z_s[np.arange(N)[:, None], np.arange(K)[None, :], s["steps_idx"]] = 1.0
        z_f = np.zeros((N, F))
        z_f[np.arange(N), s["freq_idx"]] = 1.0
        yield t, sp_, x_aug[sp_.cols], np.concatenate([z_s.ravel(), z_f.ravel()])


@pytest.mark.parametrize("which", ["random", "one_level"])
def test_every_env_trajectory_lies_in_every_slot_problem(which):
    """What makes the sum a bound on every policy: a replayed day (random transfers, levels and
    battery with late and backlogged jobs, or a schedule at one level) satisfies each slot's own
    rows and its level rows, with the levels it used as binaries; with another step level for a
    (DC, class) that has jobs, the level rows are violated (so the check can fail)."""
    cfg = load_scenario("paper3")
    p = build_params(cfg, dtype=torch.float64)
    day = split_days(cfg, "test")[0]
    exo = load_exogenous(cfg, [day], dtype=torch.float64)
    N, K = p.num_dcs, p.num_classes
    gen = torch.Generator().manual_seed(5)
    if which == "random":
        decide = lambda t, s: random_decision(p, 1, gen)  # noqa: E731
    else:
        eye = torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(1, N, N, K).clone()
        decide = lambda t, s: Decision(eye, torch.full((1, N, K), 9), torch.full((1, N), 2))  # noqa: E731
    slots = replay_day(p, exo, 0, decide)
    if which == "random":
        assert sum(float(s["flow_backlogged"].sum()) for s in slots) > 0, "exercise the backlog's copies"
    w = window_from_exo(p, exo, 0)
    coef = level_coefficients(p)
    split = split_by_slot(build_lp(p, w, coef), N)
    for t, sp_, x, z in _slot_vectors(p, split, coef, w, slots):
        scale = max(1.0, np.abs(sp_.b_eq).max(initial=0.0))
        assert np.abs(sp_.A_eq @ x - sp_.b_eq).max(initial=0.0) < 1e-6 * scale, t
        assert (sp_.A_ub @ x - sp_.b_ub).max(initial=0.0) < 1e-6 * scale, t
        assert (x >= sp_.lb - 1e-9).all() and (x <= sp_.ub + 1e-6 * scale).all(), t
        level = sp_.A_level @ np.concatenate([x, z])
        assert (level <= sp_.level_hi + 1e-9).all() and (level >= sp_.level_lo - 1e-9).all(), t
        if t == 100:  # move one (DC, class)'s jobs' binary to the next step level
            S = len(p.steps_grid)
            wrong = z.copy()
            s0 = int(slots[t]["steps_idx"][0, 0])
            wrong[s0], wrong[(s0 + 1) % S] = 0.0, 1.0
            assert ((sp_.A_level @ np.concatenate([x, wrong])) > sp_.level_hi + 1e-6).any()


def test_integer_bound_is_below_the_lp_and_above_env_schedules(energy_day):
    """On 8 slots around the 2023-08-25 spike: the decomposition with LP slots reproduces the LP
    bound (checked inside), the integer-level bound is strictly below it (the LP mixes levels), and
    it is above a greedy schedule in the env's own levels and above random schedules."""
    p, exo = energy_day
    start, H = 180, 8
    w = window_from_exo(p, exo, 0, start=start, horizon=H)
    coef = level_coefficients(p)
    res = integer_level_bound(p, w, coef)
    assert res.lagrangian_lp_usd == pytest.approx(res.lp_value_usd, rel=1e-6)
    assert res.value_usd < res.lp_value_usd - 1e-4 * abs(res.lp_value_usd)
    assert res.primal_usd <= res.value_usd + 1e-9 and res.slots_not_proven == 0

    def window_utility(decide):
        state = kernels.initial_state(p, (1,))
        keys = ("price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
                "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw")
        total = 0.0
        for t in range(start, start + H):
            ex = {k: getattr(exo, k)[0:1, t] for k in keys}
            d = decide(t, state)
            state, o = kernels.step(p, state, exo.arrival_rate[0:1, t], d, ex)
            total += float(o["utility_usd"].sum())
        return total

    def greedy_milp(t, state):  # the one-slot MILP from the current state, applied as the planner does
        from dcsched.baselines.planners import plan_from_solution

        one = window_from_exo(p, exo, 0, start=t, horizon=1)
        one.soc0 = state.soc[0].numpy()
        one.backlog_work0_gpu_s = state.backlog_work_gpu_s[0].numpy()
        one.backlog_energy0_j = state.backlog_energy_j[0].numpy()
        r = solve_window_integer(p, one, f"slot {t}", coef)
        tr, st, fq = plan_from_solution(r, 1, p.num_dcs, p.num_classes, coef.exec_s.shape[1], len(p.freq_levels),
                                        one.arrivals, coef.exec_s)
        return Decision(torch.as_tensor(tr), torch.as_tensor(st), torch.as_tensor(fq), torch.zeros(1, p.num_dcs,
                        dtype=torch.float64))

    gen = torch.Generator().manual_seed(2)
    greedy = window_utility(greedy_milp)
    assert greedy <= res.value_usd + 1e-6 * abs(res.value_usd)
    for _ in range(3):
        assert window_utility(lambda t, s: random_decision(p, 1, gen)) <= res.value_usd


def test_planning_in_the_env_levels_is_what_the_env_pays(energy_day):
    """One slot planned with ``levels=milp`` and applied in the kernels earns the plan's job side
    (revenue - transfer - penalties) exactly: nothing is rounded. (Its energy side differs: the
    one-slot LP may sell the battery's charge, the env's battery follows its rule.) The MILP is
    never worth more than the one-slot LP."""
    from dcsched.baselines.planners import plan_from_solution

    p, exo = energy_day
    coef = level_coefficients(p)
    for t in (60, 200):
        one = window_from_exo(p, exo, 0, start=t, horizon=1)
        r = solve_window_integer(p, one, f"slot {t}", coef)
        assert r.value_usd <= solve_window(p, one, "lp", coef).value_usd + 1e-9
        tr, st, fq = plan_from_solution(r, 1, p.num_dcs, p.num_classes, coef.exec_s.shape[1], len(p.freq_levels),
                                        one.arrivals, coef.exec_s)
        keys = ("price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
                "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw")
        ex = {k: getattr(exo, k)[0:1, t] for k in keys}
        d = Decision(torch.as_tensor(tr), torch.as_tensor(st), torch.as_tensor(fq), torch.zeros(1, p.num_dcs,
                     dtype=torch.float64))
        _, o = kernels.step(p, kernels.initial_state(p, (1,)), exo.arrival_rate[0:1, t], d, ex)
        job_side = sum(float(r.model.c[off:off + count] @ r.x[off:off + count])
                       for off, count, _ in (r.model.blocks[b] for b in ("Yot", "Lo", "Bo", "D")))
        env_job_side = float((o["revenue_usd"] - o["transfer_cost_usd"] - o["penalty_usd"]).sum())
        assert env_job_side == pytest.approx(job_side, rel=1e-6)


def test_an_unknown_level_mode_is_refused():
    from dcsched.eval.policies import make_policy
    from dcsched.config import EnvConfig
    from dcsched.envs import make_env
    from dcsched.errors import ConfigError

    cfg = load_scenario("paper3")
    env = make_env(cfg, EnvConfig(), days=split_days(cfg, "test")[:1], sequential_days=True, stochastic=False)
    with pytest.raises(ConfigError, match="round | milp"):
        make_policy("greedy_myopic:levels=exact", env)


@pytest.mark.slow  # about 4 minutes (288 slot MILPs): in `make test-slow` and CI, not the default suite
def test_solve_integer_levels_writes_the_bound_and_evaluate_reports_its_share(tmp_path):
    import json

    from dcsched.cli import main

    out = tmp_path / "b"
    assert main(["solve", "--scenario", "paper3_energy", "--days", "2023-08-25", "--out", str(out),
                 "--integer-levels"]) == 0
    row = json.loads((out / "bounds.json").read_text())["per_day"][0]
    assert row["integer_primal_usd"] <= row["integer_bound_usd"] < row["lp_bound_usd"]
    assert row["integer_slots_not_proven"] == 0
    assert main(["evaluate", "--scenario", "paper3_energy", "--policy", "local_only", "--days", "2023-08-25",
                 "--out", str(tmp_path / "ev"), "--bounds", str(out / "bounds.json"), "--no-plots"]) == 0
    mean = json.loads((tmp_path / "ev" / "summary.json").read_text())["mean"]
    assert mean["share_of_integer_bound"] * row["integer_bound_usd"] == pytest.approx(mean["utility_usd"])
    assert mean["share_of_bound"] * row["lp_bound_usd"] == pytest.approx(mean["utility_usd"])
