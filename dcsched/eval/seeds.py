"""Stochastic evaluation over several arrival seeds (``dcsched evaluate --stochastic --seeds N``).

Each seed is one :func:`dcsched.eval.evaluate.evaluate_policies` run with common random numbers
(every policy sees the same Poisson draws for that seed and day), written to ``seed-S/``. The
summary gives, per policy and metric, the mean over seeds with a 95 % percentile-bootstrap
interval, and the paired difference to the first policy (same seed, same draws), whose interval
is what a referee should read when two policies are close.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcsched.stats import bootstrap_ci
from dcsched.io import atomic_write_json, atomic_write_text

SEED_METRICS = ("utility_usd", "share_of_bound", "share_of_dispatch_bound", "share_of_integer_bound", "violation_rate")
LABELS = {"utility_usd": "utility $/day", "share_of_bound": "% of LP bound",
          "share_of_dispatch_bound": "% of dispatch-only bound", "share_of_integer_bound": "% of integer-level bound",
          "violation_rate": "late+dropped"}


def interval(values) -> dict:
    """Mean and 95 % bootstrap interval of the mean of ``values`` (one per seed)."""
    lo, hi = bootstrap_ci(values)
    return {"mean": float(np.mean(values)), "lo": lo, "hi": hi, "values": [float(v) for v in values]}


def evaluate_seeds(scenario_cfg, policies: list[str], days_spec: str, out_dir: Path, seeds, console=None,
                   **kwargs) -> dict:
    """Evaluate ``policies`` on the stochastic env once per seed; write ``seed-S/`` folders,
    ``seeds.json`` and ``seeds.md``. Returns the summary (policy -> metric -> interval)."""
    from dcsched.eval.evaluate import evaluate_policies

    seeds = list(seeds)
    per_seed = []
    for seed in seeds:
        per_seed.append(evaluate_policies(scenario_cfg, policies, days_spec, Path(out_dir) / f"seed-{seed}",
                                          deterministic=False, seed=seed, plots=False, **kwargs))
    labels = list(per_seed[0])
    metrics = [m for m in SEED_METRICS if all(m in run[labels[0]]["mean"] for run in per_seed)]
    summary = {"scenario": scenario_cfg.name, "seeds": seeds, "days": per_seed[0][labels[0]]["days"],
               "policies": {}, "paired_to": labels[0]}
    for label in labels:
        values = {m: [run[label]["mean"][m] for run in per_seed] for m in metrics}
        entry = {m: interval(v) for m, v in values.items()}
        if label != labels[0]:
            entry["paired_difference"] = {
                m: interval(np.subtract(v, [run[labels[0]]["mean"][m] for run in per_seed])) for m, v in values.items()}
        summary["policies"][label] = entry
    atomic_write_json(Path(out_dir) / "seeds.json", summary)
    table = seeds_markdown(summary, metrics)
    atomic_write_text(Path(out_dir) / "seeds.md", table)
    if console is not None:
        console.print(table)
    return summary


def _fmt(metric: str, x: dict) -> str:
    scale, unit = (100.0, " %") if metric != "utility_usd" else (1.0, "")
    nd = 2 if metric != "utility_usd" else 1
    if x["lo"] != x["lo"]:  # NaN: one seed
        return f"{scale * x['mean']:,.{nd}f}{unit}"
    return f"{scale * x['mean']:,.{nd}f}{unit} [{scale * x['lo']:,.{nd}f}, {scale * x['hi']:,.{nd}f}]"


def seeds_markdown(summary: dict, metrics: list[str]) -> str:
    n = len(summary["seeds"])
    head = (f"Stochastic arrivals, {n} seeds ({', '.join(map(str, summary['seeds']))}), "
            f"{len(summary['days'])} day(s), common random numbers: mean [95 % bootstrap interval over seeds]. "
            f"Paired: the difference to {summary['paired_to']} on the same draws.\n\n")
    cols = [LABELS[m] for m in metrics] + [f"paired {LABELS[m]}" for m in metrics if m == "utility_usd"]
    out = head + "| policy | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols) + "\n"
    for label, entry in summary["policies"].items():
        cells = [_fmt(m, entry[m]) for m in metrics]
        if "utility_usd" in metrics:
            paired = entry.get("paired_difference", {}).get("utility_usd")
            cells.append(_fmt("utility_usd", paired) if paired else "—")
        out += f"| {label} | " + " | ".join(cells) + " |\n"
    return out
