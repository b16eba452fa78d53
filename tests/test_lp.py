"""The perfect-foresight LP: consistency with the env, the bound property, errors."""

import dataclasses

import numpy as np
import pytest
import torch

from dcsched.baselines.lp_solve import LPSolveError, solve_window, window_from_exo
from dcsched.baselines.lp_model import build_lp, level_coefficients
from dcsched.baselines.lp_replay import replay_day
from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import load_exogenous, split_days
from dcsched.envs import make_env
from dcsched.eval.rollout import run_days
from dcsched.eval.policies import make_policy
from dcsched.sim.kernels import Decision
from dcsched.sim.params import build_params
from helpers import assert_lp_contains, random_decision


@pytest.fixture(scope="module")
def setup():
    cfg = load_scenario("paper3")
    p = build_params(cfg, dtype=torch.float64)
    days = split_days(cfg, "test")[:2]
    exo = load_exogenous(cfg, days, dtype=torch.float64)
    return cfg, p, days, exo


def local_decide(p):
    N, K = p.num_dcs, p.num_classes
    eye = torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(1, N, N, K).clone()
    return lambda t, s: Decision(eye, torch.full((1, N, K), 6), torch.full((1, N), len(p.freq_levels) - 1))


@pytest.mark.parametrize("which", ["local_only", "random"])
def test_lp_at_env_trajectory_reproduces_env_utility(setup, which):
    cfg, p, days, exo = setup
    gen = torch.Generator().manual_seed(3)
    decide = local_decide(p) if which == "local_only" else (lambda t, s: random_decision(p, 1, gen))
    slots = replay_day(p, exo, 0, decide)
    model = build_lp(p, window_from_exo(p, exo, 0))
    assert_lp_contains(model, slots, len(p.freq_levels))
    if which == "random":
        assert sum(float(s["flow_backlogged"].sum()) for s in slots) > 0, "exercise the backlog path"


@pytest.mark.slow  # about 66 s: in `make test-slow` and CI, not the default suite (15-minute line)
def test_bound_dominates_every_policy_on_test_days(setup):
    cfg, p, days, exo = setup
    env = make_env(cfg, EnvConfig(dtype="float64"), days=days, sequential_days=True, stochastic=False)
    coef = level_coefficients(p)
    bounds = np.array([solve_window(p, window_from_exo(p, exo, j), f"day {d}", coef).value_usd
                       for j, d in enumerate(days)])
    results = {}
    for name in ("random", "local_only", "centre_action", "greedy_myopic", "lp_oracle", "mpc:every=12"):
        out = run_days(env, make_policy(name, env))
        results[name] = out["utility_usd"].sum(axis=(1, 2))
        assert (results[name] <= bounds + 1e-6 * np.abs(bounds)).all(), (name, results[name], bounds)
    assert (results["lp_oracle"] >= 0.9 * bounds).all(), "the rounded oracle should be close to its bound"
    assert (results["lp_oracle"] > results["local_only"]).all()


def test_no_transfer_bound_is_not_higher(setup):
    cfg, p, days, exo = setup
    w = window_from_exo(p, exo, 0)
    with_transfer = solve_window(p, w, "t").value_usd
    no_transfer = solve_window(dataclasses.replace(p, allow_transfer=False), w, "n").value_usd
    assert no_transfer <= with_transfer + 1e-6 * abs(with_transfer)


def test_infeasible_lp_names_day_and_scenario(setup):
    cfg, p, days, exo = setup
    w = window_from_exo(p, exo, 0)
    w.soc0 = np.full(p.num_dcs, 0.99)  # above soc_max, cannot be discharged in one slot
    with pytest.raises(LPSolveError, match="scenario 'paper3', day 2023-01-06.*infeasible"):
        solve_window(p, w, "scenario 'paper3', day 2023-01-06")


