"""The one loader: (scenario, days) -> exogenous tensors [days, T, N, ...].

Hourly series are held constant within the hour. Everything here is real data or derived from
it (PV and wind from weather; price percentiles from the trailing 24 h of prices). A data
centre's ``data`` keys replace its region's shipped series with the user's files
(:mod:`dcsched.data.user_files`); the calendar is the scenario's ``year``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dcsched.data.arrivals import hour_of_day_shape
from dcsched.data.renewables import pv_from_weather, pv_kw_per_kwp, wind_from_weather, wind_kw_per_kw
from dcsched.data.traces import (
    load_carbon_g_per_kwh,
    load_price_usd_per_mwh,
    load_sustaindc_daily_level,
    load_weather,
)
from dcsched.data.regions import REGIONS
from dcsched.data.user_files import days_of_year, hours_of_year, read_series
from dcsched.errors import ConfigError

EXO_KEYS = (
    "price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
    "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw", "local_hour",
)


@dataclass
class Exogenous:
    """Exogenous inputs of a set of days. Every tensor has shape [D, T, N] except
    ``arrival_rate`` [D, T, N, K] (expected jobs per slot by origin and class) and
    ``batch_arrival_rate`` [D, T, N] (expected batch jobs per slot by origin; None without a
    batch class)."""

    days: torch.Tensor  # [D] day-of-year index, 0-based
    price_usd_per_mwh: torch.Tensor
    price_low_usd_per_mwh: torch.Tensor  # charge threshold: trailing-window percentile
    price_high_usd_per_mwh: torch.Tensor  # discharge threshold
    carbon_g_per_kwh: torch.Tensor
    temp_c: torch.Tensor
    pv_kw_per_kwp: torch.Tensor
    wind_kw_per_kw: torch.Tensor
    local_hour: torch.Tensor  # local clock hour of each DC (DST-aware), float
    arrival_rate: torch.Tensor
    # faults (the dc_outage and link_down stresses); None = none
    capacity_frac: torch.Tensor | None = None  # [D, T, N] share of the GPUs that are up (0 in an outage)
    link_up: torch.Tensor | None = None  # [D, T, N(origin), N(dest)] 1 = link usable, 0 = down; diagonal 1
    batch_arrival_rate: torch.Tensor | None = None  # [D, T, N] deferrable batch jobs (scenario.batch.share > 0)

    def to(self, device=None, dtype=None) -> "Exogenous":
        out = {}
        for k, v in self.__dict__.items():
            if v is None:
                out[k] = None
            elif v.is_floating_point():
                out[k] = v.to(device=device, dtype=dtype or v.dtype)
            else:
                out[k] = v.to(device=device)
        return Exogenous(**out)

    def select(self, idx: torch.Tensor) -> "Exogenous":
        return Exogenous(**{k: (None if v is None else v[idx]) for k, v in self.__dict__.items()})

    def faults_at(self, day_idx: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """The kernels' fault entries of slot ``t`` of day ``day_idx`` (long tensors [B]):
        capacity_frac and capacity_frac_next [B, N] (the next slot clamped at the day's last) and
        link_up [B, N, N]; empty without faults (:func:`dcsched.sim.kernels.step`)."""
        if self.capacity_frac is None:
            return {}
        last = self.capacity_frac.shape[1] - 1
        return {"capacity_frac": self.capacity_frac[day_idx, t],
                "capacity_frac_next": self.capacity_frac[day_idx, (t + 1).clamp(max=last)],
                "link_up": self.link_up[day_idx, t]}

    @property
    def has_faults(self) -> bool:
        """True when some slot has a data centre (partly) down or a transfer link down."""
        return bool((self.capacity_frac is not None and (self.capacity_frac != 1).any())
                    or (self.link_up is not None and (self.link_up != 1).any()))


SPLITS = ("test", "train", "fit", "val", "all")  # the day splits a --days may name (env.split: all but val)
SPLITS_ALLOWED = ", ".join(SPLITS) + ", or YYYY-MM-DD,YYYY-MM-DD,..."


def val_day_remainder(cfg) -> int:
    """Validation days: day_of_year % test_day_modulus == this remainder, half a cycle after the
    test days' (with the default modulus 7 and remainder 6: remainder 2, 52 days, one per week)."""
    if cfg.test_day_modulus < 3:
        raise ConfigError(f"scenario '{cfg.name}'", "test_day_modulus",
                          f"{cfg.test_day_modulus} leaves no training day beside the test and validation days "
                          "(the val and fit splits need a modulus of at least 3)", ">= 3")
    return (cfg.test_day_remainder + cfg.test_day_modulus // 2) % cfg.test_day_modulus


def split_days(cfg, split: str) -> list[int]:
    """0-based day indexes of a split of the scenario's year (day_of_year counts from 1):

    - ``test``: day_of_year % test_day_modulus == test_day_remainder (52 days by default);
    - ``val``: the validation days, one remainder half a cycle away (:func:`val_day_remainder`);
    - ``fit``: the training days of a validated study: neither test nor val days (261 by default);
    - ``train``: every day that is not a test day (fit and val; the default training split, kept
      so that every recorded run keeps its days);
    - ``all``: every day.
    """
    num_days = days_of_year(cfg.year)
    doy = np.arange(1, num_days + 1)
    test = doy % cfg.test_day_modulus == cfg.test_day_remainder
    if split == "test":
        mask = test
    elif split == "train":
        mask = ~test
    elif split in ("val", "fit"):
        val = doy % cfg.test_day_modulus == val_day_remainder(cfg)
        mask = val if split == "val" else ~test & ~val
    elif split == "all":
        mask = np.ones(num_days, dtype=bool)
    else:
        raise ConfigError("command line", "days", f"unknown split '{split}'", SPLITS_ALLOWED)
    return np.nonzero(mask)[0].tolist()


def parse_days(cfg, spec: str) -> list[int]:
    """A split name (:data:`SPLITS`) or 'YYYY-MM-DD,YYYY-MM-DD,...' -> 0-based day indexes."""
    if spec in SPLITS:
        return split_days(cfg, spec)
    allowed = SPLITS_ALLOWED
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise ConfigError("command line", "days", f"'{spec}' has an empty entry (no day, or a stray comma)", allowed)
    out = []
    for item in items:
        try:
            ts = pd.Timestamp(item)
        except ValueError as err:
            raise ConfigError("command line", "days", f"cannot parse date '{item}'", allowed) from err
        if ts is pd.NaT:
            raise ConfigError("command line", "days", f"cannot parse date '{item}'", allowed)
        if ts.year != cfg.year:
            raise ConfigError("command line", "days", f"{item} is outside the trace year {cfg.year}")
        if int(ts.dayofyear) - 1 in out:  # a repeated day would weigh twice in every mean
            raise ConfigError("command line", "days", f"{item} is given twice", allowed)
        out.append(int(ts.dayofyear) - 1)
    return out


def day_dates(cfg, days: list[int]) -> list[str]:
    """The calendar dates ("YYYY-MM-DD") of day-of-year indices ``days`` (0 = 1 January) of ``cfg.year``."""
    base = pd.Timestamp(f"{cfg.year}-01-01")
    return [(base + pd.Timedelta(days=d)).strftime("%Y-%m-%d") for d in days]


def _trailing_percentile(hourly: np.ndarray, window_h: int, q: float) -> np.ndarray:
    """q-th percentile of the previous ``window_h`` hours (circular at the start of the year)."""
    padded = np.concatenate([hourly[-window_h:], hourly])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window_h)[: len(hourly)]
    return np.percentile(windows, q, axis=1)


def _local_hours(region_id: str, year: int) -> np.ndarray:
    local = hours_of_year(year).tz_convert(REGIONS[region_id].timezone)
    return (local.hour + local.minute / 60.0).to_numpy(dtype=np.float64)


def _user_file(dc) -> dict[str, str]:
    return {k: v for k, v in (dc.get("data") or {}).items() if v}


def _weather(dc, year: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(weather, PV per kWp, wind per kW) hourly for one DC: its file, else its region's shipped one.
    A weather file's PV uses the region's site coordinates (those of its shipped weather)."""
    files = _user_file(dc)
    if "weather" not in files:
        return load_weather(dc.region), pv_kw_per_kwp(dc.region), wind_kw_per_kw(dc.region)
    w = read_series(files["weather"], "weather", year)
    site = load_weather(dc.region)
    return w, pv_from_weather(w, float(site["latitude"]), float(site["longitude"]), hours_of_year(year)), \
        wind_from_weather(w)


def hourly_year(cfg) -> dict[str, np.ndarray]:
    """Hourly [H, N] arrays of every exogenous series for the scenario's sites (H = hours of cfg.year)."""
    e = cfg.energy
    cols: dict[str, list[np.ndarray]] = {k: [] for k in EXO_KEYS}
    for dc in cfg.dcs:
        files = _user_file(dc)
        price = (read_series(files["prices"], "prices", cfg.year)["price_usd_per_mwh"] if "prices" in files
                 else load_price_usd_per_mwh(dc.region)) * e.price_scale
        cols["price_usd_per_mwh"].append(price)
        cols["price_low_usd_per_mwh"].append(_trailing_percentile(price, e.percentile_window_h, e.charge_percentile))
        cols["price_high_usd_per_mwh"].append(_trailing_percentile(price, e.percentile_window_h, e.discharge_percentile))
        cols["carbon_g_per_kwh"].append(read_series(files["carbon"], "carbon", cfg.year)["carbon_g_per_kwh"]
                                        if "carbon" in files else load_carbon_g_per_kwh(dc.region))
        weather, pv, wind = _weather(dc, cfg.year)
        cols["temp_c"].append(weather["temp_c"])
        cols["pv_kw_per_kwp"].append(pv)
        cols["wind_kw_per_kw"].append(wind)
        cols["local_hour"].append(_local_hours(dc.region, cfg.year))
    return {k: np.stack(v, axis=1) for k, v in cols.items()}


def arrival_rate_hourly(cfg) -> np.ndarray:
    """Expected interactive jobs per slot by origin and class, for every UTC hour of cfg.year:
    [H, N, K]; the interactive mix carries 1 - ``batch.share`` of the arrivals."""
    a = cfg.arrivals
    weights = np.array([dc.arrival_weight for dc in cfg.dcs])  # [N]
    mix = np.array(cfg.classes.mix)  # [K]
    interactive = 1.0 - batch_share_hourly(cfg)  # [H, N] (exactly 1.0 without batch work)
    return a.total_per_slot * weights[None, :, None] * mix[None, None, :] * _hour_shape(cfg)[:, :, None] * interactive[:, :, None]


def batch_share(cfg) -> float:
    """p_b: the share of the arrivals that is deferrable batch work (0 when the scenario has none)."""
    batch = cfg.get("batch")
    return float(batch.share) if batch is not None else 0.0


def batch_share_hourly(cfg) -> np.ndarray:
    """The batch share of each origin for every UTC hour of cfg.year, [H, N]: ``batch.share``, or
    the ``batch_share`` column of a DC's workload file where it has one (only with a batch class:
    a file's column in a scenario without one is refused, naming the key)."""
    share = batch_share(cfg)
    out = np.full((len(hours_of_year(cfg.year)), len(cfg.dcs)), share)
    for n, dc in enumerate(cfg.dcs):
        files = _user_file(dc)
        if "workload" not in files:
            continue
        column = read_series(files["workload"], "workload", cfg.year).get("batch_share")
        if column is None:
            continue
        if share <= 0:
            raise ConfigError(f"scenario '{cfg.name}'", "scenario.batch.share",
                              f"{files['workload']} has a batch_share column but the scenario has no batch class",
                              "a share in (0, 1] (the file's column then sets each hour's share)")
        out[:, n] = column
    return out


def batch_arrival_rate_hourly(cfg) -> np.ndarray:
    """Expected batch jobs per slot by origin, for every UTC hour of cfg.year: [H, N]
    (the batch share of the arrivals, on the same hour-of-day shape as the interactive classes)."""
    weights = np.array([dc.arrival_weight for dc in cfg.dcs])  # [N]
    return cfg.arrivals.total_per_slot * weights[None, :] * batch_share_hourly(cfg) * _hour_shape(cfg)


def _hour_shape(cfg) -> np.ndarray:
    """h_i(t): the relative load of each origin for every UTC hour of cfg.year, [H, N]. A DC with a
    ``data.workload`` file takes its ``relative_load`` (scaled to mean 1 over the year) in place of
    the hour-of-day shape times the day-to-day level."""
    a = cfg.arrivals
    shape = hour_of_day_shape(a.shape, a.smooth_hours, a.floor, a.phase_shift_h)  # [24]
    local_hour = np.stack([_local_hours(dc.region, cfg.year) for dc in cfg.dcs], axis=1)  # [H, N]
    h = shape[np.floor(local_hour).astype(int) % 24]  # [H, N]
    if a.daily_variation == "sustaindc":
        level = np.repeat(load_sustaindc_daily_level(), 24)[:, None]
        h = h * level
    for n, dc in enumerate(cfg.dcs):
        files = _user_file(dc)
        if "workload" in files:
            load = read_series(files["workload"], "workload", cfg.year)["relative_load"]
            h[:, n] = load / load.mean()
    return h


def load_exogenous(cfg, days: list[int], dtype: torch.dtype = torch.float64, device="cpu",
                   stressed: bool = True) -> Exogenous:
    """Exogenous tensors for the given 0-based days: [D, T, N] (arrival_rate [D, T, N, K]).
    ``stressed``: apply the scenario's ``stress`` list (:mod:`dcsched.stress`); False gives the
    unstressed days (the observation normaliser's statistics)."""
    if not days:
        raise ConfigError("command line", "days", "no days selected")
    num_days = days_of_year(cfg.year)
    bad = [d for d in days if not 0 <= d < num_days]
    if bad:
        raise ConfigError("command line", "days", f"day index {bad[0]} outside [0, {num_days}) of {cfg.year}")
    hourly = hourly_year(cfg)
    hourly["arrival_rate"] = arrival_rate_hourly(cfg)
    if batch_share(cfg) > 0:
        hourly["batch_arrival_rate"] = batch_arrival_rate_hourly(cfg)
    T = cfg.slots_per_day
    slot_hour = (np.arange(T) * cfg.slot_s // 3600).astype(int)  # [T]
    hours_per_day = int(T * cfg.slot_s // 3600)
    if hours_per_day != 24:
        raise ConfigError("scenario", "slots_per_day", "slot_s * slots_per_day must equal 24 h")
    idx = np.asarray(days)[:, None] * 24 + slot_hour[None, :]  # [D, T]
    tensors = {}
    for key, arr in hourly.items():
        tensors[key] = torch.as_tensor(arr[idx], dtype=dtype, device=device)
    # sub-hour local time for the observation
    frac = torch.as_tensor((np.arange(T) * cfg.slot_s % 3600) / 3600.0, dtype=dtype, device=device)
    tensors["local_hour"] = (tensors["local_hour"] + frac[None, :, None]) % 24
    if stressed and cfg.get("stress"):
        from dcsched.stress import apply_stresses

        N = len(cfg.dcs)
        tensors["capacity_frac"] = torch.ones(len(days), T, N, dtype=dtype, device=device)
        tensors["link_up"] = torch.ones(len(days), T, N, N, dtype=dtype, device=device)
        hour_of_day = torch.as_tensor(np.arange(T) * cfg.slot_s / 3600.0, dtype=dtype, device=device)
        apply_stresses(list(cfg.stress), tensors, hour_of_day, N)
    exo = Exogenous(days=torch.as_tensor(days, device=device), **tensors)
    if not exo.has_faults:  # no fault: the kernels' fault-free path (bit for bit as before faults existed)
        exo.capacity_frac = exo.link_up = None
    return exo
