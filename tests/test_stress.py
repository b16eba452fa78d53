"""Stress scenarios: each rewrites exactly its inputs, in its window, for env and LP alike."""

import pytest
import torch

from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import load_exogenous
from dcsched.envs import make_env
from dcsched.errors import ConfigError
from dcsched.registry import STRESSES

DAYS = [5, 187]  # a winter and a summer test day
KEYS = ("price_usd_per_mwh", "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw", "arrival_rate", "carbon_g_per_kwh",
        "price_low_usd_per_mwh", "price_high_usd_per_mwh", "local_hour")


@pytest.fixture(scope="module")
def base():
    return load_exogenous(load_scenario("paper3"), DAYS)


def _stressed(*specs):
    quoted = ",".join(f'"{s}"' for s in specs)  # quotes keep each stress's own commas inside it
    return load_exogenous(load_scenario("paper3", [f"stress=[{quoted}]"]), DAYS)


def _changed(a, b):
    return {k for k in KEYS if not torch.equal(getattr(a, k), getattr(b, k))}


def test_every_registered_stress_is_covered_here():
    assert set(STRESSES.names()) == {"price_spike", "heatwave", "demand_surge", "renewable_drought"} | {
        "dc_outage", "link_down"}  # the faults: tests/test_faults.py


def test_price_spike_multiplies_prices_in_its_window_only(base):
    s = _stressed("price_spike:factor=4,start_h=17,hours=2,dc=1")
    assert _changed(base, s) == {"price_usd_per_mwh"}  # battery thresholds stay the unstressed ones
    hour = torch.arange(288) * 300 / 3600
    win = (hour >= 17) & (hour < 19)
    torch.testing.assert_close(s.price_usd_per_mwh[:, win, 1], 4 * base.price_usd_per_mwh[:, win, 1])
    assert torch.equal(s.price_usd_per_mwh[:, ~win], base.price_usd_per_mwh[:, ~win])
    assert torch.equal(s.price_usd_per_mwh[..., [0, 2]], base.price_usd_per_mwh[..., [0, 2]])


def test_heatwave_surge_and_drought_touch_only_their_inputs(base):
    heat = _stressed("heatwave:delta_c=7")
    assert _changed(base, heat) == {"temp_c"}
    torch.testing.assert_close(heat.temp_c, base.temp_c + 7)
    surge = _stressed("demand_surge")  # x2, 12:00-15:00 UTC, every origin
    assert _changed(base, surge) == {"arrival_rate"}
    hour = torch.arange(288) * 300 / 3600
    win = (hour >= 12) & (hour < 15)
    torch.testing.assert_close(surge.arrival_rate[:, win], 2 * base.arrival_rate[:, win])
    assert torch.equal(surge.arrival_rate[:, ~win], base.arrival_rate[:, ~win])
    dry = _stressed("renewable_drought")
    assert _changed(base, dry) == {"pv_kw_per_kwp", "wind_kw_per_kw"}
    assert (dry.pv_kw_per_kwp == 0).all() and (dry.wind_kw_per_kw == 0).all() and (base.pv_kw_per_kwp > 0).any()
    both = _stressed("heatwave:delta_c=7", "renewable_drought")  # stresses compose
    assert torch.equal(both.temp_c, heat.temp_c) and torch.equal(both.pv_kw_per_kwp, dry.pv_kw_per_kwp)


@pytest.mark.parametrize("spec, message", [
    ("price_spiek", "did you mean 'price_spike'"),
    ("price_spike:size=3", "has no option 'size'"),
    ("price_spike:factor=big", "'big' is not a number"),
    ("heatwave:dc=5", "not a data centre index"),
    ("demand_surge:hours=0", "hours > 0"),
])
def test_a_bad_stress_is_refused_with_the_key(spec, message):
    with pytest.raises(ConfigError, match="scenario.stress") as err:
        load_scenario("paper3", [f'stress=["{spec}"]'])
    assert message in str(err.value)


def test_the_env_the_bound_and_the_hash_see_the_stress(base):
    """The env plays the stressed day but normalises observations as without the stress; the
    LP bound of a price-spike day is lower; no stress hashes as before the key existed."""
    from omegaconf import OmegaConf

    from dcsched.baselines.lp_bound import bound_scenario_hash
    from dcsched.baselines.lp_solve import solve_window, window_from_exo
    from dcsched.config import to_container
    from dcsched.sim.params import build_params

    plain_cfg = load_scenario("paper3_energy")
    spike_cfg = load_scenario("paper3_energy", ['stress=["price_spike:factor=10,start_h=0,hours=24"]'])
    plain = make_env(plain_cfg, EnvConfig(), days=DAYS, sequential_days=True)
    spiked = make_env(spike_cfg, EnvConfig(), days=DAYS, sequential_days=True)
    assert torch.equal(plain._obs_mean, spiked._obs_mean) and torch.equal(plain._obs_std, spiked._obs_std)
    torch.testing.assert_close(spiked.exo.price_usd_per_mwh, 10 * plain.exo.price_usd_per_mwh)
    p = build_params(plain_cfg, dtype=torch.float64)
    value = {name: solve_window(p, window_from_exo(p, env.exo.to(dtype=torch.float64), 0), name).value_usd
             for name, env in (("plain", plain), ("spike", spiked))}
    assert value["spike"] < value["plain"]
    older = to_container(plain_cfg)
    del older["stress"]
    assert bound_scenario_hash(plain_cfg) == bound_scenario_hash(OmegaConf.create(older))
    assert bound_scenario_hash(spike_cfg) != bound_scenario_hash(plain_cfg)


def test_the_stress_experiment_covers_every_registered_stress():
    from dcsched.experiments.spec import load_experiment

    used = {o.split("[")[1].split("]")[0].split(":")[0] for s in load_experiment("stress").settings
            for o in (s.get("overrides") or [])}
    assert used == set(STRESSES.names())
