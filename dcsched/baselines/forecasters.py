"""Forecasts of the exogenous inputs for the planners (a registry kind: ``forecaster``).

A forecaster turns the true window of the next H slots (what a perfect oracle would see) into
what a planner at slot t may use. Slot 0 of a window is the present: its prices, weather and
renewables and the arrivals observed in it are known to every forecaster; slots 1..H-1 are the
forecast. Registered:

- ``perfect``: the true future (an oracle; named as such, never a default).
- ``persistence``: every series held at its present value (MPC's default).
- ``seasonal_naive``: the same slots of the previous day (Dec 31 of the same year for Jan 1).
- ``noisy_oracle``: the true future times (1 + e), e ~ N(0, ``error``^2) per slot, series and DC,
  for prices, arrivals, PV and wind (clipped at 0); temperature and carbon intensity are left exact. Seeded by the
  forecaster's seed, the day and the slot, so a rerun plans the same.

Faults (the dc_outage and link_down stresses) are known in the present slot; ``persistence``
holds them over the window, ``seasonal_naive`` takes yesterday's (none), ``perfect`` and
``noisy_oracle`` know the fault windows exactly (an announced outage).
"""

from __future__ import annotations

import numpy as np

from dcsched.baselines.lp_model import Window
from dcsched.registry import FORECASTERS

NOISY_SERIES = ("arrivals", "batch_arrivals", "price_usd_per_mwh", "pv_kw", "wind_kw")
ALL_SERIES = ("arrivals", "batch_arrivals", "price_usd_per_mwh", "temp_c", "pv_kw", "wind_kw", "carbon_g_per_kwh")
FAULT_SERIES = ("capacity_frac", "link_up")


class Forecaster:
    """Base: binds to an env once; ``forecast`` returns the window a planner plans on."""

    name = "forecaster"
    sees_the_future = False  # True: the forecast is built from the true future (an oracle)

    def __init__(self, error: float = 0.1, seed: int = 0):
        self.error, self.seed = float(error), int(seed)

    def bind(self, env) -> "Forecaster":
        self.env = env
        return self

    def forecast(self, truth: Window, day: int, t: int) -> Window:  # pragma: no cover - abstract
        """``truth``: the true window from slot ``t`` of exo day index ``day``, with the present
        arrivals in row 0 (modified in place and returned)."""
        raise NotImplementedError


@FORECASTERS.register("perfect", "the true future (an oracle, for bounds and diagnostics)")
class Perfect(Forecaster):
    name = "perfect"
    sees_the_future = True

    def forecast(self, truth: Window, day: int, t: int) -> Window:
        return truth


@FORECASTERS.register("persistence", "every series held at its present value (MPC's default)")
class Persistence(Forecaster):
    name = "persistence"

    def forecast(self, truth: Window, day: int, t: int) -> Window:
        H = truth.arrivals.shape[0]
        for name in ALL_SERIES + FAULT_SERIES:
            if getattr(truth, name) is not None:
                setattr(truth, name, np.repeat(getattr(truth, name)[:1], H, axis=0))
        return truth


@FORECASTERS.register("seasonal_naive", "the same slots of the previous day")
class SeasonalNaive(Forecaster):
    name = "seasonal_naive"

    def bind(self, env) -> "SeasonalNaive":
        super().bind(env)
        cfg = getattr(env, "scenario_cfg", None)
        if cfg is None:
            raise ValueError("seasonal_naive needs an env built by dcsched.envs.make_env (it reads the previous days)")
        from dcsched.data.exogenous import load_exogenous
        from dcsched.data.user_files import days_of_year

        days = [(int(d) - 1) % days_of_year(cfg.year) for d in env.exo.days]
        # the previous days as they were: a stress of the evaluated day is a surprise, not in yesterday
        self.yesterday = load_exogenous(cfg, days, dtype=env.exo.price_usd_per_mwh.dtype, stressed=False)
        return self

    def forecast(self, truth: Window, day: int, t: int) -> Window:
        from dcsched.baselines.lp_solve import window_from_exo

        H = truth.arrivals.shape[0]
        past = window_from_exo(self.env.params, self.yesterday, day, t, H, ignore_batch=True)
        if truth.batch_arrivals is not None:  # yesterday's batch arrivals of the same slots
            past.batch_arrivals = self.yesterday.batch_arrival_rate[day, t : t + H].detach().double().cpu().numpy()
        for name in ALL_SERIES:
            now = getattr(truth, name)
            if now is not None:
                setattr(truth, name, np.concatenate([now[:1], getattr(past, name)[1:]], axis=0))
        for name in FAULT_SERIES:  # yesterday had no fault: all up after the present slot
            now = getattr(truth, name)
            if now is not None:
                setattr(truth, name, np.concatenate([now[:1], np.ones_like(now[1:])], axis=0))
        return truth


@FORECASTERS.register("noisy_oracle", "the true future with a relative Gaussian error (mpc:forecast=noisy_oracle,"
                                      "forecast_error=0.2)")
class NoisyOracle(Forecaster):
    name = "noisy_oracle"
    sees_the_future = True

    def forecast(self, truth: Window, day: int, t: int) -> Window:
        rng = np.random.default_rng([self.seed, int(self.env.exo.days[day]), int(t)])
        for name in NOISY_SERIES:
            x = getattr(truth, name)
            if x is None:  # batch arrivals in a scenario without batch work
                continue
            noisy = x * (1.0 + self.error * rng.standard_normal(x.shape))
            if name != "price_usd_per_mwh":
                noisy = np.clip(noisy, 0.0, None)
            noisy[0] = x[0]
            setattr(truth, name, noisy)
        return truth


def make_forecaster(name: str, env, error: float = 0.1, seed: int = 0) -> Forecaster:
    return FORECASTERS.get(name)(error=error, seed=seed).bind(env)
