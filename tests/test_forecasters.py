"""Forecasters of the planners: what each may see of the future, and MPC on each."""

import numpy as np
import pytest
import torch

from dcsched.eval.policies import make_policy
from dcsched.baselines.forecasters import ALL_SERIES, make_forecaster
from dcsched.baselines.lp_solve import window_from_exo
from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import load_exogenous, split_days
from dcsched.envs import make_env
from dcsched.errors import UnknownComponentError

H, T0 = 12, 100  # a 12-slot window from slot 100


@pytest.fixture(scope="module")
def env():
    cfg = load_scenario("paper3")
    return make_env(cfg, EnvConfig(dtype="float64"), days=split_days(cfg, "test")[:2], sequential_days=True,
                    stochastic=False)


def _truth(env, day=1):
    w = window_from_exo(env.params, env.exo, day, T0, H)
    w.arrivals = w.arrivals.copy()
    w.arrivals[0] *= 1.3  # the present slot's observed arrivals differ from their expectation
    return w


def test_every_forecaster_keeps_the_present_and_differs_only_in_the_future(env):
    truth = _truth(env)
    perfect = make_forecaster("perfect", env).forecast(_truth(env), 1, T0)
    persistence = make_forecaster("persistence", env).forecast(_truth(env), 1, T0)
    seasonal = make_forecaster("seasonal_naive", env).forecast(_truth(env), 1, T0)
    noisy = make_forecaster("noisy_oracle", env, error=0.2, seed=4).forecast(_truth(env), 1, T0)
    cfg = env.scenario_cfg
    day_before = int(env.exo.days[1]) - 1
    past = window_from_exo(env.params, load_exogenous(cfg, [day_before], dtype=torch.float64), 0, T0, H)
    for name in ALL_SERIES:
        true = getattr(truth, name)
        if true is None:  # batch arrivals: this scenario has no batch work (tests/test_batch.py)
            assert all(getattr(w, name) is None for w in (perfect, persistence, seasonal, noisy))
            continue
        for w in (perfect, persistence, seasonal, noisy):
            np.testing.assert_array_equal(getattr(w, name)[0], true[0])
        np.testing.assert_array_equal(getattr(perfect, name), true)
        np.testing.assert_array_equal(getattr(persistence, name), np.repeat(true[:1], H, axis=0))
        np.testing.assert_array_equal(getattr(seasonal, name)[1:], getattr(past, name)[1:])
    assert not np.array_equal(noisy.price_usd_per_mwh, truth.price_usd_per_mwh)
    np.testing.assert_array_equal(noisy.temp_c, truth.temp_c)
    assert (noisy.arrivals >= 0).all() and (noisy.pv_kw >= 0).all() and (noisy.wind_kw >= 0).all()
    rel = noisy.price_usd_per_mwh[1:] / truth.price_usd_per_mwh[1:] - 1
    assert 0.1 < rel.std() < 0.3  # about the set relative error of 0.2
    again = make_forecaster("noisy_oracle", env, error=0.2, seed=4).forecast(_truth(env), 1, T0)
    np.testing.assert_array_equal(again.price_usd_per_mwh, noisy.price_usd_per_mwh)
    exact = make_forecaster("noisy_oracle", env, error=0.0).forecast(_truth(env), 1, T0)
    np.testing.assert_array_equal(exact.price_usd_per_mwh, truth.price_usd_per_mwh)


def test_mpc_takes_any_registered_forecaster_and_refuses_others(env):
    td = env.reset()
    decisions = {f: make_policy(f"mpc:every=12,forecast={f}", env).decide(td) for f in
                 ("perfect", "persistence", "seasonal_naive", "noisy_oracle")}
    for d in decisions.values():
        torch.testing.assert_close(d.transfer.sum(-2), torch.ones_like(d.transfer.sum(-2)))
    with pytest.raises(UnknownComponentError, match="persistence"):
        make_policy("mpc:forecast=crystal_ball", env)
    bare = make_env(env.scenario_cfg, EnvConfig(), days=[5], sequential_days=True)
    del bare.scenario_cfg
    with pytest.raises(ValueError, match="make_env"):
        make_policy("mpc:forecast=seasonal_naive", bare)
