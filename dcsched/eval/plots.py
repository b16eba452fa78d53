"""Matplotlib figures of an evaluation (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402

from dcsched.io import atomic_write  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


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


def plot_day_behaviour(out: dict[str, np.ndarray], dc_names: list[str], day_label: str, slot_h: float, path: Path,
                       policy: str = "") -> Path:
    """What ``policy`` did on the first evaluated day, one panel per decision, one colour per DC
    throughout (C0, C1, ... in ``dc_names`` order): battery SoC against price; jobs sent away and
    received by transfer; denoising steps served (mean over served jobs) and GPU frequency;
    facility and grid power; late + dropped share. ``out``: rollout arrays [D, T, N, ...]."""
    T, N = out["soc"].shape[1], out["soc"].shape[2]
    hours = np.arange(T) * slot_h
    colour = [f"C{n}" for n in range(N)]
    fig, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    ax_soc, ax_x, ax_steps, ax_power, ax_viol = axes
    ax_price = ax_soc.twinx()
    for n in range(N):
        ax_soc.plot(hours, out["soc"][0, :, n], color=colour[n], label=dc_names[n])
        ax_price.plot(hours, out["price_usd_per_mwh"][0, :, n], color=colour[n], ls=":", lw=1)
    ax_soc.set_ylabel("battery SoC (solid)")
    ax_price.set_ylabel("price $/MWh (dotted)")
    ax_soc.legend(fontsize=7, loc="upper left", title="DC (colour in every panel)", title_fontsize=7)
    # jobs by origin and serving DC: the transfer shares times the origin's arrivals (kernels.serve)
    moved = (out["transfer"][0] * out["arrivals"][0][:, :, None, :]).sum(-1)  # [T, i, n], all classes
    stay = np.einsum("tii->ti", moved)
    for n in range(N):
        ax_x.plot(hours, moved[:, n, :].sum(-1) - stay[:, n], color=colour[n])
        ax_x.plot(hours, moved[:, :, n].sum(-1) - stay[:, n], color=colour[n], ls="--")
    ax_x.set_ylabel("jobs per slot: sent away\n(solid), received (dashed)")
    served, steps = out["served"][0], out["steps"][0]  # [T, N, K]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_steps = np.where(served.sum(-1) > 0, (served * steps).sum(-1) / served.sum(-1), np.nan)
    ax_freq = ax_steps.twinx()
    for n in range(N):
        ax_steps.plot(hours, mean_steps[:, n], color=colour[n])
        ax_freq.plot(hours, out["freq"][0, :, n], color=colour[n], ls=":", lw=1)
    ax_steps.set_ylabel("denoising steps served (solid)")
    ax_freq.set_ylabel("GPU frequency, fraction of max (dotted)")
    for n in range(N):
        ax_power.plot(hours, out["it_kw"][0, :, n] + out["cooling_kw"][0, :, n], color=colour[n])
        ax_power.plot(hours, out["grid_buy_kw"][0, :, n], color=colour[n], ls="--")
    ax_power.set_ylabel("kW: IT + cooling (solid),\ngrid buy (dashed)")
    ax_viol.plot(hours, out["violation_share"][0], color="black")  # [D, T]: the whole system
    ax_viol.set_ylabel("late + dropped share\n(all DCs)")
    ax_viol.set_xlabel(f"hour of {day_label} (UTC)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{policy or 'policy'}: decisions on {day_label}")
    fig.tight_layout()
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
    from dcsched.stats import band_over_seeds

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


def heatmap(summary: pd.DataFrame, metric: str, path: Path, title: str) -> Path:
    """Method (rows) x setting (columns) grid of ``metric`` in percent, one panel per scenario,
    each cell annotated with its value."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    methods = list(dict.fromkeys(summary["method"]))
    settings = list(dict.fromkeys(summary["setting"]))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(1.3 * len(settings) * len(scenarios) + 5, 0.55 * len(methods) + 2),
                             squeeze=False, layout="constrained")
    for ax, scen in zip(axes[0], scenarios):
        sub = summary[summary["scenario"] == scen]
        grid = sub.pivot_table(index="method", columns="setting", values=metric, aggfunc="mean")
        grid = grid.reindex(index=methods, columns=settings) * 100.0
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white" if value < 60 else "black",
                        fontsize=8)
        ax.set_xticks(range(len(settings)), settings, rotation=25, ha="right")
        ax.set_yticks(range(len(methods)), methods)
        ax.set_title(scen)
    fig.colorbar(image, ax=axes[0].tolist(), label="% of the LP bound")
    fig.suptitle(title)
    return _save(fig, path)
