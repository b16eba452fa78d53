"""Readers of the shipped real traces. Each returns one validated hourly UTC series for 2023.

Every reader checks: the expected 8760 hourly rows, a strictly increasing UTC index without
gaps, no NaN, and a plausible range. A failure raises :class:`DataError` naming file and column.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dcsched.data.checked import read_csv, read_json, verify_shipped
from dcsched.data.regions import RAW_DIR, REGIONS, Region
from dcsched.errors import ConfigError, DataError

HOURS_2023 = 8760
UTC_INDEX_2023 = pd.date_range("2023-01-01 00:00", periods=HOURS_2023, freq="h", tz="UTC")


def region(region_id: str) -> Region:
    if region_id not in REGIONS:
        raise ConfigError("scenario", "dcs.*.region", f"unknown region '{region_id}'", ", ".join(REGIONS))
    return REGIONS[region_id]


def validate_series(
    values: np.ndarray, index: pd.DatetimeIndex, path: Path, column: str, lo: float, hi: float
) -> np.ndarray:
    """Check a series against the hourly 2023 UTC calendar, NaN and a plausible [lo, hi] range."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != HOURS_2023 or len(index) != HOURS_2023:
        raise DataError(f"{path}: column '{column}': expected {HOURS_2023} hourly rows, found {len(values)}")
    steps = index[1:] - index[:-1]
    if not (steps > pd.Timedelta(0)).all():
        raise DataError(f"{path}: column '{column}': UTC index is not strictly increasing")
    if not (steps == pd.Timedelta(hours=1)).all():
        gap = index[1:][steps != pd.Timedelta(hours=1)][0]
        raise DataError(f"{path}: column '{column}': gap in the hourly UTC index at {gap}")
    if np.isnan(values).any():
        first = index[np.isnan(values)][0]
        raise DataError(f"{path}: column '{column}': NaN at {first}")
    if values.min() < lo or values.max() > hi:
        raise DataError(
            f"{path}: column '{column}': values in [{values.min():.3g}, {values.max():.3g}] "
            f"outside the plausible range [{lo}, {hi}]"
        )
    return values


def _utc_index(df: pd.DataFrame, path: Path) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(df["Datetime (UTC)"], utc=True))
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: column 'Datetime (UTC)': unparsable timestamps ({err})") from err


@lru_cache(maxsize=None)
def load_price_usd_per_mwh(region_id: str) -> np.ndarray:
    """Hourly wholesale price, $/MWh, UTC 2023 (negative prices kept). Shape [8760]."""
    r = region(region_id)
    df = read_csv(r.price_path, ("Datetime (UTC)", "Price (USD/MWh)"), numeric=("Price (USD/MWh)",))
    index = _utc_index(df, r.price_path)
    return validate_series(df["Price (USD/MWh)"].to_numpy(), index, r.price_path, "Price (USD/MWh)", -1000, 20000)


@lru_cache(maxsize=None)
def load_carbon_g_per_kwh(region_id: str) -> np.ndarray:
    """Hourly direct grid carbon intensity, gCO2eq/kWh, UTC 2023. Shape [8760]."""
    r = region(region_id)
    col = "Carbon Intensity gCO₂eq/kWh (direct)"
    df = read_csv(r.carbon_path, ("Datetime (UTC)", col), numeric=(col,))
    index = _utc_index(df, r.carbon_path)
    return validate_series(df[col].to_numpy(), index, r.carbon_path, col, 0, 1500)


