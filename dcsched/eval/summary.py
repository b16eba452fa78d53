"""Per-day and mean summary of a rollout (summary.json)."""

from __future__ import annotations

import numpy as np

MONEY_KEYS = ("utility_usd", "revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "degradation_usd",
              "carbon_cost_usd")


def day_summary(out: dict[str, np.ndarray], slot_h: float) -> list[dict]:
    """One dict per day: money terms ($), violation rate, energy (kWh), carbon (kg), job counts."""
    D = out["utility_usd"].shape[0]
    days = []
    for d in range(D):
        arrived = float(out["arrivals"][d].sum())
        late = float(out["late"][d].sum())
        dropped = float(out["dropped"][d].sum())
        row = {k: float(out[k][d].sum()) for k in MONEY_KEYS}
        row.update(
            violation_rate=(late + dropped) / arrived if arrived > 0 else 0.0,
            jobs_arrived=arrived, jobs_on_time=float(out["on_time"][d].sum()), jobs_late=late,
            jobs_dropped=dropped,
            it_energy_kwh=float(out["it_kw"][d].sum() * slot_h),
            cooling_energy_kwh=float(out["cooling_kw"][d].sum() * slot_h),
            grid_buy_kwh=float(out["grid_buy_kw"][d].sum() * slot_h),
            grid_sell_kwh=float(out["grid_sell_kw"][d].sum() * slot_h),
            renewable_kwh=float((out["pv_kw"][d].sum() + out["wind_kw"][d].sum()) * slot_h),
            curtailed_kwh=float(out["curtail_kw"][d].sum() * slot_h),
            carbon_kg=float(out["carbon_kg"][d].sum()),
            mean_steps=float((out["steps"][d] * out["served"][d]).sum() / max(out["served"][d].sum(), 1e-12)),
            episode_return=float(out["reward"][d].sum()),
        )
        if "batch_arrivals" in out:  # batch work (MODEL.md section 11): every job ends within its day
            b_late, b_dropped = float(out["batch_late"][d].sum()), float(out["batch_dropped"][d].sum())
            b_arrived = float(out["batch_arrivals"][d].sum())
            row.update(batch_jobs_arrived=b_arrived, batch_jobs_on_time=float(out["batch_on_time"][d].sum()),
                       batch_jobs_late=b_late, batch_jobs_dropped=b_dropped,
                       batch_violation_rate=(b_late + b_dropped) / b_arrived if b_arrived > 0 else 0.0)
        days.append(row)
    return days


def mean_summary(days: list[dict]) -> dict:
    keys = days[0].keys()
    out = {k: float(np.mean([d[k] for d in days])) for k in keys}
    out["num_days"] = len(days)
    if len(days) > 1:
        out["utility_usd_ci95"] = float(1.96 * np.std([d["utility_usd"] for d in days], ddof=1) / np.sqrt(len(days)))
    return out
