"""Write an experiment's tables (CSV, Markdown), figures (PNG) and report.md from its finished cells."""

from __future__ import annotations

import functools
import json
import re
import shlex
import string
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dcsched.eval.plots import heatmap
from dcsched.experiments import figures
from dcsched.experiments.aggregate import (DIAGNOSTIC_METRICS, STOCHASTIC_METRICS, TASK_METRICS, markdown_table,
                                          paired_differences, paired_markdown,
                                          run_rows, summarize)
from dcsched.experiments.runner import read_result, run_dir
from dcsched.experiments.spec import RunSpec, pairs_on
from dcsched.io import atomic_write, atomic_write_text
from dcsched.provenance import git_commit

TABLE_METRICS = ["utility_usd", "share_of_bound", "violation_rate", "revenue_usd", "energy_cost_usd",
                 "transfer_cost_usd", "penalty_usd", "grid_buy_kwh", "carbon_kg", "mean_steps"]
TIMING_METRICS = ["train_wall_s", "frames_per_s", "utility_usd", "share_of_bound"]
PAIRED_METRICS = ("utility_usd", "share_of_bound", "stochastic_utility_usd")
PAIRED_TASK_METRICS = ("task_return", "success_rate", "first_success_frames")


SPLIT_NAMES = {"test": "test days", "val": "validation days", "fit": "fit days", "train": "training days",
               "all": "days of the year"}


def days_name(days: str) -> str:
    """What a report calls the evaluated days: a split's name (docs/guide.md, "Day splits"), or
    "listed days" for dates."""
    return SPLIT_NAMES.get(str(days), "listed days")


TEXT_FILE = Path(__file__).with_name("report_text.md")  # the report's fixed prose, by section


@functools.cache
def _sections() -> dict[str, str]:
    """{section: its paragraph} of :data:`TEXT_FILE` (a section's lines joined with spaces)."""
    parts = re.split(r"^== (\w+) ==$", TEXT_FILE.read_text(), flags=re.M)
    return {name: " ".join(body.split()) for name, body in zip(parts[1::2], parts[2::2])}


def text(section: str, **fields) -> str:
    """A section of the report's prose with its ``$fields`` filled in (a missing field is a KeyError)."""
    return string.Template(_sections()[section]).substitute(fields)


def _family_text(cfg, families: dict[str, int]) -> str:
    """The paired table's sentence on its multiple-comparison family: the pairs of each scenario."""
    sizes = {n for n in families.values() if n > 0} or {1}
    if max(sizes) == 1:
        return " " + text("family_one", one="one declared pair" if len(cfg.paired) == 1 else "one pair per scenario")
    k = next(iter(sizes)) if len(sizes) == 1 else "k"
    head = (text("family_declared", pairs=len(cfg.paired)) if k == len(cfg.paired) else
            text("family_declared_per_scenario", pairs=len(cfg.paired),
                 families=", ".join(f"{scen}: {n}" for scen, n in families.items())))
    level = f" (equivalently, a p below {0.05 / k:.4f})" if k != "k" else ""
    return " " + head + " " + text("family_bonferroni", k=k, level=level)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda p: frame.to_csv(p, index=False, float_format="%.6g"))


def train_command(spec: RunSpec) -> str:
    """The `dcsched train` line that reproduces a learned cell on its own."""
    return "dcsched train " + " ".join(shlex.quote(x) for x in [spec.recipe, *spec.overrides])


