"""The per-slot trace (docs/trace-format.md): one row per (day, slot, dc)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dcsched.io import atomic_write

PER_DC_COLUMNS = (
    "dropped", "backlog_jobs", "freq", "it_kw", "cooling_kw", "charge_kw", "discharge_kw", "pv_kw", "wind_kw",
    "curtail_kw", "grid_buy_kw", "grid_sell_kw", "soc", "revenue_usd", "energy_cost_usd", "transfer_cost_usd",
    "penalty_usd", "degradation_usd", "carbon_cost_usd", "utility_usd", "carbon_kg", "price_usd_per_mwh", "temp_c",
)
PER_CLASS_COLUMNS = ("arrivals", "served", "on_time", "late", "steps")


def trace_frame(out: dict[str, np.ndarray], dates: list[str], dc_names: list[str], class_names: list[str]) -> pd.DataFrame:
    """Flatten rollout arrays [D, T, N, ...] into the trace table."""
    D, T, N = out["utility_usd"].shape
    day = np.repeat(np.asarray(dates), T * N)
    slot = np.tile(np.repeat(np.arange(T), N), D)
    dc = np.tile(np.arange(N), D * T)
    cols: dict[str, np.ndarray] = {"day": day, "slot": slot, "dc": dc,
                                   "region": np.tile(np.asarray(dc_names), D * T)}
    for key in PER_CLASS_COLUMNS:
        for k, cname in enumerate(class_names):
            cols[f"{key}_{cname}"] = out[key][..., k].reshape(-1)
    for key in PER_DC_COLUMNS:
        cols[key] = out[key].reshape(-1)
    transfer = out["transfer"]  # [D, T, i, n, K]
    for n in range(N):
        for k, cname in enumerate(class_names):
            cols[f"x_to_{n}_{cname}"] = transfer[:, :, :, n, k].reshape(-1)
    return pd.DataFrame(cols)


def write_trace(path: Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.to_csv(p, index=False, float_format="%.9g"))
