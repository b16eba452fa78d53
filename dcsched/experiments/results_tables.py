"""The results tables of the docs, built from the recorded cells under ``results/`` alone.

``dcsched results`` reads every ``results/EXPERIMENT/runs/CELL/{spec,result}.json`` and prints one
row per (scenario, method): the share of the LP bound of the same days with a 95 % Student t
interval over training seeds, the normalised score p' = (policy − local_only) / (bound − local_only)
(0 = the no-transfer rule, 1 = perfect foresight), late+dropped, the share on Poisson arrivals
where recorded, seeds, days, training minutes and the experiment(s) holding the records.
``--write FILE`` replaces the generated blocks of a Markdown file; ``--check FILE`` fails when a
block differs from what the records give (tests/test_results_tables.py checks README.md,
docs/results.md and docs/results/run-log.md so).

A method is its cell configuration without the seed (recipe or policy, overrides, scenario
overrides, days): the same configuration recorded by several experiments is one method (a seed
counted once), two configurations under one name are two rows, the second named with its
experiment. A record written from a checkout with uncommitted changes (``git_commit`` ending in
``-dirty``) is marked †.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcsched.errors import ConfigError
from dcsched.stats import t_ci

BASELINE = "local_only"  # p' = 0
# the pages holding generated blocks, relative to the checkout: `dcsched results --write` (no FILE)
# regenerates them and tests/test_results_tables.py checks them
DOCS_WITH_TABLES = ("README.md", "docs/results.md", "docs/results/baselines.md", "docs/results/run-log.md",
                    "docs/registries.md")
BOUND = "LP bound"  # p' = 1
BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


@dataclass
class Cell:
    """One recorded cell: ``experiment``, its spec and result dicts."""

    experiment: str
    spec: dict
    result: dict

    @property
    def dirty(self) -> bool:
        return str(self.result.get("git_commit") or "").endswith("-dirty")


def read_records(records_dir: Path) -> list[Cell]:
    """Every recorded cell under ``records_dir/*/runs/*/`` (sorted by experiment and folder)."""
    records_dir = Path(records_dir)
    if not records_dir.is_dir():
        raise ConfigError("command line", "--records", f"'{records_dir}' is not a folder of recorded cells",
                          "a folder like results/ (EXPERIMENT/runs/CELL/result.json)")
    cells = []
    for result_path in sorted(records_dir.glob("*/runs/*/result.json")):
        try:
            result = json.loads(result_path.read_text())
        except ValueError as err:
            raise ConfigError(str(result_path), "result.json", f"not readable JSON ({err})") from None
        cells.append(Cell(result_path.parents[2].name, result["spec"], result))
    return cells


def method_identity(spec: dict) -> tuple:
    """A cell's configuration without its seed: what makes two cells the same method."""
    overrides = tuple(o for o in spec.get("overrides", []) if not o.startswith("seed="))
    return (spec["scenario"], spec["kind"], spec.get("recipe", ""), spec.get("policy", ""), overrides,
            tuple(spec.get("scenario_overrides", [])), spec.get("days", "test"), int(spec.get("max_days", 0)))


def _bounds(cells: list[Cell]) -> dict[tuple, dict[str, float]]:
    """{(scenario, scenario overrides): {date: LP bound $/day}} from every recorded bound cell."""
    out: dict[tuple, dict[str, float]] = {}
    for c in cells:
        if c.spec["kind"] == "bound":
            out.setdefault((c.spec["scenario"], tuple(c.spec.get("scenario_overrides", []))), {}).update(c.result["bounds_usd"])
    return out