@lru_cache(maxsize=None)
def load_weather(region_id: str) -> dict[str, np.ndarray]:
    """Hourly weather in UTC 2023: temp_c, cloud_pct, wind_10m_ms, plus latitude/longitude.

    Open-Meteo returns one regular hourly sequence in local clock time with one fixed
    ``utc_offset_seconds`` for the whole year; UTC = local - offset. The few UTC hours of 2023
    outside the local year (at its start or end) are filled with the value 24 h later/earlier
    (same hour of day), and counted in ``filled_hours``.
    """
    r = region(region_id)
    keys = ("utc_offset_seconds", "latitude", "longitude", "hourly.time", "hourly.temperature_2m",
            "hourly.cloudcover", "hourly.windspeed_10m")
    data = read_json(r.weather_path, keys)
    hourly = data["hourly"]
    lengths = {k: len(hourly[k]) for k in ("time", "temperature_2m", "cloudcover", "windspeed_10m")}
    if len(set(lengths.values())) != 1:
        raise DataError(f"{r.weather_path}: hourly series of different lengths {lengths}")
    try:
        local = pd.DatetimeIndex(pd.to_datetime(hourly["time"]))
    except (ValueError, TypeError) as err:
        raise DataError(f"{r.weather_path}: key 'hourly.time': unparsable timestamps ({err})") from err
    utc = (local - pd.Timedelta(seconds=int(data["utc_offset_seconds"]))).tz_localize("UTC")
    out: dict[str, np.ndarray] = {}
    filled = 0
    for key, name, lo, hi, scale in (
        ("temperature_2m", "temp_c", -45, 55, 1.0),
        ("cloudcover", "cloud_pct", 0, 100, 1.0),
        ("windspeed_10m", "wind_10m_ms", 0, 80, 1 / 3.6),
    ):
        try:
            raw = pd.Series(np.asarray(hourly[key], dtype=np.float64) * scale, index=utc)
        except (ValueError, TypeError) as err:
            raise DataError(f"{r.weather_path}: key 'hourly.{key}': non-numeric values ({err})") from err
        if raw.isna().any():
            raise DataError(f"{r.weather_path}: column '{key}': NaN at {raw.index[raw.isna()][0]}")
        s = raw.reindex(UTC_INDEX_2023)
        filled = int(s.isna().sum())
        s = s.fillna(s.shift(-24)).fillna(s.shift(24))
        out[name] = validate_series(s.to_numpy(), UTC_INDEX_2023, r.weather_path, key, lo, hi)
    out["latitude"] = np.array(float(data["latitude"]))
    out["longitude"] = np.array(float(data["longitude"]))
    out["filled_hours"] = np.array(filled)
    return out


@lru_cache(maxsize=None)
def load_alibaba_hour_counts() -> np.ndarray:
    """Requests per hour of day (trace clock) of the Alibaba GenTD26 Stable Diffusion trace. Shape [24]."""
    path = RAW_DIR / "workload" / "lora_request_trace.csv"
    df = read_csv(path, ("gmt_create",))
    t = pd.to_datetime(df["gmt_create"], errors="coerce")
    if t.isna().any():
        raise DataError(f"{path}: column 'gmt_create': unparsable timestamps")
    return np.bincount(t.dt.hour.to_numpy(), minlength=24).astype(np.float64)


@lru_cache(maxsize=None)
def load_sustaindc_daily_level() -> np.ndarray:
    """Day-to-day load level from the yearly hourly Alibaba CPU-load series, mean 1. Shape [365]."""
    path = RAW_DIR / "workload" / "Alibaba_CPU_Data_Hourly_1.csv"
    load = read_csv(path, ("cpu_load",), numeric=("cpu_load",))["cpu_load"].to_numpy()
    if len(load) < 365 * 24:
        raise DataError(f"{path}: column 'cpu_load': {len(load)} hourly rows, a year needs {365 * 24}")
    if np.isnan(load).any() or load.min() < 0 or load.max() > 1:
        raise DataError(f"{path}: column 'cpu_load': NaN or values outside [0, 1]")
    daily = load[: 365 * 24].reshape(365, 24).mean(axis=1)
    return daily / daily.mean()


@lru_cache(maxsize=None)
def load_transfer_price_usd_per_gb(matrix: str = "aws") -> pd.DataFrame:
    """Inter-region egress price list, $/GB from row region to column region."""
    path = RAW_DIR / "network" / f"{matrix}_transmission_cost_matrix.csv"
    if not path.exists():
        raise ConfigError("scenario", "transfer.cost_matrix", f"unknown matrix '{matrix}'", "aws")
    verify_shipped(path)
    df = pd.read_csv(path, index_col=0)
    if df.isna().any().any() or (df.to_numpy() < 0).any():
        raise DataError(f"{path}: NaN or negative price in the matrix")
    return df
