"""Matplotlib figures of an evaluation (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
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


def read_metrics(run_dir: Path) -> "dict[str, np.ndarray]":
    """Training metrics of a run (all csv/version_*/metrics.csv, in order), as arrays by column."""
    import pandas as pd

    files = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not files:
        raise FileNotFoundError(f"no csv/version_*/metrics.csv under {run_dir}")
    return {c: v.to_numpy() for c, v in merge_attempts([pd.read_csv(f) for f in files]).items()}


def merge_attempts(frames_list: list) -> "pd.DataFrame":
    """One learning curve from the CSVs of successive attempts (a run and its resumes). A resumed
    attempt restarts from its checkpoint's frame count, so rows of earlier attempts logged past
    that count belong to a dead attempt (it ran on after its last checkpoint) and are dropped:
    ``frames`` is non-decreasing in the result."""
    import pandas as pd

    kept: list = []
    for df in frames_list:
        if "frames" in df and df["frames"].notna().any():
            start = df["frames"].dropna().iloc[0]
            kept = [k[~(k["frames"] >= start)] if "frames" in k else k for k in kept]
        kept.append(df)
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


CURVE_KEYS = (("train/episode_return", "episode return (env reward)"),
              ("train/episode_utility_usd", "episode utility ($/day, training days)"),
              ("train/violation_rate", "late + dropped share (per batch)"))


def seed_curves(dirs: list[Path], key: str, window: int = 10, points: int = 100):
    """One metric of several runs on a common frame grid: (frames [points], values [runs, points]),
    each run smoothed by a moving average of ``window`` logged values; None if no run logged it."""
    curves = []
    for d in dirs:
        m = read_metrics(d)
        ok = ~np.isnan(m[key]) if key in m else None
        if ok is None or not ok.any():
            continue
        frames, vals = m["frames"][ok], m[key][ok]
        if len(vals) >= window:
            vals = np.convolve(vals, np.ones(window) / window, mode="valid")
            frames = frames[window - 1:]
        curves.append((frames, vals))
    if not curves:
        return None
    grid = np.linspace(max(c[0][0] for c in curves), min(c[0][-1] for c in curves), points)
    return grid, np.stack([np.interp(grid, f, v) for f, v in curves])


def plot_curve_panels(axes_row, runs: dict[str, list[Path]], window: int = 10) -> None:
    """Fill one row of 3 axes (CURVE_KEYS) with mean and 95 % bootstrap band over seeds per method."""
    from dcsched.experiments.stats import band_over_seeds

    for method, dirs in runs.items():
        for ax, (key, label) in zip(axes_row, CURVE_KEYS):
            got = seed_curves(dirs, key, window)
            if got is None:
                continue
            grid, ys = got
            mean, lo, hi = band_over_seeds(ys)
            line, = ax.plot(grid, mean, label=f"{method} ({len(ys)} seed{'s' if len(ys) > 1 else ''})")
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)
            ax.set_xlabel("environment frames (thousands)")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}"))
            ax.set_ylabel(label)


def plot_learning_curves(runs: dict[str, list[Path]], path: Path, window: int = 10) -> Path:
    """Environment return, episode utility ($/day) and violation rate vs frames: mean over seeds
    (line) and 95 % bootstrap interval of the mean (band), each run smoothed over ``window`` batches."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_curve_panels(axes, runs, window)
    axes[0].legend(fontsize=8)
    fig.suptitle("Training curves (mean over seeds, band = 95 % bootstrap CI of the mean)")
    return _save(fig, path)