def seed_rows(cells: list[Cell]) -> list[dict]:
    """One row per (method, seed): utility, its LP bound over the same days, late+dropped, the
    Poisson utility where recorded, training seconds. A seed recorded by several experiments counts
    once: the identical cell (same config hash) is one record; two runs of one configuration and
    seed (e.g. evaluated with and without Poisson seeds) keep the one of the experiment that holds
    the most seeds of the method. Bound cells give no row (they are the denominators)."""
    bounds = _bounds(cells)
    candidates: dict[tuple, list[Cell]] = {}
    for c in cells:
        if c.spec["kind"] != "bound":
            candidates.setdefault((method_identity(c.spec), c.spec["method"], int(c.spec["seed"])), []).append(c)
    seeds_in: dict[tuple, int] = {}
    for (ident, method, _), cs in candidates.items():
        for experiment in {c.experiment for c in cs}:
            seeds_in[(ident, method, experiment)] = seeds_in.get((ident, method, experiment), 0) + 1
    rows = []
    for (ident, method, seed), cs in candidates.items():
        chosen = max(cs, key=lambda c: (seeds_in[(ident, method, c.experiment)], "stochastic" in c.result))
        copies = [c for c in cs if c.spec["config_hash"] == chosen.spec["config_hash"]]
        bound = bounds.get((chosen.spec["scenario"], tuple(chosen.spec.get("scenario_overrides", []))), {})
        days = list(chosen.result["days"])
        if not days or any(d not in bound for d in days):
            continue  # no bound of these days recorded: no share to report
        summary = chosen.result["summary"]
        rows.append({
            "identity": ident, "scenario": chosen.spec["scenario"], "method": method, "kind": chosen.spec["kind"],
            "seed": seed, "days": len(days), "day_list": tuple(days),
            "experiments": {c.experiment for c in copies}, "dirty": any(c.dirty for c in copies),
            "utility_usd": float(summary["utility_usd"]), "bound_usd": float(np.mean([bound[d] for d in days])),
            "violation_rate": float(summary["violation_rate"]),
            "batch_violation_rate": summary.get("batch_violation_rate"),  # scenarios with batch work only
            "mean_steps": float(summary.get("mean_steps", float("nan"))),
            "stochastic_utility_usd": (float(chosen.result["stochastic"]["utility_usd"])
                                       if "stochastic" in chosen.result else None),
            "train_s": float(chosen.result["train"]["wall_s"]) if chosen.spec["kind"] == "train" else None,
            "per_day_usd": {row["day"]: float(row["utility_usd"]) for row in chosen.result.get("per_day", [])},
            "day_bound_usd": {d: float(bound[d]) for d in days},
            "frames": int(chosen.result["train"].get("frames", 0)) if chosen.spec["kind"] == "train" else 0,
            "threads": chosen.result.get("torch_threads"),
            "poisson_draws": len(chosen.result["stochastic"]["seeds"]) if "stochastic" in chosen.result else None,
        })
    return rows


