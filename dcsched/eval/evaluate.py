"""`dcsched evaluate`: any policies on chosen days -> trace.csv, summary.json, table, plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcsched.config import EnvConfig
from dcsched.data.exogenous import day_dates, parse_days
from dcsched.envs.dc_env import make_env
from dcsched.errors import ConfigError
from dcsched.eval.per_dc import per_dc_frame, per_dc_markdown
from dcsched.eval.plots import plot_comparison, plot_day_behaviour
from dcsched.eval.rollout import run_days
from dcsched.eval.summary import day_summary, mean_summary
from dcsched.eval.trace import trace_frame, write_trace
from dcsched.io import atomic_write_json, atomic_write_text

TABLE_COLUMNS = ("utility_usd", "revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd",
                 "violation_rate", "grid_buy_kwh", "carbon_kg")


def policy_label(name: str) -> str:
    """A readable label: registry names as they are; checkpoints by their run folder (an
    experiment cell's, whose run lives in ``CELL/train/``, by the cell's folder)."""
    path = Path(name)
    if path.suffix != ".ckpt":
        return name
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    run = run_dir.parent.name if run_dir.name == "train" and run_dir.parent.name else run_dir.name
    return f"{run}/{path.stem}" if path.stem != "last" else run


POLICY_ENV_KEYS = ("normalize_obs", "action_encoding", "transfer_logit_scale", "transfer_min_share", "transfer_chunks",
                   "observe_faults", "steps_mode")


def checkpoint_env_config(path: str, base: EnvConfig) -> EnvConfig | None:
    """``base`` with the observation/action settings a checkpoint was trained with (None when the
    file is missing: the policy factory reports that)."""
    import dataclasses

    from dcsched.agents.checkpoint_format import load_checkpoint

    if not Path(path).exists():
        return None
    trained = load_checkpoint(path, "cpu", "--policy")["hyper_parameters"]["cfg"].get("env", {})
    return dataclasses.replace(base, **{k: trained[k] for k in POLICY_ENV_KEYS if k in trained})


# The bounds an evaluation may compare with, by kind: (per-day key, share column). ``lp`` is the
# perfect-foresight LP (`dcsched solve`), ``dispatch`` the LP with the env's battery rule
# (`--dispatch-only`), ``integer`` the integer-level bound (`--integer-levels`).
BOUND_KINDS = {"lp": ("lp_bound_usd", "share_of_bound"),
               "dispatch": ("dispatch_bound_usd", "share_of_dispatch_bound"),
               "integer": ("integer_bound_usd", "share_of_integer_bound")}
SHARE_COLUMNS = tuple(share for _, share in BOUND_KINDS.values())

Bounds = dict[str, dict[str, float]]  # {kind of BOUND_KINDS: {date "YYYY-MM-DD": bound $/day}}


def evaluate_policies(scenario_cfg, policies: list[str], days_spec: str = "test", out_dir: Path | None = None,
                      deterministic: bool = True, seed: int = 0, max_days: int = 0, env_cfg: EnvConfig | None = None,
                      bounds: Bounds | None = None, plots: bool = True, console=None, workers: int = 1) -> dict[str, dict]:
    """Evaluate each policy on the same days: :func:`play_policies`, then :func:`summarise` each
    policy's outcome, then (with ``out_dir``) :func:`write_evaluation`. Returns {label: summary}.

    ``bounds``: {kind: {date: $/day}} for kinds of :data:`BOUND_KINDS`; each adds its per-day bound
    and its share column (``share_of_bound``, ...) to the summaries.
    ``workers`` > 1: a day-separable policy (:mod:`dcsched.eval.day_pool`) plays chunks of the days in
    that many processes, with the same outcomes as one batch; any other policy plays one batch.
    Deterministic arrivals only (a stochastic env draws every day from one generator).
    """
    if workers < 1 or (workers > 1 and not deterministic):
        raise ValueError(f"workers must be >= 1, and 1 with stochastic arrivals; got {workers}")
    bounds = check_bounds(bounds)
    days = parse_days(scenario_cfg, days_spec)
    if max_days:
        days = days[:max_days]
    dates = day_dates(scenario_cfg, days)
    env_cfg = env_cfg or EnvConfig()
    if not isinstance(env_cfg, EnvConfig):  # a DictConfig from a recipe
        from omegaconf import OmegaConf

        env_cfg = EnvConfig(**OmegaConf.to_container(env_cfg, resolve=True))
    env = make_env(scenario_cfg, env_cfg, days=days, sequential_days=True, stochastic=not deterministic, seed=seed)
    trained = _training_configs(policies)
    _warn_if_checkpoints_see_training_days(scenario_cfg, trained, days, console)
    _note_checkpoints_trained_in_another_world(scenario_cfg, trained, console)
    played = play_policies(scenario_cfg, env, env_cfg, policies, days, dates, deterministic, seed, workers, console)
    results: dict[str, dict] = {}
    for name, (out, reward_mode) in played.items():
        per_day, mean = summarise(out, dates, env.params.slot_h, bounds)
        label = policy_label(name)
        results[label] = {
            "policy": label, "scenario": scenario_cfg.name, "deterministic": deterministic, "seed": seed,
            "reward_mode": reward_mode,  # the env reward summed into episode_return
            "days": dates, "mean": mean, "per_day": per_day,
            "units": {"money": "USD per day", "energy": "kWh per day", "carbon": "kg per day"},
        }
    if out_dir is not None:
        outs = {policy_label(name): out for name, (out, _) in played.items()}
        write_evaluation(Path(out_dir), scenario_cfg, deterministic, env, outs, results, plots)
    if console is not None:
        print_table(results, console, None if out_dir is None else "comparison.md")  # out_dir may be a temp folder
    return results


def check_bounds(bounds: Bounds | None) -> Bounds:
    """``bounds`` with its kinds checked ({} for None): a mapping keyed by date (the shape before the
    kinds) or an unknown kind is refused by name."""
    bounds = dict(bounds or {})
    unknown = [k for k in bounds if k not in BOUND_KINDS]
    if unknown:
        raise ValueError(f"bounds are {{kind: {{date: $/day}}}} with kinds {', '.join(BOUND_KINDS)}; got keys {unknown[:3]}")
    return {kind: dict(per_date) for kind, per_date in bounds.items() if per_date}


def _training_configs(policies: list[str]) -> dict[str, dict]:
    """{checkpoint path: the run config it was trained with} for each readable training checkpoint
    among ``policies`` (loaded once here; one that does not load is reported when it plays)."""
    from dcsched.agents.checkpoint_format import load_checkpoint

    out = {}
    for policy in policies:
        if Path(policy).suffix != ".ckpt" or not Path(policy).is_file():
            continue
        try:
            out[policy] = dict(load_checkpoint(Path(policy), "cpu", "--policy")["hyper_parameters"]["cfg"])
        except (KeyError, TypeError, ConfigError):
            continue
    return out


def _warn_if_checkpoints_see_training_days(scenario_cfg, trained: dict[str, dict], days: list[int], console) -> None:
    """A warning for each checkpoint evaluated on days of the split it trained on (its
    ``env.split``: ``train`` covers the val days too, ``fit`` does not; docs/guide.md, "Day splits")."""
    import warnings

    from dcsched.data.exogenous import split_days

    for policy, cfg in trained.items():
        split = (cfg.get("env") or {}).get("split", "train")
        seen = sorted(set(days) & set(split_days(scenario_cfg, split)))
        if not seen:
            continue
        msg = (f"{len(seen)} of the {len(days)} evaluated days (e.g. {day_dates(scenario_cfg, seen[:1])[0]}) are days "
               f"{policy} trained on (env.split={split}): not a held-out score")
        warnings.warn(msg, stacklevel=3)
        if console is not None:
            console.print(f"[yellow]warning:[/yellow] {msg}")


def _note_checkpoints_trained_in_another_world(scenario_cfg, trained: dict[str, dict], console) -> None:
    """A console note for each checkpoint whose training scenario differs from the evaluated one
    (a transfer evaluation: allowed, but said); one whose sizes do not fit is refused when it loads."""
    if console is None:
        return
    from dcsched.agents.checkpoint_policy import scenario_differences

    for policy, cfg in trained.items():
        if "scenario" not in cfg:
            continue
        diffs = scenario_differences(cfg["scenario"], scenario_cfg)
        if diffs:
            keys = ", ".join(f"scenario.{k}" for k, _, _ in diffs)
            console.print(f"note: {policy} was trained on '{cfg['scenario'].get('name')}', a scenario that differs "
                          f"from the evaluated one in {keys}{' ...' if len(diffs) == 6 else ''} (a transfer evaluation)")


def play_policies(scenario_cfg, env, env_cfg: EnvConfig, policies: list[str], days: list[int], dates: list[str],
                  deterministic: bool, seed: int, workers: int = 1, console=None) -> dict[str, tuple[dict, str]]:
    """Roll out each policy on ``env``'s days: {name: (outcome arrays [D, T, ...], reward mode)}.
    Every policy sees the same arrival draws (the env's generator reseeded with ``seed``: common
    random numbers). A checkpoint plays in the env settings it was trained with (observation
    normalisation, action decoding); a day-separable policy may play in ``workers`` processes."""
    from contextlib import nullcontext

    from rich.progress import Progress

    from dcsched.eval.day_pool import is_day_separable, outcomes_in_processes
    from dcsched.eval.policies import make_policy

    def env_for(name: str):
        own = checkpoint_env_config(name, env_cfg) if Path(name).suffix == ".ckpt" else None
        if own is None or own == env_cfg:
            return env
        return make_env(scenario_cfg, own, days=days, sequential_days=True, stochastic=not deterministic, seed=seed)

    played: dict[str, tuple[dict, str]] = {}
    bar_ctx = Progress(transient=True, console=console) if console is not None else nullcontext()
    with bar_ctx as bar:
        for name in policies:
            task = bar.add_task(f"{policy_label(name)}: {len(days)} day(s)", total=env.T) if bar else None
            if workers > 1 and len(days) > 1 and is_day_separable(name):
                advance = (lambda share, task=task: bar.advance(task, share * env.T)) if bar else None
                out = outcomes_in_processes(scenario_cfg, env_cfg, name, dates, seed, workers, progress=advance)
                played[name] = (out, env.reward_mode)
                continue
            penv = env_for(name)
            policy = make_policy(name, penv, seed=seed)
            penv.rng.manual_seed(int(seed))  # common random numbers: every policy sees the same arrival draws
            played[name] = (run_days(penv, policy, progress=(lambda: bar.advance(task)) if bar else None),
                            penv.reward_mode)
    return played


def summarise(out: dict, dates: list[str], slot_h: float, bounds: Bounds) -> tuple[list[dict], dict]:
    """(per-day rows, their mean) of one policy's outcome arrays, each row with its ``day`` and, for
    each kind of ``bounds``, the day's bound and the utility's share of it; the mean's share is the
    mean utility over the mean bound. A bound must cover every day of ``dates`` (ValueError)."""
    for kind, per_date in bounds.items():
        missing = [d for d in dates if d not in per_date]
        if missing:
            raise ValueError(f"the {kind} bound has no value for {missing[0]} ({len(missing)} of {len(dates)} "
                             "evaluated days): a bound must cover every evaluated day")
    per_day = day_summary(out, slot_h)
    for date, row in zip(dates, per_day):
        row["day"] = date
        for kind, per_date in bounds.items():
            key, share = BOUND_KINDS[kind]
            row[key] = per_date[date]
            row[share] = row["utility_usd"] / per_date[date] if per_date[date] else float("nan")
    mean = mean_summary([{k: v for k, v in r.items() if k != "day"} for r in per_day])
    for kind in bounds:
        key, share = BOUND_KINDS[kind]
        mean[share] = mean["utility_usd"] / mean[key]
    return per_day, mean


def write_evaluation(out_dir: Path, scenario_cfg, deterministic: bool, env, outs: dict[str, dict],
                     results: dict[str, dict], plots: bool = True) -> None:
    """Per policy (in ``out_dir`` for one, ``out_dir/<label>/`` for several): trace.csv,
    summary.json and behaviour.png; in ``out_dir``: scenario.yaml (what ran), comparison.{md,csv,png}
    and per_dc.{md,csv}. ``outs`` and ``results`` are keyed by label."""
    from omegaconf import OmegaConf

    dc_names = [dc.region for dc in scenario_cfg.dcs]
    class_names = list(scenario_cfg.classes.names)
    per_dc: dict[str, pd.DataFrame] = {}
    for label, summary in results.items():
        out = outs[label]
        per_dc[label] = per_dc_frame(out, dc_names, env.params.slot_h)
        target = out_dir if len(results) == 1 else out_dir / label.replace("/", "_")
        target.mkdir(parents=True, exist_ok=True)
        write_trace(target / "trace.csv", trace_frame(out, summary["days"], dc_names, class_names))
        atomic_write_json(target / "summary.json", summary)
        if plots:
            plot_day_behaviour(out, dc_names, summary["days"][0], env.params.slot_h, target / "behaviour.png",
                               policy=label)
    ran = OmegaConf.create(OmegaConf.to_container(scenario_cfg, resolve=True))
    ran.arrivals.stochastic = not deterministic  # exactly what ran: --deterministic overrides the file
    atomic_write_text(out_dir / "scenario.yaml", OmegaConf.to_yaml(ran))
    table = comparison_table(results)
    atomic_write_text(out_dir / "comparison.md", table_markdown(table))
    _write_csv(out_dir / "comparison.csv", table)
    atomic_write_text(out_dir / "per_dc.md", per_dc_markdown(per_dc))
    _write_csv(out_dir / "per_dc.csv", pd.concat(per_dc, names=["policy"]), float_format="%.9g")
    if plots:
        plot_comparison(results, out_dir / "comparison.png")


def _write_csv(path: Path, frame: pd.DataFrame, float_format: str = "%.6g") -> None:
    from dcsched.io import atomic_write as _aw

    _aw(path, lambda p: frame.to_csv(p, float_format=float_format))


def comparison_table(results: dict[str, dict]) -> pd.DataFrame:
    cols = list(TABLE_COLUMNS)
    if any("batch_violation_rate" in r["mean"] for r in results.values()):
        cols.insert(cols.index("violation_rate") + 1, "batch_violation_rate")
    for share in SHARE_COLUMNS:
        if any(share in r["mean"] for r in results.values()):
            cols.append(share)
    rows = {name: {c: r["mean"].get(c, float("nan")) for c in cols} for name, r in results.items()}
    return pd.DataFrame(rows).T.rename_axis("policy")


COLUMN_LABELS = {"utility_usd": "utility $", "revenue_usd": "revenue $", "energy_cost_usd": "energy $",
                 "transfer_cost_usd": "transfer $", "penalty_usd": "penalty $", "violation_rate": "late+drop",
                 "batch_violation_rate": "batch late+drop",
                 "grid_buy_kwh": "grid kWh", "carbon_kg": "CO2 kg", "share_of_bound": "% of LP bound",
                 "share_of_dispatch_bound": "% of dispatch-only bound", "share_of_integer_bound": "% of integer-level bound"}


def format_value(column: str, value: float) -> str:
    """Money and energy in fixed notation with thousands separators; shares as percentages."""
    if value != value:  # NaN
        return "n/a"
    if column in ("violation_rate", "batch_violation_rate") or column in SHARE_COLUMNS:
        return f"{100 * value:.2f} %"
    return f"{value:,.0f}"


def table_markdown(df: pd.DataFrame) -> str:
    head = ("| policy | " + " | ".join(COLUMN_LABELS.get(c, c) for c in df.columns) + " |\n|---|"
            + "---:|" * len(df.columns) + "\n")
    body = "".join(
        f"| {name} | " + " | ".join(format_value(c, v) for c, v in zip(df.columns, row.values)) + " |\n"
        for name, row in df.iterrows()
    )
    return head + body


# Columns left out first when the terminal is too narrow for the whole table (comparison.md has all).
DROP_ORDER = ("grid_buy_kwh", "carbon_kg", "revenue_usd", "transfer_cost_usd", "penalty_usd", "energy_cost_usd",
              "share_of_dispatch_bound", "share_of_integer_bound", "batch_violation_rate")


def print_table(results: dict[str, dict], console, full_table: str | None = None) -> None:
    """The comparison table at the console's width: whole if it fits, else without the columns of
    ``DROP_ORDER`` (first ones first) and a line saying which were left out (and that ``full_table``,
    the written comparison, has them)."""
    from rich.table import Table

    df = comparison_table(results)
    cells = {c: [format_value(c, v) for v in df[c].values] for c in df.columns}
    names = [str(n) for n in df.index]

    def width(columns) -> int:  # rich's default box: 3 characters per column plus one
        widths = [max(len("policy"), *map(len, names))]
        widths += [max(len(COLUMN_LABELS.get(c, c)), *map(len, cells[c])) for c in columns]
        return sum(widths) + 3 * len(widths) + 1

    columns = list(df.columns)
    left_out = []
    for c in DROP_ORDER:
        if width(columns) <= console.width:
            break
        if c in columns:
            columns.remove(c)
            left_out.append(COLUMN_LABELS.get(c, c))
    table = Table(title="Mean per day over the evaluated days")
    table.add_column("policy", no_wrap=True)
    for c in columns:
        table.add_column(COLUMN_LABELS.get(c, c), justify="right", no_wrap=True)
    for i, name in enumerate(names):
        table.add_row(name, *[cells[c][i] for c in columns])
    console.print(table)
    if left_out:
        where = f"; {full_table} has every column" if full_table is not None else ""
        console.print(f"({', '.join(left_out)} left out to fit {console.width} columns{where})")
