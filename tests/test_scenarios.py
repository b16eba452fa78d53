"""Scenario properties: the tuned G_n, the energy-matters scale, any N."""

import pytest

from dcsched.baselines.rules import LocalOnly
from dcsched.config import EnvConfig, load_scenario
from dcsched.envs import make_env
from dcsched.eval.rollout import run_days
from dcsched.sim.calibration import capacity_report, energy_revenue_ratio, revenue_scale_for_energy_share


def test_paper3_gpu_tuning_property(paper3):
    r = capacity_report(paper3)
    assert min(r["peak_violation_share"][:2]) >= 0.20, "ASPs 1-2 must violate >= 20 % at peak (MODEL.md 2)"
    assert r["joint_capacity_over_total_peak"] >= 1.2, "the DCs together serve 1.2x the peak"


def test_paper3_energy_scale_is_the_computed_one():
    base = load_scenario("paper3")
    energy = load_scenario("paper3_energy")
    assert energy.revenue_scale == pytest.approx(revenue_scale_for_energy_share(base, 0.25), rel=1e-3)
    assert energy_revenue_ratio(energy)["energy_share_of_revenue"] == pytest.approx(0.25, rel=1e-3)
    assert energy_revenue_ratio(base)["energy_share_of_revenue"] < 0.01


def test_global8_runs_one_day():
    cfg = load_scenario("global8")
    assert len(cfg.dcs) == 8
    env = make_env(cfg, EnvConfig(dtype="float64"), days=[5], sequential_days=True, stochastic=False)
    out = run_days(env, LocalOnly().bind(env))
    assert out["utility_usd"].shape == (1, 288, 8)
    assert abs(out["arrivals"].sum() - (out["on_time"].sum() + out["late"].sum() + out["dropped"].sum())) < 1e-6


def test_any_n_from_a_user_file(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(
        "name: two\ndescription: two sites\ndcs:\n"
        + "".join(
            f"  - {{region: {r}, model: sdxl, num_gpus: 20, tau_step_s: 0.1, tau_fixed_s: 0.1, energy_step_j: 40,"
            f" energy_fixed_j: 30, idle_power_w: 60, price_usd_per_image: 0.01, arrival_weight: 0.5}}\n"
            for r in ("DE-LU", "SG"))
    )
    cfg = load_scenario(str(path))
    env = make_env(cfg, EnvConfig(num_envs=3))
    td = env.rollout(5, break_when_any_done=False)
    assert td["next", "outcome", "utility_usd"].shape == (3, 5, 2)