def write_report(cfg, specs: list[RunSpec], exp_dir: Path, command: str, outcome: dict | None = None) -> Path:
    """Aggregate every finished cell into tables, figures and report.md; returns report.md's path."""
    exp_dir = Path(exp_dir)
    by_key = {s.key: read_result(exp_dir, s) for s in specs}  # read each result.json once
    results = [r for r in by_key.values() if r is not None]
    order = [m.label for m in cfg.methods]
    settings = [s.label for s in cfg.settings]
    tables, figs = [], []
    runs = run_rows(results, {s.label: s.x for s in cfg.settings}) if results else pd.DataFrame()
    summary = summarize(runs, order, settings) if not runs.empty else pd.DataFrame()
    if not runs.empty:
        _write_csv(exp_dir / "runs.csv", runs)
        _write_csv(exp_dir / "summary.csv", summary)
        tables += [("runs.csv", "every run (one row per scenario, setting, method, seed)"),
                   ("summary.csv", "per method: n seeds, mean, 95 % bootstrap CI (_lo, _hi), 95 % t interval "
                                   "(_t_lo, _t_hi) and IQM (_iqm)")]
    by_setting = len(settings) > 1
    metrics = TIMING_METRICS if cfg.kind == "timing" else TASK_METRICS if cfg.kind == "task" else TABLE_METRICS
    if cfg.kind == "pareto":  # the priced carbon as its own money column
        metrics = metrics[:5] + ["carbon_cost_usd"] + metrics[5:]
    if cfg.get("stochastic_seeds", 0) and cfg.kind != "timing":  # both regimes side by side
        metrics = metrics[:3] + STOCHASTIC_METRICS + metrics[3:]
    if "batch_violation_rate" in runs and runs["batch_violation_rate"].notna().any():  # scenarios with batch work
        metrics = metrics[:3] + ["batch_violation_rate"] + metrics[3:]
    md_parts = []
    for scen in cfg.scenarios:
        sub = summary[summary["scenario"] == scen] if not summary.empty else summary
        md = markdown_table(sub, metrics, by_setting)
        atomic_write_text(exp_dir / f"table_{scen}.md", md)
        tables.append((f"table_{scen}.md", f"{'evaluation episodes' if cfg.kind == 'task' else days_name(cfg.days)} table, {scen}"))
        md_parts.append(f"### {scen}\n\n{md}")
    if not summary.empty:
        figs += _figures(cfg, specs, summary, exp_dir, by_key)
    done = {k for k, r in by_key.items() if r is not None}
    failed = {k: v for k, v in (outcome or {}).items() if isinstance(v, str)}
    lines = [f"# Experiment `{cfg.name}`", "", cfg.description.strip(), "",
             f"- tier: **{cfg.tier}**" + (" " + text("quick_tier") if cfg.tier == "quick" else ""),
             f"- scenarios: {', '.join(cfg.scenarios)}; settings: {', '.join(settings)}",
             f"- methods: {', '.join(order)}", ("- evaluation: each checkpoint's deterministic action over eval.episodes whole episodes (docs/tasks.md)"
                                          if cfg.kind == "task" else
                                          f"- days: {cfg.days}" + (f" (first {specs[0].max_days})" if specs and specs[0].max_days else "")),
             f"- runs: {len(done)} of {len(specs)} finished" + (f", {len(failed)} failed" if failed else ""),
             f"- launcher: {cfg.launcher}; code: `{git_commit()}`; written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             "", "## Command", "", "```bash", command, "```", ""]
    if cfg.kind == "timing":
        lines += [_timing_note(summary, order), ""]
    lines += ["## Tables", "", (text("tables_task") if cfg.kind == "task" else text("tables"))
              + (" " + text("tables_stochastic", seeds=cfg.stochastic_seeds) if cfg.get("stochastic_seeds", 0) else ""),
              ""] + md_parts
    diag_cols = [m for m in DIAGNOSTIC_METRICS if m in summary and summary[m].notna().any()] if not summary.empty else []
    if diag_cols:
        lines += ["## Training diagnostics (last logged value)", "", text("diagnostics"), ""]
        for scen in cfg.scenarios:
            sub = summary[(summary["scenario"] == scen) & (summary["kind"] == "train")]
            lines += [f"### {scen}", "", markdown_table(sub, diag_cols, by_setting)]
    if cfg.paired and not runs.empty:
        families = {scen: pairs_on(cfg, scen) for scen in cfg.scenarios}
        paired_metrics = PAIRED_TASK_METRICS if cfg.kind == "task" else PAIRED_METRICS
        paired = paired_differences(runs, [list(p) for p in cfg.paired], metrics=paired_metrics, families=families)
        _write_csv(exp_dir / "paired.csv", paired)
        tables.append(("paired.csv", "paired differences A − B on the same seed, with 95 % bootstrap and t CIs, "
                                     "the paired t test's p, Holm-adjusted p and Bonferroni intervals"))
        lines += ["## Paired differences (same seed)", "", text("paired") + _family_text(cfg, families), "",
                  paired_markdown(paired, metrics=paired_metrics)]
    lines += ["Files: " + ", ".join(f"[{name}]({name}) ({what})" for name, what in tables), ""]
    if figs:
        lines += ["## Figures", ""] + [f"![{name}]({name})\n" for name in figs]
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{k}`: {v} (see runs/…/error.txt)" for k, v in failed.items()] + [""]
    lines += ["## Runs and config hashes", "", "| run | kind | config hash | status | command (learned runs) |",
              "|---|---|---|---|---|"]
    for s in specs:
        r = by_key[s.key]
        status = "pending" if r is None else (
            "reused from " + Path(r["reused_from"]).parent.parent.name if r.get("reused_from")
            else f"recorded ({r['wall_s']:.0f} s, code {r.get('git_commit', 'not recorded')})" if r.get("recorded_from")
            else f"done ({r['wall_s']:.0f} s)")
        cmd = f"`{train_command(s)}`" if s.kind == "train" else ""
        lines.append(f"| `{s.key}` | {s.kind} | `{s.config_hash}` | {status} | {cmd} |")
    path = exp_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_text(exp_dir / "experiment.json", json.dumps(
        {"name": cfg.name, "tier": cfg.tier, "command": command, "finished": len(done), "total": len(specs),
         "specs": [s.to_dict() for s in specs]}, indent=1))
    return path


def _timing_note(summary: pd.DataFrame, order: list[str]) -> str:
    trains = summary[summary["kind"] == "train"]
    if trains.empty or "train_wall_s" not in trains:
        return ""
    ref = trains.iloc[0]
    parts = [f"{row['method']} {row['train_wall_s'] / ref['train_wall_s']:.2f}x" for _, row in trains.iterrows()]
    return text("timing", reference=ref["method"], ratios=", ".join(parts))


def _figures(cfg, specs: list[RunSpec], summary: pd.DataFrame, exp_dir: Path, by_key: dict) -> list[str]:
    out = []
    learned = summary[summary["kind"] == "train"]
    has_bound = "share_of_bound" in summary and summary["share_of_bound"].notna().any()
    if cfg.kind == "convergence":
        dirs: dict[str, dict[str, list[Path]]] = {}
        for s in specs:
            train = run_dir(exp_dir, s) / "train"
            if s.kind == "train" and by_key[s.key] is not None:
                dirs.setdefault(s.scenario, {}).setdefault(s.method, []).append(train)
        if dirs:
            figures.convergence(dirs, exp_dir / "convergence.png")
            out.append("convergence.png")
    if cfg.kind == "sweep" and not learned.empty and has_bound:
        figures.sweep(summary, cfg.sweep_label or "setting", exp_dir / "sweep.png",
                      f"{cfg.name}: {days_name(cfg.days)}, mean over seeds with 95 % CI")
        out.append("sweep.png")
    methods = summary[summary["method"] != "LP bound"]  # empty while only the bound has finished: no bars
    if has_bound and not methods.empty and (cfg.kind in ("table", "convergence", "ablation", "behaviour", "stress", "pareto")
                                            or (cfg.kind == "sweep" and learned.empty)):
        figures.bars(methods, "share_of_bound", f"% of the LP bound ({days_name(cfg.days)})",
                     exp_dir / "share_of_bound.png", f"{cfg.name}: utility as % of the perfect-foresight bound "
                     "(bound of each system = 100 %)", percent=True)
        out.append("share_of_bound.png")
    if cfg.kind == "stress" and has_bound and not methods.empty:
        heatmap(methods, "share_of_bound", exp_dir / "stress_heatmap.png",
                        f"{cfg.name}: % of each stressed day's LP bound (mean over days and seeds)")
        out.append("stress_heatmap.png")
    if cfg.kind == "pareto" and not summary.empty:
        figures.pareto(summary, exp_dir / "pareto.png", f"{cfg.name}: cost, quality and carbon per "
                       f"{cfg.sweep_label or 'setting'} (points labelled with it; {days_name(cfg.days)})")
        out.append("pareto.png")
    if cfg.kind == "ablation" and not methods.empty:
        figures.bars(methods, "energy_cost_usd", "energy cost $/day",
                     exp_dir / "energy_cost.png", f"{cfg.name}: energy cost per day ({days_name(cfg.days)})")
        out.append("energy_cost.png")
    if cfg.kind == "timing" and not learned.empty:
        figures.timing(summary, exp_dir / "timing.png")
        out.append("timing.png")
    if cfg.kind == "behaviour":
        for scen in cfg.scenarios:
            traces = {}
            for s in specs:
                path = run_dir(exp_dir, s) / "eval" / "trace.csv"
                if s.scenario == scen and s.kind != "bound" and path.exists() and by_key[s.key] is not None:
                    traces[s.method + (f" (seed {s.seed})" if s.kind == "train" else "")] = pd.read_csv(path)
            if traces:
                name = f"behaviour_{scen}.png"
                figures.behaviour(traces, exp_dir / name, f"Behaviour on the {days_name(cfg.days)}, {scen}")
                out.append(name)
    return out
