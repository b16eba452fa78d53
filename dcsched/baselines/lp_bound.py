"""Perfect-foresight daily optimum (`dcsched solve`): one LP per day, solved with HiGHS.

Its value upper-bounds the utility of every policy in the deterministic env on that day
(relaxations listed in :mod:`dcsched.baselines.lp_model`). Build and solve times are reported
separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcsched.baselines.lp_model import level_coefficients
from dcsched.baselines.lp_solve import LPResult, solve_window, window_from_exo


def solve_days(scenario_cfg, days: list[int], progress=None, keep_solution: bool = False,
               battery_rule: bool = False, workers: int = 1, on_solved=None,
               integer_levels: bool = False) -> dict[int, LPResult]:
    """Perfect-foresight LP per day (deterministic expected arrivals). Unless ``keep_solution``,
    the model and solution vector are dropped after each solve to bound memory. ``battery_rule``:
    the dispatch-only bound (the env's battery rule, :func:`dcsched.baselines.lp_model.build_lp`).

    ``workers`` > 1 solves the days in that many processes (each day's LP is independent; HiGHS
    uses one core per solve), with the same values as one process. ``on_solved(day, result)`` is
    called in this process as each day is solved (in completion order; e.g. to save progress).
    ``integer_levels``: the integer-level bound instead (:mod:`dcsched.baselines.integer_bound`;
    minutes per day): ``value_usd`` is that bound, ``integer`` its details, no solution is kept.
    Returns {day index: LPResult} in the order of ``days``."""
    if integer_levels and battery_rule:
        raise ValueError("integer_levels and battery_rule are separate bounds: solve them one at a time")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and len(days) > 1:
        if keep_solution:
            raise ValueError("keep_solution needs workers=1 (solutions are not sent between processes)")
        return _solve_days_in_processes(scenario_cfg, days, progress, battery_rule, workers, on_solved, integer_levels)
    import torch

    from dcsched.data.exogenous import load_exogenous
    from dcsched.sim.params import build_params

    p = build_params(scenario_cfg, dtype=torch.float64)
    exo = load_exogenous(scenario_cfg, days, dtype=torch.float64)
    coef = level_coefficients(p)
    out = {}
    for j, day in enumerate(days):
        what = f"scenario '{scenario_cfg.name}', day index {day}"
        if integer_levels:
            from dcsched.baselines.integer_bound import integer_level_bound

            ib = integer_level_bound(p, window_from_exo(p, exo, j), coef)
            res = LPResult(ib.value_usd, None, None, 0.0, ib.solve_s, integer=ib)
        else:
            res = solve_window(p, window_from_exo(p, exo, j), what, coef, battery_rule)
        if not keep_solution:
            res.x, res.model = None, None
        out[day] = res
        if on_solved is not None:
            on_solved(day, res)
        if progress is not None:
            progress()
    return out


def _solve_one_day(scenario: dict, day: int, battery_rule: bool, integer_levels: bool = False) -> LPResult:
    """One day's bound in a worker process (the scenario as a plain dict: picklable)."""
    from omegaconf import OmegaConf

    from dcsched.config import ScenarioConfig

    cfg = OmegaConf.merge(OmegaConf.structured(ScenarioConfig), scenario)
    return solve_days(cfg, [day], battery_rule=battery_rule, integer_levels=integer_levels)[day]


def _solve_days_in_processes(scenario_cfg, days, progress, battery_rule, workers, on_solved,
                             integer_levels: bool = False) -> dict[int, LPResult]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from omegaconf import OmegaConf

    scenario = OmegaConf.to_container(scenario_cfg, resolve=True)
    solved: dict[int, LPResult] = {}
    # spawn: a fresh interpreter per worker (no forked torch or HiGHS state)
    with ProcessPoolExecutor(max_workers=min(workers, len(days)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_solve_one_day, scenario, day, battery_rule, integer_levels): day for day in days}
        for future in as_completed(futures):
            day = futures[future]
            solved[day] = future.result()
            if on_solved is not None:
                on_solved(day, solved[day])
            if progress is not None:
                progress()
    return {day: solved[day] for day in days}


def bounds_by_date(scenario_cfg, days_spec: str, max_days: int = 0, progress: bool = False, workers: int = 1,
                   known: dict[str, float] | None = None, on_solved=None) -> dict[str, float]:
    """LP bound ($/day) of each selected day, keyed by date (what the evaluator's share-of-bound uses).
    ``progress``: a progress bar over the days (each takes a few seconds). ``workers``: processes
    (:func:`solve_days`). ``known``: {date: bound} already solved (e.g. by an interrupted run): those
    days are not solved again. ``on_solved(date, bound_usd)`` after each day solved here."""
    from dcsched.data.exogenous import day_dates, parse_days

    days = parse_days(scenario_cfg, days_spec)[: max_days or None]
    date_of = dict(zip(days, day_dates(scenario_cfg, days)))
    known = dict(known or {})
    todo = [d for d in days if date_of[d] not in known]
    report = None if on_solved is None else (lambda day, res: on_solved(date_of[day], res.value_usd))
    if not progress or not todo:
        solved = solve_days(scenario_cfg, todo, workers=workers, on_solved=report) if todo else {}
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"LP bound, {len(todo)} day(s)", total=len(todo))
            solved = solve_days(scenario_cfg, todo, progress=lambda: bar.advance(task), workers=workers,
                                on_solved=report)
    known.update({date_of[d]: r.value_usd for d, r in solved.items()})
    return {date_of[d]: known[date_of[d]] for d in days}


