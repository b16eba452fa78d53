"""Figures of an experiment report (PNG, matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dcsched.eval.plots import CURVE_KEYS, _save, plot_curve_panels, plt


def _yerr(sub: pd.DataFrame, metric: str, scale: float = 1.0) -> np.ndarray:
    lo = sub.get(f"{metric}_lo", pd.Series(np.nan, index=sub.index)).to_numpy(dtype=float)
    hi = sub.get(f"{metric}_hi", pd.Series(np.nan, index=sub.index)).to_numpy(dtype=float)
    mean = sub[metric].to_numpy(dtype=float)
    err = np.stack([mean - lo, hi - mean]) * scale
    return np.nan_to_num(err, nan=0.0)


def convergence(train_dirs: dict[str, dict[str, list[Path]]], path: Path) -> Path:
    """Rows: scenarios; columns: CURVE_KEYS; one line (mean) and band (95 % CI) per method."""
    scenarios = list(train_dirs)
    fig, axes = plt.subplots(len(scenarios), len(CURVE_KEYS), figsize=(15, 4 * len(scenarios)), squeeze=False)
    for row, scen in enumerate(scenarios):
        plot_curve_panels(axes[row], train_dirs[scen])
        axes[row][0].set_title(scen, loc="left", fontweight="bold")
        axes[row][0].legend(fontsize=8)
    fig.suptitle("Training curves on training days (mean over seeds, band = 95 % bootstrap CI of the mean)")
    fig.tight_layout()
    return _save(fig, path)


def bars(summary: pd.DataFrame, metric: str, ylabel: str, path: Path, title: str, percent: bool = False) -> Path:
    """Grouped bars: x = setting, one bar per method, error bar = 95 % CI over seeds; one panel per scenario."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(max(7, 1.6 * summary["setting"].nunique() + 4) * len(scenarios) / 1.3, 4.5),
                             squeeze=False)
    scale = 100.0 if percent else 1.0
    for ax, scen in zip(axes[0], scenarios):
        sub = summary[summary["scenario"] == scen]
        settings = list(dict.fromkeys(sub["setting"]))
        methods = list(dict.fromkeys(sub["method"]))
        width = 0.8 / max(1, len(methods))
        for j, method in enumerate(methods):
            m = sub[sub["method"] == method].set_index("setting").reindex(settings)
            xs = np.arange(len(settings)) + (j - (len(methods) - 1) / 2) * width
            vals = m[metric].to_numpy(dtype=float) * scale
            ax.bar(xs, vals, width, yerr=_yerr(m, metric, scale), capsize=3, label=method)
        ax.set_xticks(np.arange(len(settings)), settings, rotation=20 if len(settings) > 3 else 0, ha="right" if len(settings) > 3 else "center")
        ax.set_ylabel(ylabel)
        ax.set_title(scen)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def sweep(summary: pd.DataFrame, xlabel: str, path: Path, title: str) -> Path:
    """Learned methods vs the swept value (mean, 95 % CI band); baselines as dashed lines.
    Left: % of the LP bound; right: late + dropped share. One row per scenario."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(12, 4 * len(scenarios)), squeeze=False)
    for row, scen in enumerate(scenarios):
        sub = summary[summary["scenario"] == scen]
        for ax, metric, label in ((axes[row][0], "share_of_bound", "% of LP bound (test days)"),
                                  (axes[row][1], "violation_rate", "late + dropped share (%)")):
            for i, method in enumerate(dict.fromkeys(sub["method"])):
                m = sub[sub["method"] == method]
                if m["kind"].iloc[0] == "train":
                    m = m.sort_values("x")
                    x = m["x"].to_numpy(dtype=float)
                    line, = ax.plot(x, m[metric] * 100, marker="o", label=f"{method} ({int(m['n_seeds'].max())} seeds)")
                    lo, hi = m.get(f"{metric}_lo"), m.get(f"{metric}_hi")
                    if lo is not None and not lo.isna().all():
                        ax.fill_between(x, lo * 100, hi * 100, color=line.get_color(), alpha=0.2)
                elif m["x"].notna().all() and len(m) > 1:  # a baseline re-run at every value (its system changes)
                    m = m.sort_values("x")
                    ax.plot(m["x"].to_numpy(dtype=float), m[metric] * 100, ls=":" if method == "LP bound" else "--",
                            marker=".", color="black" if method == "LP bound" else f"C{5 + i}", label=method)
                elif method != "LP bound" or metric == "share_of_bound":
                    ax.axhline(float(m[metric].iloc[0]) * 100, ls=(0, (4, 2)) if method != "LP bound" else ":",
                               lw=1.2, color="black" if method == "LP bound" else f"C{5 + i}", label=method)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[row][0].set_title(scen, loc="left", fontweight="bold")
        axes[row][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def pareto(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Cost-quality-carbon fronts: one row per scenario; x = grid carbon (kg/day); left y = energy
    cost ($/day, grid only, without the carbon charge), right y = revenue ($/day: the quality of the
    on-time jobs). One line per method through its settings in sweep order (each point labelled
    with its setting's x, e.g. the carbon price), error bars = 95 % CI over seeds where learned."""
    scenarios = list(dict.fromkeys(summary["scenario"]))
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(12, 4.2 * len(scenarios)), squeeze=False)
    for row, scen in enumerate(scenarios):
        sub = summary[(summary["scenario"] == scen) & (summary["method"] != "LP bound")]
        for ax, metric, label in ((axes[row][0], "energy_cost_usd", "energy cost $/day (grid)"),
                                  (axes[row][1], "revenue_usd", "revenue $/day (delivered quality)")):
            for method in dict.fromkeys(sub["method"]):
                m = sub[sub["method"] == method].sort_values("x")
                x, y = m["carbon_kg"].to_numpy(dtype=float), m[metric].to_numpy(dtype=float)
                ax.errorbar(x, y, xerr=_yerr(m, "carbon_kg"), yerr=_yerr(m, metric), marker="o", ms=4, capsize=2,
                            label=method)
                for xi, yi, label_x in zip(x, y, m["x"]):
                    if label_x == label_x:  # not NaN
                        ax.annotate(f"{label_x:g}", (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6)
            ax.set_xlabel("grid carbon kg/day")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[row][0].set_title(scen, loc="left", fontweight="bold")
        axes[row][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def timing(summary: pd.DataFrame, path: Path) -> Path:
    """Training wall-clock (minutes) and throughput (frames/s) per method, 95 % CI over seeds."""
    sub = summary[summary["kind"] == "train"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{m}\n({s})" if sub["scenario"].nunique() > 1 else m for m, s in zip(sub["method"], sub["scenario"])]
    for ax, metric, ylabel, scale in ((axes[0], "train_wall_s", "training wall-clock (min)", 1 / 60),
                                      (axes[1], "frames_per_s", "environment frames per second", 1.0)):
        ax.bar(np.arange(len(sub)), sub[metric] * scale, yerr=_yerr(sub, metric, scale), capsize=4,
               color=[f"C{i}" for i in range(len(sub))])
        ax.set_xticks(np.arange(len(sub)), labels, rotation=15)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Training cost per method (mean over seeds, 95 % CI)")
    fig.tight_layout()
    return _save(fig, path)


def behaviour(traces: dict[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Per method (row): battery SoC and price vs hour per DC on the first evaluated day; transfer
    shares by class (origin -> serving DC, all days); chosen steps vs load (slot arrivals) per DC;
    GPU frequency vs hour per DC on the first day. One colour per DC in every panel."""
    fig, axes = plt.subplots(len(traces), 4, figsize=(22, 4.2 * len(traces)), squeeze=False)
    for row, (method, tr) in enumerate(traces.items()):
        ax_soc, ax_x, ax_steps, ax_freq = axes[row]
        day = tr["day"].iloc[0]
        d = tr[tr["day"] == day]
        slots = d["slot"].max() + 1
        ax_price = ax_soc.twinx()
        for i, (dc, g) in enumerate(d.groupby("region", sort=False)):
            hours = g["slot"].to_numpy() * 24.0 / slots
            ax_soc.plot(hours, g["soc"], color=f"C{i}", label=f"SoC {dc}")
            ax_price.plot(hours, g["price_usd_per_mwh"], color=f"C{i}", ls=":", lw=1)
        ax_soc.set_xlabel(f"hour of {day} (UTC)")
        ax_soc.set_ylabel("battery state of charge (solid)")
        ax_price.set_ylabel("electricity price $/MWh (dotted)")
        ax_soc.legend(fontsize=7, loc="upper left")
        ax_soc.set_title(method, loc="left", fontweight="bold")
        classes = sorted({c.rsplit("_", 1)[1] for c in tr.columns if c.startswith("x_to_")})
        regions = list(dict.fromkeys(tr["region"]))
        n = len(regions)
        shares = []
        for cname in classes:
            flows = np.array([[tr.loc[tr["dc"] == i, f"x_to_{j}_{cname}"].sum() for j in range(n)] for i in range(n)])
            shares.append(flows / np.maximum(flows.sum(1, keepdims=True), 1e-12))
        img = np.concatenate(shares, axis=1)
        ax_x.imshow(img, vmin=0, vmax=1, cmap="Blues")
        for i in range(n):
            for j in range(img.shape[1]):
                ax_x.text(j, i, f"{img[i, j]:.0%}", ha="center", va="center", fontsize=7,
                          color="white" if img[i, j] > 0.6 else "black")
        ax_x.set_xticks(range(img.shape[1]), [f"{cname}\n-> {j}" for cname in classes for j in range(n)], fontsize=7)
        ax_x.set_yticks(range(n), [f"{i}: {r}" for i, r in enumerate(regions)], fontsize=7)
        ax_x.set_xlabel("class and serving DC")
        ax_x.set_ylabel("origin DC")
        ax_x.set_title("share of each origin's jobs sent to each DC (all days)")
        for i, (dc, g) in enumerate(tr.groupby("region", sort=False)):
            load = g[[c for c in g.columns if c.startswith("arrivals_")]].sum(1)
            served = g[[c for c in g.columns if c.startswith("served_")]].to_numpy()
            steps = g[[c for c in g.columns if c.startswith("steps_")]].to_numpy()
            mean_steps = (served * steps).sum(1) / np.maximum(served.sum(1), 1e-12)
            ax_steps.scatter(load, mean_steps, s=3, alpha=0.3, color=f"C{i}", label=dc)
        ax_steps.set_xlabel("jobs arriving at the origin DC per slot")
        ax_steps.set_ylabel("mean denoising steps served")
        ax_steps.legend(fontsize=7, markerscale=4)
        ax_steps.grid(alpha=0.3)
        for i, (dc, g) in enumerate(d.groupby("region", sort=False)):
            ax_freq.step(g["slot"].to_numpy() * 24.0 / slots, g["freq"], where="post", color=f"C{i}", label=dc)
        ax_freq.set_xlabel(f"hour of {day} (UTC)")
        ax_freq.set_ylabel("GPU frequency (fraction of max)")
        ax_freq.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
