"""Matplotlib figures of an evaluation (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dcsched.io import atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def plot_comparison(summaries: dict[str, dict], path: Path) -> Path:
    """Bar chart of mean daily utility and its components per policy."""
    names = list(summaries)
    comps = ["revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "utility_usd"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 4))
    width = 0.8 / len(comps)
    x = np.arange(len(names))
    for j, c in enumerate(comps):
        vals = [summaries[n]["mean"][c] for n in names]
        ax.bar(x + j * width - 0.4 + width / 2, vals, width, label=c.replace("_usd", " ($/day)").replace("_", " "))
    ax.set_xticks(x, names)
    ax.set_ylabel("$ per day (mean over days)")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)
    ax.set_title("Utility and components per policy")
    return _save(fig, path)


def plot_day_behaviour(out: dict[str, np.ndarray], dc_names: list[str], day_label: str, slot_h: float, path: Path) -> Path:
    """First day: SoC vs price per DC, grid and IT power, violation share."""
    N = out["soc"].shape[2]
    T = out["soc"].shape[1]
    hours = np.arange(T) * slot_h
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for n in range(N):
        axes[0].plot(hours, out["soc"][0, :, n], label=f"SoC {dc_names[n]}")
    ax2 = axes[0].twinx()
    for n in range(N):
        ax2.plot(hours, out["price_usd_per_mwh"][0, :, n], ls=":", lw=1)
    axes[0].set_ylabel("battery SoC (fraction)")
    ax2.set_ylabel("price ($/MWh, dotted)")
    axes[0].legend(fontsize=7, loc="upper left")
    for n in range(N):
        axes[1].plot(hours, out["it_kw"][0, :, n] + out["cooling_kw"][0, :, n], label=f"IT+cooling {dc_names[n]}")
        axes[1].plot(hours, out["grid_buy_kw"][0, :, n], ls="--", label=f"grid buy {dc_names[n]}")
    axes[1].set_ylabel("power (kW)")
    axes[1].legend(fontsize=6, ncol=2)
    axes[2].plot(hours, out["violation_share"][0], color="tab:red")
    axes[2].set_ylabel("late + dropped share")
    axes[2].set_xlabel("hour of day (UTC)")
    fig.suptitle(f"Behaviour on {day_label}")
    return _save(fig, path)