def solve_command(args, console=None) -> int:
    """CLI: dcsched solve --scenario NAME --days ... --out DIR (bounds.json and scenario.yaml)."""
    from dcsched.config import load_scenario
    from dcsched.data.exogenous import parse_days
    from dcsched.io import fresh_dir

    cfg = load_scenario(args.scenario, args.override)
    days = parse_days(cfg, args.days)
    if args.max_days:
        days = days[: args.max_days]
    dispatch = bool(getattr(args, "dispatch_only", False))
    if dispatch and cfg.energy.control == "learned":
        from dcsched.errors import ConfigError

        raise ConfigError("command line", "--dispatch-only", "the env's battery follows the policy here "
                          "(energy.control: learned), so the full bound is the dispatch-only bound", "energy.control=heuristic")
    integer = bool(getattr(args, "integer_levels", False))
    out = Path(args.out) if args.out else Path("runs") / f"solve-{cfg.name}"
    # the output is checked and claimed before any day is solved (minutes to hours): a non-empty
    # folder is refused unless --overwrite, an unwritable one fails now, and it is filled atomically
    with fresh_dir(out, overwrite=bool(getattr(args, "overwrite", False)), key="--out") as tmp:
        summary, rows, ruled, levels = _solve_summary(cfg, days, dispatch, integer, int(getattr(args, "workers", 1) or 1))
        _write_bounds(tmp, cfg, summary)
    if console is not None:
        from rich.table import Table

        table = Table(title=f"Perfect-foresight LP bound, {cfg.name}")
        cols = (("day", "LP bound $") + (("dispatch-only $",) if ruled else ()) + (("integer-level $",) if levels else ())
                + ("build s", "solve s", "vars", "rows"))
        for col in cols:
            table.add_column(col, justify="right")
        for r in rows:
            extra = ((f"{r['dispatch_bound_usd']:,.2f}",) if ruled else ()) + ((f"{r['integer_bound_usd']:,.2f}",) if levels else ())
            table.add_row(r["day"], f"{r['lp_bound_usd']:,.2f}", *extra, f"{r['build_s']:.2f}", f"{r['solve_s']:.2f}",
                          f"{r['variables']:,}", f"{r['constraints']:,}")
        console.print(table)
        console.print(f"mean bound ${summary['mean_lp_bound_usd']:,.2f}/day; wrote {out}/bounds.json")
    return 0


