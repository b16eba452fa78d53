"""Results of an experiment's cells -> a per-run table and a per-method table with intervals.

``runs.csv``: one row per (scenario, setting, method, seed) with every test-day metric (mean over
days) and the LP bound of the same days. ``summary.csv``: per (scenario, setting, method) the
number of seeds, mean, 95 % bootstrap interval of the mean (``_lo``, ``_hi``), 95 % Student t
interval of the mean (``_t_lo``, ``_t_hi``) and IQM (``_iqm``) of each metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcsched.stats import CONFIDENCE, bootstrap_ci, holm_adjusted, iqm, paired_t_p, t_ci

METRICS = ("utility_usd", "share_of_bound", "violation_rate", "revenue_usd", "energy_cost_usd", "transfer_cost_usd",
           "penalty_usd", "grid_buy_kwh", "carbon_kg", "mean_steps", "episode_return", "train_wall_s",
           "frames_per_s", "alpha_pa", "alpha_ra", "r_aux_mean", "r_aux_std", "dq_ra_dr_aux", "corr_r_aux_r_env",
           "corr_r_aux_advantage", "carbon_cost_usd", "stochastic_utility_usd", "stochastic_share_of_bound", "stochastic_violation_rate",
           "task_return", "success_rate", "first_success_frames", "task_episode_length", "batch_violation_rate")
TASK_METRICS = ["task_return", "success_rate", "first_success_frames", "task_episode_length", "train_wall_s"]
# training diagnostics logged by the agents (last value of the run) -> runs.csv column
DIAGNOSTICS = {"alpha": "alpha_pa", "rs/alpha": "alpha_ra", "rs/r_aux_mean": "r_aux_mean", "rs/r_aux_std": "r_aux_std",
               "diag/dq_ra_dr_aux_abs_mean": "dq_ra_dr_aux", "diag/corr_r_aux_r_env": "corr_r_aux_r_env",
               "diag/corr_r_aux_advantage": "corr_r_aux_advantage"}
DIAGNOSTIC_METRICS = list(DIAGNOSTICS.values())
LABELS = {  # column -> (header, format of one value)
    "utility_usd": ("utility $/day", "{:,.2f}"), "share_of_bound": ("% of LP bound", "{:.1%}"),
    "violation_rate": ("late+dropped", "{:.2%}"), "batch_violation_rate": ("batch late+dropped", "{:.2%}"),
    "revenue_usd": ("revenue $", "{:,.2f}"),
    "energy_cost_usd": ("energy $", "{:,.2f}"), "transfer_cost_usd": ("transfer $", "{:,.2f}"),
    "penalty_usd": ("penalty $", "{:,.2f}"), "grid_buy_kwh": ("grid kWh", "{:,.0f}"),
    "carbon_kg": ("CO2 kg", "{:,.1f}"), "mean_steps": ("mean steps", "{:.1f}"),
    "episode_return": ("test return", "{:,.1f}"), "train_wall_s": ("train s", "{:,.0f}"),
    "frames_per_s": ("frames/s", "{:,.0f}"),
    "alpha_pa": ("α policy agent", "{:.3g}"), "alpha_ra": ("α reward agent", "{:.3g}"),
    "r_aux_mean": ("r^A mean", "{:.3f}"), "r_aux_std": ("r^A std", "{:.3f}"),
    "dq_ra_dr_aux": ("mean |∂Q_RA/∂r^A|", "{:.3g}"), "corr_r_aux_r_env": ("corr(r^A, r^E)", "{:.3f}"),
    "corr_r_aux_advantage": ("corr(r^A, PA advantage)", "{:.3f}"),
    "carbon_cost_usd": ("carbon $", "{:,.2f}"),
    "stochastic_utility_usd": ("stochastic utility $/day", "{:,.2f}"),
    "stochastic_share_of_bound": ("stochastic % of LP bound", "{:.1%}"),
    "stochastic_violation_rate": ("stochastic late+dropped", "{:.2%}"),
    "task_return": ("return (eval episodes)", "{:,.2f}"), "success_rate": ("success rate", "{:.0%}"),
    "first_success_frames": ("frames to first success", "{:,.0f}"),
    "task_episode_length": ("episode length", "{:,.0f}"),
}
STOCHASTIC_METRICS = ["stochastic_share_of_bound", "stochastic_violation_rate"]


def run_rows(results: list[dict], setting_x: dict[str, float | None] | None = None) -> pd.DataFrame:
    """One row per evaluated run; baselines shared by several settings appear once per setting.
    ``setting_x``: the sweep value of each setting (rows of shared baselines take their setting's)."""
    setting_x = setting_x or {}
    bounds: dict[tuple[str, str], dict] = {}
    for r in results:
        if r["spec"]["kind"] == "bound":
            for setting in r["spec"]["covers"] or [r["spec"]["setting"]]:
                bounds[(r["spec"]["scenario"], setting)] = r["bounds_usd"]
    rows = []
    for r in results:
        spec = r["spec"]
        if spec["kind"] == "bound":
            continue
        settings = (spec["covers"] or [spec["setting"]]) if spec["kind"] == "policy" else [spec["setting"]]
        for setting in settings:
            row = {"scenario": spec["scenario"], "setting": setting, "method": spec["method"], "seed": spec["seed"],
                   "kind": spec["kind"], "x": setting_x.get(setting, spec.get("x")), "config_hash": spec["config_hash"]}
            row.update({k: r["summary"].get(k, np.nan) for k in METRICS if k in r["summary"]})
            if "stochastic" in r:  # mean over the evaluation seeds of Poisson arrivals
                row["stochastic_utility_usd"] = r["stochastic"]["utility_usd"]
                row["stochastic_violation_rate"] = r["stochastic"]["violation_rate"]
            bound = bounds.get((spec["scenario"], setting))
            if bound is not None and all(d in bound for d in r["days"]):
                row["lp_bound_usd"] = float(np.mean([bound[d] for d in r["days"]]))
                row["share_of_bound"] = row["utility_usd"] / row["lp_bound_usd"]
                if "stochastic" in r:
                    row["stochastic_share_of_bound"] = row["stochastic_utility_usd"] / row["lp_bound_usd"]
            if spec["kind"] == "train":
                row["train_wall_s"] = r["train"]["wall_s"]
                row["frames_per_s"] = r["train"]["frames_per_s"]
                row["frames"] = r["train"]["frames"]
                row["resumed"] = r["train"]["resumed"]
                for key, column in DIAGNOSTICS.items():
                    row[column] = r["train"].get("diagnostics", {}).get(key, np.nan)
            rows.append(row)
    for (scen, setting), bound in bounds.items():  # the bound itself, as a row of its own
        rows.append({"scenario": scen, "setting": setting, "method": "LP bound", "seed": 0, "kind": "bound",
                     "x": setting_x.get(setting),
                     "utility_usd": float(np.mean(list(bound.values()))), "share_of_bound": 1.0})
    frame = pd.DataFrame(rows)
    for col in METRICS:
        if col not in frame:
            frame[col] = np.nan
    return frame


def summarize(runs: pd.DataFrame, order: list[str] | None = None, settings: list[str] | None = None) -> pd.DataFrame:
    """Per (scenario, setting, method): n seeds, mean, 95 % bootstrap and t intervals of the mean,
    IQM per metric."""
    out = []
    for (scen, setting, method), g in runs.groupby(["scenario", "setting", "method"], sort=False):
        row = {"scenario": scen, "setting": setting, "method": method, "kind": g["kind"].iloc[0],
               "n_seeds": int(len(g)), "x": g["x"].iloc[0] if "x" in g else None}
        for m in METRICS:
            vals = g[m].to_numpy(dtype=float)
            if np.isnan(vals).all():
                continue
            lo, hi = bootstrap_ci(vals)
            t_lo, t_hi = t_ci(vals)
            row.update({m: float(np.nanmean(vals)), f"{m}_lo": lo, f"{m}_hi": hi, f"{m}_t_lo": t_lo, f"{m}_t_hi": t_hi,
                        f"{m}_iqm": iqm(vals)})
        out.append(row)
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    kind_rank = {"bound": 2, "policy": 0, "train": 1}
    method_rank = {m: i for i, m in enumerate(order or [])}
    setting_rank = {s: i for i, s in enumerate(settings or [])}
    frame["_k"] = frame["kind"].map(kind_rank)
    frame["_m"] = frame["method"].map(lambda m: method_rank.get(m, len(method_rank)))
    frame["_s"] = frame["setting"].map(lambda s: setting_rank.get(s, len(setting_rank)))
    return frame.sort_values(["scenario", "_s", "_k", "_m"]).drop(columns=["_k", "_m", "_s"]).reset_index(drop=True)


T_INTERVAL_METRICS = ("utility_usd", "share_of_bound", "task_return", "success_rate")  # cells that also show the t interval
IQM_METRIC = "utility_usd"  # the metric whose IQM gets its own column


def _cell(row: pd.Series, metric: str) -> str:
    value = row.get(metric, np.nan)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    fmt = LABELS[metric][1]
    text = fmt.format(value)
    lo, hi = row.get(f"{metric}_lo", np.nan), row.get(f"{metric}_hi", np.nan)
    if row["n_seeds"] > 1 and not (np.isnan(lo) or np.isnan(hi)):
        text += f" [{fmt.format(lo)}, {fmt.format(hi)}]"
        t_lo, t_hi = row.get(f"{metric}_t_lo", np.nan), row.get(f"{metric}_t_hi", np.nan)
        if metric in T_INTERVAL_METRICS and not (np.isnan(t_lo) or np.isnan(t_hi)):
            text += f" (t: {fmt.format(t_lo)}, {fmt.format(t_hi)})"
    return text


def _iqm_cell(row: pd.Series) -> str:
    value = row.get(f"{IQM_METRIC}_iqm", np.nan)
    if row["kind"] != "train" or row["n_seeds"] < 3 or value is None or np.isnan(value):
        return ""  # with 1-2 seeds the IQM is the mean
    return LABELS[IQM_METRIC][1].format(value)


def markdown_table(summary: pd.DataFrame, metrics: list[str], by_setting: bool) -> str:
    """A Markdown table; learned methods show ``mean [95 % bootstrap CI] (t: 95 % t interval)`` over
    their seeds, and the IQM of the utility (3 or more seeds) in its own column after it."""
    if summary.empty:
        return "_no finished runs yet_\n"
    with_iqm = IQM_METRIC in metrics and bool((summary["kind"] == "train").any())
    headers = [LABELS[m][0] for m in metrics]
    if with_iqm:
        headers.insert(metrics.index(IQM_METRIC) + 1, "IQM " + LABELS[IQM_METRIC][0])
    cols = (["setting"] if by_setting else []) + ["method", "seeds"] + headers
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in summary.iterrows():
        cells = ([str(row["setting"])] if by_setting else []) + [
            f"**{row['method']}**" if row["kind"] == "bound" else str(row["method"]),
            str(row["n_seeds"]) if row["kind"] == "train" else "—"]
        values = [_cell(row, m) for m in metrics]
        if with_iqm:
            values.insert(metrics.index(IQM_METRIC) + 1, _iqm_cell(row))
        lines.append("| " + " | ".join(cells + values) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(runs: pd.DataFrame, pairs: list[list[str]],
                       metrics=("utility_usd", "share_of_bound", "stochastic_utility_usd"),
                       families: dict[str, int] | None = None) -> pd.DataFrame:
    """Per (scenario, setting) and pair [A, B]: the mean over seeds of A - B on the same seed, its 95 %
    bootstrap interval (``_lo``, ``_hi``), its 95 % Student t interval (``_t_lo``, ``_t_hi``: the paired
    t test's), the paired t test's two-sided p (``_p``), Holm's step-down adjusted p over the k declared
    pairs of that (scenario, setting) (``_p_holm``: a pair without data counts as p = 1; reject where it
    is below 0.05, the family-wise error held at 5 % and never fewer rejections than Bonferroni's) and the
    t interval at 1 - 0.05 / k (``_bonf_lo``, ``_bonf_hi``: Bonferroni's simultaneous intervals, the ones
    that may be read together), and the number of pairs, for each metric present (a metric absent from either
    side, e.g. the stochastic utility of a deterministic experiment, is left out). k (``family``) is
    ``families[scenario]`` where given (the declared pairs whose two methods run on that scenario,
    :func:`dcsched.experiments.spec.pairs_on`), else every declared pair.

    A is a learned method. B is a learned method (paired on the training seed) or a baseline (one
    deterministic policy run: every seed of A is paired with it, so the interval is A's spread over
    its training seeds around the difference; in the stochastic columns both saw the same arrival
    draws, common random numbers)."""
    out = []
    if runs.empty:
        return pd.DataFrame(out)
    for (scen, setting), g in runs[runs["kind"].isin(["train", "policy"])].groupby(["scenario", "setting"], sort=False):
        family = max(1, (families or {}).get(scen, len(pairs)))
        group = []
        for a, b in pairs:
            left = g[(g["method"] == a) & (g["kind"] == "train")].set_index("seed")
            right = g[g["method"] == b]
            if left.empty or right.empty:
                continue
            baseline = bool((right["kind"] == "policy").all())
            if baseline:  # one run, paired with every seed of A
                right = pd.DataFrame([right.iloc[0]] * len(left), index=left.index)
            else:
                right = right.set_index("seed")
            seeds = left.index.intersection(right.index)
            if len(seeds) == 0:
                continue
            row = {"scenario": scen, "setting": setting, "pair": f"{a} − {b}", "n_pairs": int(len(seeds)),
                   "against": "baseline" if baseline else "seed"}
            for m in metrics:
                if m not in left or m not in right:
                    continue
                diff = (left.loc[seeds, m].astype(float) - right.loc[seeds, m].astype(float)).to_numpy(dtype=float)
                if np.isnan(diff).all():
                    continue
                lo, hi = bootstrap_ci(diff)
                t_lo, t_hi = t_ci(diff)
                b_lo, b_hi = t_ci(diff, confidence=1.0 - (1.0 - CONFIDENCE) / family)
                row.update({m: float(np.nanmean(diff)), f"{m}_lo": lo, f"{m}_hi": hi, f"{m}_t_lo": t_lo, f"{m}_t_hi": t_hi,
                            f"{m}_p": paired_t_p(diff), f"{m}_bonf_lo": b_lo, f"{m}_bonf_hi": b_hi})
            row["family"] = family
            group.append(row)
        for m in metrics:
            with_p = [row for row in group if f"{m}_p" in row]
            for row, adjusted in zip(with_p, holm_adjusted([row[f"{m}_p"] for row in with_p], family)):
                row[f"{m}_p_holm"] = adjusted
        out += group
    return pd.DataFrame(out)


def paired_markdown(paired: pd.DataFrame, metrics=("utility_usd", "share_of_bound", "stochastic_utility_usd")) -> str:
    """The paired differences as a Markdown table (``mean [95 % bootstrap CI] (t: 95 % t CI)``, n pairs),
    with the first metric's paired t p, its Holm-adjusted p and its Bonferroni interval over the k
    declared pairs. Metrics no row has (the stochastic utility of a deterministic experiment) get no
    column."""
    if paired.empty:
        return "_no paired runs yet_\n"
    metrics = [m for m in metrics if m in paired and paired[m].notna().any()]
    first = metrics[0]
    sizes = sorted({int(k) for k in paired["family"]}) if "family" in paired else [1]
    family = str(sizes[0]) if len(sizes) == 1 else "k"  # k: the row's scenario's pairs, shown in its cell
    cols = (["scenario", "setting", "pair", "pairs"] + [f"Δ {LABELS[m][0]}" for m in metrics]
            + [f"p (paired t, Δ {LABELS[first][0]})", f"p, Holm (×{family})",
               f"Δ {LABELS[first][0]}, Bonferroni t interval (×{family})"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    fmts = {m: "{:+.2%}" if "share" in m else "{:+,.2f}" for m in metrics}
    for _, row in paired.iterrows():
        several = row["n_pairs"] > 1 and not np.isnan(row[f"{first}_lo"])
        against = " (B a baseline)" if row.get("against") == "baseline" else ""
        cells = [str(row["scenario"]), str(row["setting"]), row["pair"] + against, str(row["n_pairs"])]
        for m in metrics:
            fmt = fmts[m]
            if np.isnan(row.get(m, np.nan)):
                cells.append("")
                continue
            text = fmt.format(row[m])
            if row["n_pairs"] > 1 and not np.isnan(row[f"{m}_lo"]):
                text += f" [{fmt.format(row[f'{m}_lo'])}, {fmt.format(row[f'{m}_hi'])}]"
                text += f" (t: {fmt.format(row[f'{m}_t_lo'])}, {fmt.format(row[f'{m}_t_hi'])})"
            cells.append(text)
        p = row.get(f"{first}_p", np.nan)
        cells.append("" if not several or np.isnan(p) else f"{p:.3f}")
        p_holm = row.get(f"{first}_p_holm", np.nan)
        k = f" (×{int(row['family'])})" if family == "k" else ""
        cells.append("" if not several or np.isnan(p_holm) else f"{p_holm:.3f}{k}")
        cells.append(f"[{fmts[first].format(row[f'{first}_bonf_lo'])}, {fmts[first].format(row[f'{first}_bonf_hi'])}]"
                     if several and not np.isnan(row.get(f"{first}_bonf_lo", np.nan)) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
