"""Per-kW PV and wind output from real weather.

PV (pvlib): clear-sky GHI (Haurwitz) at each hour's midpoint, attenuated by cloud cover with
the Kasten-Czeplak relation GHI = GHI_clear (1 - 0.75 (c/100)^3.4), split into DNI/DHI by
Erbs, transposed onto a fixed plane tilted at the latitude and facing the equator
(isotropic sky), cell temperature by the Faiman model, DC power by PVWatts (gamma -0.4 %/K),
then 14 % system losses (PVWatts default). Output in kW per kWp, in [0, 1].

Wind: the 10 m wind speed is extrapolated to a 100 m hub with the power law (alpha = 1/7),
then a generic class-II turbine curve: cut-in 3 m/s, rated 12 m/s, cut-out 25 m/s, cubic in
between. Output in kW per kW of rated capacity, in [0, 1].
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib

from dcsched.data.traces import UTC_INDEX_2023, load_weather

PV_SYSTEM_LOSSES = 0.14
PV_GAMMA_PDC_PER_K = -0.004
WIND_HUB_HEIGHT_M = 100.0
WIND_SHEAR_ALPHA = 1.0 / 7.0
WIND_CUT_IN_MS = 3.0
WIND_RATED_MS = 12.0
WIND_CUT_OUT_MS = 25.0


@lru_cache(maxsize=None)
def pv_kw_per_kwp(region_id: str) -> np.ndarray:
    """Hourly PV output per kWp installed, UTC 2023. Shape [8760], values in [0, 1]."""
    w = load_weather(region_id)
    return pv_from_weather(w, float(w["latitude"]), float(w["longitude"]), UTC_INDEX_2023)


def pv_from_weather(w: dict[str, np.ndarray], lat: float, lon: float, hours: pd.DatetimeIndex) -> np.ndarray:
    """PV output per kWp for the hourly weather ``w`` (temp_c, cloud_pct, wind_10m_ms, each [H])
    at (lat, lon) over the UTC ``hours`` [H]. Shape [H], values in [0, 1]."""
    times = hours + pd.Timedelta(minutes=30)
    solpos = pvlib.solarposition.get_solarposition(times, lat, lon)
    clear = pvlib.clearsky.haurwitz(solpos["apparent_zenith"])["ghi"].to_numpy()
    cloud = w["cloud_pct"] / 100.0
    ghi = clear * (1.0 - 0.75 * cloud**3.4)
    erbs = pvlib.irradiance.erbs(ghi, solpos["zenith"].to_numpy(), times)
    tilt = abs(lat)
    azimuth = 180.0 if lat >= 0 else 0.0
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, solpos["apparent_zenith"].to_numpy(), solpos["azimuth"].to_numpy(),
        dni=erbs["dni"], ghi=ghi, dhi=erbs["dhi"], model="isotropic",
    )["poa_global"]
    poa = np.nan_to_num(np.asarray(poa, dtype=np.float64), nan=0.0).clip(min=0.0)
    wind_ms = w["wind_10m_ms"]
    cell_c = pvlib.temperature.faiman(poa, w["temp_c"], wind_ms)
    dc = pvlib.pvsystem.pvwatts_dc(poa, cell_c, pdc0=1.0, gamma_pdc=PV_GAMMA_PDC_PER_K)
    out = np.asarray(dc, dtype=np.float64) * (1.0 - PV_SYSTEM_LOSSES)
    return out.clip(0.0, 1.0)


def wind_power_curve(hub_speed_ms: np.ndarray) -> np.ndarray:
    """Generic turbine power curve, kW per kW rated, for hub-height wind speed in m/s."""
    v = np.asarray(hub_speed_ms, dtype=np.float64)
    frac = (v**3 - WIND_CUT_IN_MS**3) / (WIND_RATED_MS**3 - WIND_CUT_IN_MS**3)
    out = np.where(v < WIND_CUT_IN_MS, 0.0, np.where(v < WIND_RATED_MS, frac, 1.0))
    return np.where(v >= WIND_CUT_OUT_MS, 0.0, out)


@lru_cache(maxsize=None)
def wind_kw_per_kw(region_id: str) -> np.ndarray:
    """Hourly wind output per kW rated, UTC 2023. Shape [8760], values in [0, 1]."""
    return wind_from_weather(load_weather(region_id))


def wind_from_weather(w: dict[str, np.ndarray]) -> np.ndarray:
    """Wind output per kW rated for the hourly 10 m wind speed ``w["wind_10m_ms"]`` [H]. Shape [H]."""
    hub = w["wind_10m_ms"] * (WIND_HUB_HEIGHT_M / 10.0) ** WIND_SHEAR_ALPHA
    return wind_power_curve(hub)