def _violations(s: dict) -> str:
    """The late+dropped share of a table row; with batch work, its batch share beside it."""
    text = f"{100.0 * s['violation_rate']:.2f} %"
    if s.get("batch_violation_rate") is not None:
        text += f" (batch {100.0 * s['batch_violation_rate']:.2f} %)"
    return text


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, 95 % t interval) of ``values``; the interval is NaN for one value."""
    lo, hi = t_ci(values)
    return float(np.mean(values)), float(lo), float(hi)


def _day_scores(seeds: list[dict], local_row: dict | None) -> np.ndarray | None:
    """The normalised score of every seed on every day: (U_d - local_only_d) / (bound_d - local_only_d),
    [seeds, days]; None without local_only's days or a seed's per-day record."""
    if local_row is None or not local_row["per_day_usd"]:
        return None
    days = seeds[0]["day_list"]
    local = local_row["per_day_usd"]
    if any(d not in local or d not in r["per_day_usd"] for r in seeds for d in days):
        return None
    return np.array([[(r["per_day_usd"][d] - local[d]) / (r["day_bound_usd"][d] - local[d]) for d in days]
                     for r in seeds])


def method_summaries(cells: list[Cell]) -> list[dict]:
    """Per (scenario, method configuration): n seeds, share of the LP bound and p' (mean and 95 %
    t interval over seeds), late+dropped, Poisson share, training minutes, experiments. p' needs the
    deterministic ``local_only`` of the same scenario and days; it is None without one."""
    rows = seed_rows(cells)
    baseline = {(r["scenario"], r["identity"][5], r["day_list"]): r for r in rows
                if r["method"] == BASELINE and r["kind"] == "policy"}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["identity"], r["method"]), []).append(r)
    names: dict[tuple, int] = {}  # a name is shared only among the methods of one scenario and days
    for ident, method in groups:
        names[(ident[0], ident[6], ident[7], method)] = names.get((ident[0], ident[6], ident[7], method), 0) + 1
    out = []
    for (ident, method), seeds in groups.items():
        seeds = sorted(seeds, key=lambda r: r["seed"])
        first = seeds[0]
        experiments = sorted(set().union(*(r["experiments"] for r in seeds)))
        label = method if names[(ident[0], ident[6], ident[7], method)] == 1 else f"{method} ({experiments[0]})"
        share = [r["utility_usd"] / r["bound_usd"] for r in seeds]
        local_row = baseline.get((first["scenario"], ident[5], first["day_list"]))
        local = None if local_row is None else local_row["utility_usd"]
        p_prime = None if local is None else [(r["utility_usd"] - local) / (r["bound_usd"] - local) for r in seeds]
        stochastic = [r["stochastic_utility_usd"] / r["bound_usd"] for r in seeds if r["stochastic_utility_usd"] is not None]
        out.append({
            "scenario": first["scenario"], "method": label, "name": method, "policy": ident[3], "kind": first["kind"], "seeds": [r["seed"] for r in seeds],
            "days": first["days"], "whole_split": ident[7] == 0, "days_spec": ident[6],
            "share": _mean_ci(share), "p_prime": None if p_prime is None else _mean_ci(p_prime),
            "violation_rate": float(np.mean([r["violation_rate"] for r in seeds])),
            "batch_violation_rate": (None if first["batch_violation_rate"] is None
                                     else float(np.mean([r["batch_violation_rate"] for r in seeds]))),
            "utility_usd": float(np.mean([r["utility_usd"] for r in seeds])),
            "bound_usd": float(np.mean([r["bound_usd"] for r in seeds])),
            "mean_steps": float(np.mean([r["mean_steps"] for r in seeds])),
            "scenario_overrides": ident[5],
            "stochastic_share": _mean_ci(stochastic) if len(stochastic) == len(seeds) else None,
            "train_min": float(np.mean([r["train_s"] for r in seeds])) / 60.0 if first["kind"] == "train" else None,
            "threads": sorted({r["threads"] for r in seeds if r["threads"] is not None}),
            "poisson_draws": sorted({r["poisson_draws"] for r in seeds if r["poisson_draws"] is not None}),
            "experiments": experiments, "dirty": any(r["dirty"] for r in seeds),
            "dates": list(first["day_list"]), "day_scores": _day_scores(seeds, local_row),
            "day_utility_usd": np.array([[r["per_day_usd"].get(d, np.nan) for d in first["day_list"]] for r in seeds]),
            "day_share": np.array([[r["per_day_usd"].get(d, np.nan) / r["day_bound_usd"][d] for d in first["day_list"]]
                                   for r in seeds]),
            "frames": [r["frames"] for r in seeds],
        })
    scenario_rank = {"paper3": 0, "paper3_energy": 1, "global8": 2}
    return sorted(out, key=lambda r: (scenario_rank.get(r["scenario"], 9), r["scenario"], -r["share"][0], r["method"]))


def _pct(triple: tuple[float, float, float] | None, digits: int = 1) -> str:
    if triple is None:
        return "—"
    mean, lo, hi = (100.0 * v for v in triple)
    text = f"{mean:.{digits}f}"
    return text if np.isnan(lo) else f"{text} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _ratio(triple: tuple[float, float, float] | None) -> str:
    if triple is None:
        return "—"
    mean, lo, hi = triple
    return f"{mean:.3f}" if np.isnan(lo) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def headline(summaries: list[dict]) -> list[dict]:
    """The summaries of the headline tables: methods evaluated on every test day (cells of the first
    N days only, e.g. ``integer_levels``' 7, have their own table: :func:`integer_table`)."""
    return [s for s in summaries if s["whole_split"] and s["days_spec"] == "test"]


def glance_table(summaries: list[dict]) -> str:
    """The "results at a glance" Markdown table: one row per (scenario, method), best first."""
    draws = sorted({d for s in summaries for d in s["poisson_draws"]})
    poisson = f"% of bound, Poisson ({draws[0]} draws)" if len(draws) == 1 else "% of bound, Poisson"
    lines = [f"| scenario | method | kind | % of LP bound [95 % t] | p' [95 % t] | late+dropped | {poisson} "
             "| seeds | days | train min (torch threads) | experiment |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        kind = {"train": "learned", "policy": "baseline"}[s["kind"]]
        seeds = str(len(s["seeds"])) if s["kind"] == "train" else "—"
        threads = "–".join(str(t) for t in (s["threads"][0], s["threads"][-1])) if len(s["threads"]) > 1 else \
            "".join(map(str, s["threads"])) or "?"
        train = "—" if s["train_min"] is None else f"{s['train_min']:.1f} ({threads})"
        mark = " †" if s["dirty"] else ""
        own_draws = f" ({s['poisson_draws'][0]} draws)" if len(draws) > 1 and s["poisson_draws"] else ""
        lines.append(f"| {s['scenario']} | {s['method']}{mark} | {kind} | {_pct(s['share'])} | {_ratio(s['p_prime'])} | "
                     f"{_violations(s)} | {_pct(s['stochastic_share'])}{own_draws} | {seeds} | "
                     f"{s['days']} | "
                     f"{train} | {', '.join(s['experiments'])} |")
    return "\n".join(lines) + "\n"


def robust_table(summaries: list[dict]) -> str:
    """rliable's aggregates of the normalised score p' over runs (training seeds) x tasks (test days),
    per scenario: IQM with a 95 % stratified-bootstrap interval, median, optimality gap (1 - mean of
    min(p', 1)), and the probability of improvement over the scenario's best baseline (the
    deterministic policy of highest mean p'), with its interval. Methods without per-day scores
    (no local_only of their days recorded) are left out."""
    from dcsched.stats import (aggregate_iqm, aggregate_median, optimality_gap, probability_of_improvement,
                               probability_of_improvement_ci, stratified_bootstrap_ci)

    lines = ["| scenario | method | runs x tasks | IQM p' [95 % stratified bootstrap] | median p' | optimality gap "
             "| P(> best baseline) [95 %] | best baseline |", "|---|---|---|---|---|---|---|---|"]
    scored = [s for s in summaries if s["day_scores"] is not None]
    for scenario in dict.fromkeys(s["scenario"] for s in scored):
        rows = [s for s in scored if s["scenario"] == scenario]
        baselines = [s for s in rows if s["kind"] == "policy" and s["method"] != BASELINE]
        best = max(baselines, key=lambda s: float(np.mean(s["day_scores"])), default=None)
        for s in sorted(rows, key=lambda s: -float(aggregate_iqm(s["day_scores"]))):
            scores = s["day_scores"]
            iqm_lo, iqm_hi = stratified_bootstrap_ci(scores)
            iqm = f"{float(aggregate_iqm(scores)):.3f}" + ("" if np.isnan(iqm_lo) else f" [{iqm_lo:.3f}, {iqm_hi:.3f}]")
            if best is None or s is best:
                improvement = "—"
            else:
                lo, hi = probability_of_improvement_ci(scores, best["day_scores"])
                improvement = f"{probability_of_improvement(scores, best['day_scores']):.2f}" + (
                    "" if np.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]")
            lines.append(f"| {scenario} | {s['method']} | {scores.shape[0]} x {scores.shape[1]} | {iqm} | "
                         f"{float(aggregate_median(scores)):.3f} | {float(optimality_gap(scores)):.3f} | {improvement} | "
                         f"{'—' if best is None or s is best else best['method']} |")
    return "\n".join(lines) + "\n"


RUNGS = ("best rule", "best rounding planner", "best exact-level planner", "best learned policy")


def rung_of(summary: dict) -> str | None:
    """Which rung of the ladder a method stands on (:data:`RUNGS`), from its policy's own
    ``family``, ``clairvoyant`` and ``exact_levels``; None for a clairvoyant policy (a relative of
    the bound, not a baseline to beat)."""
    if summary["kind"] == "train":
        return RUNGS[3]
    from dcsched.eval.policies import construct_policy

    policy = construct_policy(summary["policy"])
    if policy.clairvoyant:
        return None
    if policy.family == "planner":
        return RUNGS[2] if policy.exact_levels else RUNGS[1]
    return RUNGS[0]


def ladder_table(summaries: list[dict]) -> str:
    """Per scenario, the best method of each rung (:data:`RUNGS`, by mean share of the LP bound;
    rules exclude local_only, the p' = 0 reference shown beside them) and the LP bound: what each
    step from a rule to learning buys, all on the same days of the scenario as shipped (cells with
    scenario overrides, e.g. a stress, are left out)."""
    lines = ["| scenario | rung | method | % of LP bound [95 % t] | p' [95 % t] | late+dropped | seeds | experiment |",
             "|---|---|---|---|---|---|---|---|"]
    for scenario in dict.fromkeys(s["scenario"] for s in summaries):
        rows = [s for s in summaries if s["scenario"] == scenario and not s["scenario_overrides"]]  # the shipped world
        reference = next((s for s in rows if s["name"] == BASELINE and s["kind"] == "policy"), None)
        best = {}
        for s in rows:
            rung = rung_of(s)
            if rung is None or s["name"] == BASELINE:
                continue
            if rung not in best or s["share"][0] > best[rung]["share"][0]:
                best[rung] = s
        for label, s in [("reference (p' = 0)", reference)] + [(r, best.get(r)) for r in RUNGS]:
            if s is None:
                lines.append(f"| {scenario} | {label} | none recorded | | | | | |")
                continue
            seeds = str(len(s["seeds"])) if s["kind"] == "train" else "—"
            lines.append(f"| {scenario} | {label} | {s['method']}{' †' if s['dirty'] else ''} | {_pct(s['share'])} | "
                         f"{_ratio(s['p_prime'])} | {_violations(s)} | {seeds} | "
                         f"{', '.join(s['experiments'])} |")
        lines.append(f"| {scenario} | perfect foresight (p' = 1) | LP bound | 100 | 1.000 | | | |")
    return "\n".join(lines) + "\n"


def integer_bounds(records_dir: Path) -> dict[str, dict[str, float]]:
    """{scenario: {date: integer-level bound $/day}} from the ``dcsched solve --integer-levels``
    bounds files under ``records_dir/bounds/`` that were solved for the scenario as shipped (its
    bound hash); a file of another configuration is left out."""
    from dcsched.baselines.lp_bound import bound_scenario_hash
    from dcsched.config import load_scenario

    out: dict[str, dict[str, float]] = {}
    for path in sorted(Path(records_dir).glob("bounds/*.json")):
        try:
            data = json.loads(path.read_text())
            per_day = {r["day"]: float(r["integer_bound_usd"]) for r in data["per_day"] if "integer_bound_usd" in r}
            scenario = str(data["scenario"])
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(str(path), "bounds.json", f"not a bounds file of `dcsched solve` ({err})") from None
        try:
            shipped = bound_scenario_hash(load_scenario(scenario))
        except ConfigError:
            continue  # a scenario this checkout does not ship
        if per_day and data.get("scenario_hash") == shipped:
            out.setdefault(scenario, {}).update(per_day)
    return out


def integer_table(summaries: list[dict], integer: dict[str, dict[str, float]]) -> str:
    """Per scenario, every policy evaluated on the first N test days whose integer-level bound is
    recorded (the ``integer_levels`` experiment): $/day, % of the LP bound and % of the
    integer-level bound of the same days, late+dropped and mean denoising steps; the two bounds as
    the first rows. Learned methods and whole-split cells are in the glance table."""
    lines = ["| scenario | method | days | $/day | % of LP bound | % of integer-level bound | late+dropped "
             "| mean steps | experiment |", "|---|---|---|---|---|---|---|---|---|"]
    rows = [s for s in summaries if not s["whole_split"] and s["days_spec"] == "test" and s["kind"] == "policy"
            and not s["scenario_overrides"] and all(d in integer.get(s["scenario"], {}) for d in s["dates"])]
    by_days: dict[tuple, list[dict]] = {}
    for s in rows:
        by_days.setdefault((s["scenario"], tuple(s["dates"])), []).append(s)
    for (scenario, dates), group in by_days.items():
        lp = group[0]["bound_usd"]
        integer_usd = float(np.mean([integer[scenario][d] for d in dates]))
        lines.append(f"| {scenario} | **LP bound** | {len(dates)} | {lp:,.2f} | 100 % | — | | | |")
        lines.append(f"| {scenario} | **integer-level bound** | {len(dates)} | {integer_usd:,.2f} | "
                     f"{100.0 * integer_usd / lp:.2f} % | 100 % | | | results/bounds |")
        for s in sorted(group, key=lambda s: -s["utility_usd"]):
            mark = " †" if s["dirty"] else ""
            lines.append(f"| {scenario} | {s['name']}{mark} | {len(dates)} | {s['utility_usd']:,.2f} | "
                         f"{100.0 * s['utility_usd'] / lp:.2f} % | {100.0 * s['utility_usd'] / integer_usd:.2f} % | "
                         f"{_violations(s)} | {s['mean_steps']:.1f} | {', '.join(s['experiments'])} |")
    return "\n".join(lines) + "\n"


def run_log_table(cells: list[Cell]) -> str:
    """Which code, machine and threads produced each recorded cell: one row per record (experiment,
    cell, kind, commit, host, torch threads, wall time, finished), in the order of the records."""
    lines = ["| experiment | cell | kind | code | host | torch threads | wall s | finished (UTC) |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        r = c.result
        commit = r.get("git_commit") or "not recorded"
        if r.get("git_commit_at_end"):
            commit += f" (checkout at end: {r['git_commit_at_end']})"
        lines.append(f"| {c.experiment} | {c.spec.get('key', '')} | {c.spec['kind']} | {commit} | {r.get('host', '?')} | "
                     f"{r.get('torch_threads', '?')} | {float(r.get('wall_s', float('nan'))):,.0f} | "
                     f"{str(r.get('finished_at', '?'))[:16].replace('T', ' ')} |")
    return "\n".join(lines) + "\n"


def marl_eval_json(summaries: list[dict]) -> dict:
    """The records in marl-eval's raw-data layout (instadeepai/marl-eval): environment "dcsched" ->
    task "SCENARIO/DATE" (a test day) -> algorithm (the method) -> "run_SEED" -> {"step_0":
    {"step_count": training frames, metrics}, "absolute_metrics": {metrics}}, each metric a one-item
    list (one deterministic evaluation of the day): normalised_score (p' of the day, where local_only
    is recorded), share_of_bound, utility_usd."""
    out: dict = {"dcsched": {}}
    for s in summaries:
        for j, date in enumerate(s["dates"]):
            task = out["dcsched"].setdefault(f"{s['scenario']}/{date}", {})
            runs = task.setdefault(s["method"], {})
            for i, seed in enumerate(s["seeds"]):
                metrics = {"share_of_bound": [float(s["day_share"][i, j])],
                           "utility_usd": [float(s["day_utility_usd"][i, j])]}
                if s["day_scores"] is not None:
                    metrics["normalised_score"] = [float(s["day_scores"][i, j])]
                runs[f"run_{seed}"] = {"step_0": {"step_count": int(s["frames"][i]), **metrics},
                                       "absolute_metrics": metrics}
    return out


def plot_performance_profiles(summaries: list[dict], path: Path) -> Path:
    """One panel per scenario: for each method with per-day scores, the fraction of its runs x test
    days whose normalised score p' exceeds tau, against tau (rliable's performance profile; a curve
    above another is better at every threshold). Learned methods solid, baselines dashed."""
    from dcsched.eval.plots import _save, plt
    from dcsched.stats import performance_profile

    scored = [s for s in summaries if s["day_scores"] is not None]
    scenarios = list(dict.fromkeys(s["scenario"] for s in scored))
    taus = np.linspace(-1.0, 1.0, 201)
    fig, axes = plt.subplots(1, max(1, len(scenarios)), figsize=(5.5 * max(1, len(scenarios)), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        methods = [s for s in scored if s["scenario"] == scenario]
        colours = plt.cm.tab20(np.linspace(0.0, 1.0, max(len(methods), 2)))
        for s, colour in zip(methods, colours):
            ax.plot(taus, performance_profile(s["day_scores"], taus), "-" if s["kind"] == "train" else "--",
                    label=s["method"], linewidth=1.2, color=colour)
        ax.set(title=f"{scenario}: runs x test days", xlabel="normalised score p' (0 local_only, 1 LP bound)",
               ylabel="fraction with p' > tau", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    return _save(fig, Path(path))


def export_results(records_dir: Path, out_dir: Path) -> list[Path]:
    """Write every generated table (``glance.md``, ``robust.md``), ``marl_eval.json`` and
    ``performance_profiles.png`` into ``out_dir``, from the records alone."""
    from dcsched.io import atomic_write_json, atomic_write_text

    summaries = headline(method_summaries(read_records(records_dir)))
    out_dir = Path(out_dir)
    written = [atomic_write_text(out_dir / "glance.md", glance_table(summaries)),
               atomic_write_text(out_dir / "robust.md", robust_table(summaries)),
               atomic_write_json(out_dir / "marl_eval.json", marl_eval_json(summaries))]
    written.append(plot_performance_profiles(summaries, out_dir / "performance_profiles.png"))
    return written


SHAPING_TEXT = {"off_policy": "any shaper (on replayed batches)", "per_agent": "per-provider reward agents",
                "none": "—"}


def algorithms_table(builtin_only: bool = True) -> str:
    """The registered algorithms and what each implements (their Capabilities), as Markdown; the
    built-in ones only unless ``builtin_only`` is False (a plugin is not part of the docs)."""
    from dcsched.agents.checkpoint_format import algorithm_class
    from dcsched.registry import AGENTS

    lines = ["| `agent.name` | learns | action encodings | acts on | reward shaping | constraints | what it is |",
             "|---|---|---|---|---|---|---|"]
    for entry in AGENTS.entries():
        cls = algorithm_class(entry.name)
        if builtin_only and not cls.__module__.startswith("dcsched."):
            continue
        caps = cls.capabilities
        view = {"central": "the central env", "per_provider": "one agent per data centre"}.get(caps.view, caps.view)
        constraints = ", ".join(c for c in caps.constraints if c != "none") or "—"
        lines.append(f"| `{entry.name}` | {'on-policy' if caps.on_policy else 'off-policy (replay)'} | "
                     f"{', '.join(caps.action_encodings)} | {view} | {SHAPING_TEXT.get(caps.shaping, caps.shaping)} | "
                     f"{constraints} | {entry.description} |")
    return "\n".join(lines) + "\n"


def _builtin(obj) -> bool:
    """A component shipped with dcsched (not a plugin's): defined in a dcsched module, or a file of the package."""
    from dcsched.paths import PACKAGE_DIR

    if isinstance(obj, Path):
        return PACKAGE_DIR.resolve() in obj.resolve().parents
    return str(getattr(obj, "__module__", "")).startswith("dcsched")


def registries_page() -> str:
    """Every built-in component of every registry, and the declared experiments, as Markdown
    sections (what `dcsched list` prints): the name a recipe or command line uses and its description."""
    from dcsched.experiments.spec import experiment_descriptions
    from dcsched.registry import ALL_REGISTRIES

    parts = []
    for kind, registry in ALL_REGISTRIES.items():
        rows = [f"| `{e.name}` | {e.description} |" for e in registry.entries() if _builtin(e.obj)]
        parts.append(f"### {kind}\n\n| name | what it is |\n|---|---|\n" + "\n".join(rows) + "\n")
    rows = [f"| `{name}` | {text} |" for name, text in experiment_descriptions().items()]
    parts.append("### experiment\n\n| name | what it is |\n|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def render_tables(records_dir: Path) -> dict[str, str]:
    """{block name: Markdown} of every generated table: the results from the records alone, the
    algorithms from the registry."""
    cells = read_records(records_dir)
    everything = method_summaries(cells)
    summaries = headline(everything)
    return {"glance": glance_table(summaries), "robust": robust_table(summaries), "runlog": run_log_table(cells),
            "integer": integer_table(everything, integer_bounds(records_dir)), "ladder": ladder_table(summaries),
            "algorithms": algorithms_table(), "registries": registries_page()}


def write_or_check(records_dir: Path, files: list[Path], write: bool) -> list[str]:
    """Bring the generated blocks of ``files`` up to date (``write``) or list the stale ones
    (``FILE: block``). A file without any block is a ConfigError: the command would do nothing."""
    from dcsched.io import atomic_write_text

    tables = render_tables(records_dir)
    stale = []
    for path in map(Path, files):
        if not path.is_file():
            raise ConfigError("command line", "--write/--check", f"'{path}' is not a file")
        text = path.read_text()
        if not blocks_in(text):
            raise ConfigError(str(path), "results block", "no generated block to fill",
                              ", ".join(f"<!-- results:{n} --> ... <!-- /results:{n} -->" for n in sorted(tables)))
        new, changed = replace_blocks(text, tables, str(path))
        stale += [f"{path}: {name}" for name in changed]
        if write and changed:
            atomic_write_text(path, new)
    return stale


def replace_blocks(text: str, tables: dict[str, str], source: str = "text") -> tuple[str, list[str]]:
    """``text`` with each ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->`` block's body
    replaced by ``tables[NAME]``; also the names of the blocks whose body changed. An unknown
    block name is a ConfigError naming ``source``."""
    changed: list[str] = []

    def swap(match: re.Match) -> str:
        name = match.group("name")
        if name not in tables:
            raise ConfigError(source, f"results:{name}", "no such generated table", ", ".join(sorted(tables)))
        if match.group("body") != tables[name]:
            changed.append(name)
        return match.group(1) + tables[name] + match.group(4)

    return BLOCK.sub(swap, text), changed


def blocks_in(text: str) -> list[str]:
    return [m.group("name") for m in BLOCK.finditer(text)]