def test_solve_cli_writes_bounds(tmp_path):
    from dcsched.cli import main

    assert main(["solve", "--scenario", "paper3", "--days", "2023-01-06", "--out", str(tmp_path)]) == 0
    import json

    data = json.loads((tmp_path / "bounds.json").read_text())
    assert data["per_day"][0]["lp_bound_usd"] > 0 and data["per_day"][0]["solve_s"] > 0
    assert main(["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--out", str(tmp_path / "ev"),
                 "--bounds", str(tmp_path / "bounds.json"), "--no-plots"]) == 0
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert 0 < summary["mean"]["share_of_bound"] < 1
    with pytest.raises(SystemExit) as exit_:
        main(["solve", "--scenario", "paper3", "--workers", "0"])
    assert exit_.value.code == 2


def test_lp_consistent_and_bounded_when_selling_at_negative_prices():
    """With curtailment off the env sells at negative prices; the LP must contain that
    trajectory (same value) and stay bounded (buy/sell arbitrage limited physically)."""
    cfg = load_scenario("paper3", ["energy.curtail_at_negative_price=false"])
    p = build_params(cfg, dtype=torch.float64)
    exo = load_exogenous(cfg, [100], dtype=torch.float64)
    exo.price_usd_per_mwh[0, :60] = -30.0
    gen = torch.Generator().manual_seed(1)
    slots = replay_day(p, exo, 0, lambda t, s: random_decision(p, 1, gen))
    utility = sum(float(s["utility_usd"].sum()) for s in slots)
    w = window_from_exo(p, exo, 0)
    model = build_lp(p, w)
    assert_lp_contains(model, slots, len(p.freq_levels))
    assert solve_window(p, w, "negative prices").value_usd >= utility


def test_greedy_with_onehot_transfers_sends_each_class_whole_to_its_largest_share(setup):
    """greedy_myopic:transfer=onehot keeps the plan's steps and frequency and routes each (origin,
    class) whole to the DC of the plan's largest share; a wrong mode is refused."""
    from dcsched.errors import ConfigError

    cfg, p, days, exo = setup
    env = make_env(cfg, EnvConfig(), days=days, sequential_days=True, stochastic=False)
    td = env.reset()
    split = make_policy("greedy_myopic", env).decide(td)
    onehot = make_policy("greedy_myopic:transfer=onehot", env).decide(td)
    x = onehot.transfer
    assert ((x == 0) | (x == 1)).all() and torch.equal(x.sum(-2), torch.ones_like(x.sum(-2)))
    assert torch.equal(x.argmax(-2), split.transfer.argmax(-2))
    assert torch.equal(onehot.steps_idx, split.steps_idx) and torch.equal(onehot.freq_idx, split.freq_idx)
    assert not torch.equal(split.transfer, x), "the first slot's plan splits some class (else this test shows nothing)"
    quarters = make_policy("greedy_myopic:transfer=chunks,chunks=4", env).decide(td).transfer
    assert torch.equal(quarters * 4, (quarters * 4).round()) and ((quarters - split.transfer).abs() < 0.25).all()
    assert torch.equal(make_policy("greedy_myopic:transfer=chunks,chunks=1", env).decide(td).transfer, x)
    with pytest.raises(ConfigError, match="split | onehot | chunks"):
        make_policy("greedy_myopic:transfer=round", env)


@pytest.mark.slow  # about 30 s (two spawned interpreters): in `make test-slow` and CI
def test_days_solved_in_processes_equal_one_process():
    """workers > 1 spreads the days over spawned processes: the same bound for every day, returned
    in the order asked, each reported once to on_solved."""
    from dcsched.baselines.lp_bound import solve_days

    cfg = load_scenario("paper3")
    days = split_days(cfg, "test")[:2]
    one = solve_days(cfg, days)
    seen = {}
    two = solve_days(cfg, days, workers=2, on_solved=lambda d, r: seen.setdefault(d, r.value_usd))
    assert list(two) == days and seen.keys() == set(days)
    for d in days:
        assert two[d].value_usd == one[d].value_usd == seen[d]
    assert one[days[0]].value_usd != one[days[1]].value_usd, "two different days"
    with pytest.raises(ValueError, match="keep_solution"):
        solve_days(cfg, days, workers=2, keep_solution=True)