def _solve_summary(cfg, days: list[int], dispatch: bool, integer: bool, workers: int):
    """(bounds.json's summary, its per-day rows, the dispatch-only and integer-level results) of ``days``."""
    from rich.progress import Progress

    from dcsched.data.exogenous import day_dates

    with Progress(transient=True) as bar:
        task = bar.add_task(f"LP bound, {len(days)} day(s)", total=len(days) * (1 + dispatch + integer))
        results = solve_days(cfg, days, progress=lambda: bar.advance(task), workers=workers)
        ruled = (solve_days(cfg, days, progress=lambda: bar.advance(task), battery_rule=True, workers=workers)
                 if dispatch else {})
        levels = (solve_days(cfg, days, progress=lambda: bar.advance(task), integer_levels=True, workers=workers)
                  if integer else {})
    dates = day_dates(cfg, days)
    rows = [{"day": d, "lp_bound_usd": r.value_usd, "build_s": r.build_s, "solve_s": r.solve_s,
             "variables": r.num_variables, "constraints": r.num_constraints}
            for d, r in zip(dates, results.values())]
    for row, r in zip(rows, ruled.values()):
        row["dispatch_bound_usd"] = r.value_usd
    for row, r in zip(rows, levels.values()):
        ib = r.integer
        row.update(integer_bound_usd=ib.value_usd, integer_primal_usd=ib.primal_usd,
                   integer_slots_not_proven=ib.slots_not_proven, integer_solve_s=ib.solve_s)
    summary = {"scenario": cfg.name, "scenario_hash": bound_scenario_hash(cfg), "days": dates, "per_day": rows,
               "mean_lp_bound_usd": float(np.mean([r["lp_bound_usd"] for r in rows])),
               **({"mean_dispatch_bound_usd": float(np.mean([r["dispatch_bound_usd"] for r in rows]))} if ruled else {}),
               **({"mean_integer_bound_usd": float(np.mean([r["integer_bound_usd"] for r in rows]))} if levels else {}),
               "mean_build_s": float(np.mean([r["build_s"] for r in rows])),
               "mean_solve_s": float(np.mean([r["solve_s"] for r in rows]))}
    return summary, rows, ruled, levels


def _write_bounds(folder: Path, cfg, summary: dict) -> None:
    """bounds.json and the scenario.yaml it was solved for, into ``folder``."""
    from omegaconf import OmegaConf

    from dcsched.io import atomic_write_json, atomic_write_text

    atomic_write_json(folder / "bounds.json", summary)
    atomic_write_text(folder / "scenario.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def bound_scenario_hash(scenario_cfg) -> str:
    """Hash of everything in a scenario that the LP bound depends on (not the arrival draws: the
    bound always uses expected arrivals)."""
    import hashlib
    import json

    from dcsched.config import scenario_identity, to_container

    data = scenario_identity(to_container(scenario_cfg))
    data.get("arrivals", {}).pop("stochastic", None)
    data.pop("description", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _optional_bounds(path: Path, key: str) -> dict[str, float] | None:
    import json

    rows = json.loads(Path(path).read_text())["per_day"]
    if not all(key in r for r in rows):
        return None
    return {r["day"]: float(r[key]) for r in rows}


def load_bounds_by_kind(path: Path, scenario_cfg=None, dates: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Every bound a ``dcsched solve`` bounds.json holds, as an evaluation takes them: {"lp": {date:
    $/day}}, plus "dispatch" (``--dispatch-only``) and "integer" (``--integer-levels``) where the
    file has them for every day. The file's scenario and days are checked as :func:`load_bounds` does."""
    out = {"lp": load_bounds(path, scenario_cfg, dates)}
    for kind, key in (("dispatch", "dispatch_bound_usd"), ("integer", "integer_bound_usd")):
        optional = _optional_bounds(path, key)
        if optional is not None:
            out[kind] = optional
    return out


def load_bounds(path: Path, scenario_cfg=None, dates: list[str] | None = None) -> dict[str, float]:
    """LP bounds from a ``dcsched solve`` bounds.json. With ``scenario_cfg`` (and ``dates``), a file
    solved for another scenario, another configuration of it or other days is refused."""
    import json

    from dcsched.errors import ConfigError

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        bounds = {r["day"]: float(r["lp_bound_usd"]) for r in data["per_day"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(str(path), "--bounds", f"not a bounds.json written by `dcsched solve` ({err})") from err
    if scenario_cfg is not None:
        if data.get("scenario") != scenario_cfg.name:
            raise ConfigError(str(path), "scenario", f"bounds of scenario '{data.get('scenario')}', evaluating "
                              f"'{scenario_cfg.name}'", f"bounds.json from `dcsched solve --scenario {scenario_cfg.name}`")
        if data.get("scenario_hash") != bound_scenario_hash(scenario_cfg):
            raise ConfigError(str(path), "scenario_hash", "the bounds were solved for another configuration of "
                              f"'{scenario_cfg.name}' (different overrides, or a file from an older version)",
                              "re-run `dcsched solve` with the same --override options")
    missing = [d for d in dates or [] if d not in bounds]
    if missing:
        raise ConfigError(str(path), "days", f"no bound for {len(missing)} evaluated day(s), e.g. {missing[0]}",
                          ", ".join(sorted(bounds)[:5]) + (" ..." if len(bounds) > 5 else ""))
    return bounds
