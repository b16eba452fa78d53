"""Where a policy's jobs, money and violations go, data centre by data centre (per_dc.csv, per_dc.md).

From the rollout arrays of :func:`dcsched.eval.rollout.run_days` ([D days, T slots, N DCs, K
classes]), one row per DC, pooled over the evaluated days:

- ``arrivals_per_day``: jobs arriving with this DC as origin; ``arrivals_share`` of all arrivals;
- ``moved_share``: the share of this DC's arrivals its routing sent to another DC;
- ``served_share``: the share of all jobs assigned to this DC as server (on time, late or dropped);
- ``late_dropped_rate``: of the jobs assigned to this DC, the share late or dropped;
- ``dropped_per_day``, ``mean_backlog_jobs`` (over slots), ``mean_steps`` (weighted by the jobs
  served), ``mean_freq`` (fraction of f_max, over slots);
- the money of the slot attributed to this DC (``revenue_usd`` ... ``utility_usd``, $ per day; transfer
  costs are charged at the receiving DC) and ``grid_buy_kwh`` per day.

The money columns sum over DCs to the policy's summary ($/day), and ``served_share``-weighted
``late_dropped_rate`` over DCs to its late+dropped count (tests/test_per_dc.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MONEY = ("revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "utility_usd")
LABELS = {  # column -> (header, format)
    "arrivals_share": ("arrivals", "{:.1%}"), "moved_share": ("sent elsewhere", "{:.1%}"),
    "served_share": ("served here", "{:.1%}"), "late_dropped_rate": ("late+dropped here", "{:.2%}"),
    "dropped_per_day": ("dropped/day", "{:,.1f}"), "mean_backlog_jobs": ("mean backlog", "{:,.1f}"),
    "mean_steps": ("mean steps", "{:.1f}"), "mean_freq": ("mean freq", "{:.2f}"),
    **{key: (f"{key.split('_')[0]} $/day", "{:,.2f}") for key in MONEY},  # revenue $/day, energy $/day, ...
    "grid_buy_kwh": ("grid kWh/day", "{:,.0f}"),
}


def per_dc_frame(out: dict[str, np.ndarray], dc_names: list[str], slot_h: float) -> pd.DataFrame:
    """One row per DC (index ``dc``; columns in the module docstring) from rollout arrays."""
    days = out["utility_usd"].shape[0]
    arrivals = out["arrivals"].sum(axis=(0, 1, 3))  # [N]
    stay = np.einsum("dtnk,dtnnk->n", out["arrivals"], out["transfer"])  # arrivals routed to their own DC
    served = out["served"].sum(axis=(0, 1, 3))
    late_dropped = out["late"].sum(axis=(0, 1, 3)) + out["dropped"].sum(axis=(0, 1))
    steps_weighted = (out["steps"] * out["served"]).sum(axis=(0, 1, 3))
    frame = pd.DataFrame({
        "region": dc_names,
        "arrivals_per_day": arrivals / days,
        "arrivals_share": arrivals / max(arrivals.sum(), 1e-12),
        "moved_share": np.where(arrivals > 0, 1.0 - stay / np.maximum(arrivals, 1e-12), 0.0),
        "served_share": served / max(served.sum(), 1e-12),
        "late_dropped_rate": np.where(served > 0, late_dropped / np.maximum(served, 1e-12), 0.0),
        "dropped_per_day": out["dropped"].sum(axis=(0, 1)) / days,
        "mean_backlog_jobs": out["backlog_jobs"].mean(axis=(0, 1)),
        "mean_steps": np.where(served > 0, steps_weighted / np.maximum(served, 1e-12), np.nan),
        "mean_freq": out["freq"].mean(axis=(0, 1)),
        **{key: out[key].sum(axis=(0, 1)) / days for key in MONEY},
        "grid_buy_kwh": out["grid_buy_kw"].sum(axis=(0, 1)) * slot_h / days,
    })
    return frame.rename_axis("dc")


def per_dc_markdown(frames: dict[str, pd.DataFrame]) -> str:
    """One table per policy: a row per DC with the shares, violations, levels and money."""
    parts = []
    for policy, frame in frames.items():
        cols = list(LABELS)
        head = "| DC | " + " | ".join(LABELS[c][0] for c in cols) + " |\n|---|" + "---:|" * len(cols) + "\n"
        body = "".join(f"| {dc} {row['region']} | " + " | ".join(LABELS[c][1].format(row[c]) for c in cols) + " |\n"
                       for dc, row in frame.iterrows())
        parts.append(f"### {policy}\n\n{head}{body}")
    return "\n".join(parts)
