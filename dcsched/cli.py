"""The `dcsched` command line: train, evaluate, solve, calibrate, experiment, bench, list.

Every user error (bad recipe key, unknown component, bad day list) exits with code 2 and one
message naming the file, key and allowed values. Ctrl-C exits with 130 and SIGTERM (a scheduler's
preemption) with 143, training after its batch and last.ckpt; artifacts are written atomically, so
an interrupted command never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM: what schedulers requeue on
# An output location that cannot be written (read-only, a file in the way, full disk): a usage error.
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _console():
    from rich.console import Console

    terminal = Console()
    return Console(width=min(100, terminal.width) if terminal.is_terminal else 100)  # tables fit 100 columns


def cmd_list(args) -> int:
    from rich.table import Table

    from dcsched.registry import ALL_REGISTRIES

    console = _console()
    if args.keys:
        return _list_keys(console, args.keys, args.kind)
    kinds = [*ALL_REGISTRIES, "experiment"]
    if args.kind and args.kind not in kinds:
        import difflib

        from dcsched.errors import ConfigError

        close = difflib.get_close_matches(args.kind.rstrip("s"), kinds, n=1) or difflib.get_close_matches(args.kind, kinds, n=1)
        raise ConfigError("command line", "list KIND", f"no component kind '{args.kind}'"
                          + (f"; did you mean '{close[0]}'?" if close else ""), ", ".join(kinds))
    for kind, reg in ALL_REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        table = Table(title=f"{kind}", title_justify="left", show_header=False)
        table.add_column("name", style="bold")
        table.add_column("description")
        entries = reg.entries()
        for e in entries:
            table.add_row(e.name, e.description)
        if not entries:
            table.add_row("(none yet)", "")
        console.print(table)
    if not args.kind or args.kind == "experiment":
        from dcsched.experiments.spec import experiment_descriptions

        table = Table(title="experiment (recipes/experiments/)", title_justify="left", show_header=False)
        table.add_column("name", style="bold")
        table.add_column("description")
        for name, text in experiment_descriptions().items():
            table.add_row(name, text)
        console.print(table)
    return 0


def _scenario_overrides(args) -> list[str]:
    """``--override KEY=VALUE`` and positional ``scenario.KEY=VALUE`` items, as scenario overrides."""
    from dcsched.errors import ConfigError

    out = list(args.override)
    for item in args.overrides:
        if not item.startswith("scenario."):
            raise ConfigError("command line", item.partition("=")[0],
                              "only scenario keys can be overridden here", "scenario.KEY=VALUE, e.g. "
                              "scenario.dcs.0.data.prices=my_prices.csv")
        out.append(item.removeprefix("scenario."))
    return out


def cmd_evaluate(args) -> int:
    from dcsched.config import EnvConfig, load_scenario
    from dcsched.eval.evaluate import evaluate_policies

    from dcsched.data.exogenous import parse_days

    task_ckpts = _task_checkpoints(args.policy)  # each checkpoint is read once: a SAC one holds its replay buffer
    if task_ckpts:
        return _evaluate_task_checkpoints(args, task_ckpts)
    args.override = _scenario_overrides(args)
    cfg = load_scenario(args.scenario, args.override)
    parse_days(cfg, args.days)  # a bad day list is refused before any folder is made
    out = Path(args.out) if args.out else Path("runs") / f"eval-{cfg.name}"
    env_cfg = EnvConfig(action_encoding=args.encoding)
    if args.workers > 1 and args.stochastic:
        from dcsched.errors import ConfigError

        raise ConfigError("command line", "--workers", "chunks of days in parallel need deterministic arrivals "
                          "(a stochastic env draws every day from one generator)", "--workers 1 with --stochastic")
    if args.stress:
        return _evaluate_stress_grid(args, cfg, out, env_cfg)
    bounds = None
    if args.bounds:
        from dcsched.baselines.lp_bound import load_bounds_by_kind
        from dcsched.data.exogenous import day_dates, parse_days

        days = parse_days(cfg, args.days)[: args.max_days or None]
        bounds = load_bounds_by_kind(Path(args.bounds), cfg, day_dates(cfg, days))
    elif args.with_bound:
        from dcsched.baselines.lp_bound import bounds_by_date

        bounds = {"lp": bounds_by_date(cfg, args.days, args.max_days)}
    from dcsched.io import fresh_dir

    if args.seeds > 1 and not args.stochastic:
        from dcsched.errors import ConfigError

        raise ConfigError("command line", "--seeds", f"{args.seeds} seeds of the deterministic env are one run "
                          "repeated", "--stochastic --seeds N")
    with fresh_dir(out, overwrite=args.overwrite, key="--out") as tmp:
        if args.seeds <= 1:
            evaluate_policies(cfg, args.policy, args.days, tmp, deterministic=not args.stochastic, seed=args.seed,
                              max_days=args.max_days, env_cfg=env_cfg, bounds=bounds, plots=not args.no_plots,
                              console=_console(),
                              workers=args.workers)
        else:
            from dcsched.eval.seeds import evaluate_seeds

            evaluate_seeds(cfg, args.policy, args.days, tmp, seeds=range(args.seed, args.seed + args.seeds),
                           max_days=args.max_days, env_cfg=env_cfg, bounds=bounds, console=_console())
    print(f"wrote {out}/")
    return 0


def _task_checkpoints(policies: list[str]) -> list[str]:
    """The ``--policy`` checkpoints trained on a Gymnasium task (``task: gym:...``, docs/tasks.md)."""
    from dcsched.agents.checkpoint_format import load_checkpoint
    from dcsched.envs.gym_task import is_gym_task

    found = []
    for policy in policies:
        if policy.endswith(".ckpt") and Path(policy).is_file():
            cfg = load_checkpoint(Path(policy), "cpu", "--policy").get("hyper_parameters", {}).get("cfg", {})
            if is_gym_task(str(cfg.get("task", ""))):
                found.append(policy)
    return found


def _evaluate_task_checkpoints(args, task_ckpts: list[str]) -> int:
    """Checkpoints of a Gymnasium task: each one's deterministic action over --episodes episodes (a
    data-centre policy beside them is refused: the two have nothing to compare on)."""
    from dcsched.errors import ConfigError
    from dcsched.eval.task_eval import evaluate_task_checkpoint
    from dcsched.io import fresh_dir

    others = [p for p in args.policy if p not in task_ckpts]
    if others:
        raise ConfigError("command line", "--policy", f"{others[0]} is a data-centre policy; the other checkpoints "
                          "were trained on a Gymnasium task", "only checkpoints of tasks (task: gym:...) together")
    out = Path(args.out) if args.out else Path("runs") / "eval-task"
    with fresh_dir(out, overwrite=args.overwrite, key="--out") as tmp:
        for i, ckpt in enumerate(args.policy):
            summary = evaluate_task_checkpoint(ckpt, args.episodes, args.seed, tmp / f"policy-{i}")
            lo, hi = summary["return_ci95"]
            print(f"{ckpt} on {summary['task']}: return {summary['return_mean']:.2f} [{lo:.2f}, {hi:.2f}] over "
                  f"{summary['episodes']} episodes, success {summary['success_rate']:.0%}")
    print(f"wrote {out}/")
    return 0


def _evaluate_stress_grid(args, cfg, out: Path, env_cfg) -> int:
    from dcsched.errors import ConfigError
    from dcsched.eval.stress_grid import evaluate_stress_grid
    from dcsched.io import fresh_dir
    from dcsched.stress import parse_stress

    if args.bounds:
        raise ConfigError("command line", "--bounds", "a bounds file holds unstressed days; each stress needs its own",
                          "--with-bound (solves each stressed day's bound)")
    if args.seeds > 1:
        raise ConfigError("command line", "--seeds", "not with --stress", "one --seed per stress grid")
    for entry in args.stress:
        if entry != "none":
            parse_stress(entry, "command line", "--stress")
    with fresh_dir(out, overwrite=args.overwrite, key="--out") as tmp:
        evaluate_stress_grid(args.scenario, args.override, args.stress, args.policy, args.days, tmp,
                             with_bound=args.with_bound, deterministic=not args.stochastic, seed=args.seed,
                             max_days=args.max_days, env_cfg=env_cfg, console=_console(), workers=args.workers)
    print(f"wrote {out}/")
    return 0


def _list_keys(console, recipe: str, prefix: str | None) -> int:
    from rich.table import Table

    from dcsched.config import describe_keys, load_recipe, shipped_file

    cfg = load_recipe(shipped_file(recipe))
    table = Table(title=f"keys of {recipe} (override any as key=value)", title_justify="left")
    for col in ("key", "value", "default", "meaning"):
        table.add_column(col, overflow="fold")
    for key, value, default, meaning in describe_keys(cfg):
        if prefix and not key.startswith(prefix):
            continue
        changed = value != default
        table.add_row(key, f"[bold]{value}[/bold]" if changed else str(value), str(default), meaning)
    console.print(table)
    return 0


def cmd_train(args) -> int:
    from dcsched.config import load_recipe
    from dcsched.registry import AGENTS

    cfg = load_recipe(args.recipe, args.overrides)
    AGENTS.get(cfg.agent.name)  # an unknown name fails here, before anything is imported or written
    from dcsched.training.train import train_and_evaluate

    train_and_evaluate(cfg, console=_console())
    return 0


def cmd_solve(args) -> int:
    from dcsched.baselines.lp_bound import solve_command

    args.override = _scenario_overrides(args)
    return solve_command(args, console=_console())


def cmd_calibrate(args) -> int:
    from dcsched.calibration.calibrate import calibrate_command

    return calibrate_command(args, console=_console())


def cmd_experiment(args) -> int:
    from dcsched.experiments import experiment_command

    return experiment_command(args, console=_console())


BENCHMARKS = {"env": "dcsched.bench.env_throughput", "train": "dcsched.bench.train_throughput",
              "curve": "dcsched.bench.learning_curve", "gpu": "dcsched.bench.gpu_check",
              "compile": "dcsched.bench.compile_speedup", "eval": "dcsched.bench.eval_workers"}


def cmd_bench(args) -> int:
    import importlib

    return int(importlib.import_module(BENCHMARKS[args.what]).main(list(args.extra)) or 0)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: >= 1)")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: >= 0; 0 = all days)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcsched",
        description="Joint energy management and AIGC workload scheduling across geo-distributed data centres.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="print every registered component with its description, or a recipe's keys")
    p.add_argument("kind", nargs="?", default=None,
                   help="only this kind (scenario, agent, shaper, policy, ...); with --keys: only keys starting with it")
    p.add_argument("--keys", metavar="RECIPE", default=None,
                   help="list every key of RECIPE with its value, its default and its meaning (e.g. --keys quick/sac agent)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train an agent from a recipe: dcsched train RECIPE [key=value ...]")
    p.add_argument("recipe", help="recipe YAML (path, or name under recipes/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seed=3 trainer.total_frames=20000")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="run policies on chosen days; write trace.csv, summary.json, table, plots")
    p.add_argument("--policy", action="append", required=True,
                   help="registered policy name (options as NAME:key=value,...) or a .ckpt path; repeat to compare")
    p.add_argument("--scenario", default="paper3", help="scenario name (recipes/scenario/) or YAML path")
    p.add_argument("--days", default="test", help="test | train | fit | val | all | YYYY-MM-DD,YYYY-MM-DD,... (docs/guide.md#day-splits)")
    p.add_argument("--out", default=None, help="output folder (default runs/eval-SCENARIO)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-days", type=_non_negative, default=0, help="only the first N selected days (0 = all)")
    p.add_argument("--episodes", type=_positive, default=10,
                   help="checkpoints of a Gymnasium task (task: gym:...): whole episodes evaluated (docs/tasks.md)")
    p.add_argument("--stochastic", action="store_true", help="Poisson arrivals instead of their expectation")
    p.add_argument("--stress", action="append", default=[], metavar="NAME[:key=value,...]",
                   help="a stress grid: evaluate under each given stress (repeat; 'none' = unstressed) and write "
                        "stress_table.md and stress_heatmap.png (with --with-bound: %% of each stressed day's bound)")
    p.add_argument("--seeds", type=_non_negative, default=1,
                   help="with --stochastic: evaluate N arrival seeds (--seed, --seed+1, ...; every policy sees the same "
                        "draws per seed) and report each policy's mean with a 95 %% interval over the seeds")
    p.add_argument("--encoding", default="continuous", choices=("continuous", "discrete"))
    p.add_argument("--workers", type=_positive, default=1,
                   help="processes playing a rule's or planner's chunks of days in parallel (one core each; the same "
                        "outcomes as 1; deterministic arrivals only); other policies play one batch")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="scenario override, e.g. --override energy.price_scale=2")
    p.add_argument("overrides", nargs="*", metavar="scenario.KEY=VALUE",
                   help="scenario overrides, e.g. scenario.dcs.0.data.prices=my_prices.csv scenario.year=2024")
    p.add_argument("--bounds", default=None, help="bounds.json from `dcsched solve`: adds the share of the LP bound "
                   "(and of the dispatch-only and integer-level bounds, if solved with --dispatch-only / --integer-levels)")
    p.add_argument("--with-bound", action="store_true", help="solve the LP bound of each day first (a few s per day)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing non-empty --out folder (else refused; replaced only when the new one is complete)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("solve", help="perfect-foresight LP bound per day")
    p.add_argument("--scenario", default="paper3")
    p.add_argument("--days", default="test", help="test | train | fit | val | all | YYYY-MM-DD,... (docs/guide.md#day-splits)")
    p.add_argument("--out", default=None)
    p.add_argument("--max-days", type=_non_negative, default=0)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("overrides", nargs="*", metavar="scenario.KEY=VALUE", help="scenario overrides, as for evaluate")
    p.add_argument("--dispatch-only", action="store_true",
                   help="also the dispatch-only bound: the LP with the env's battery rule (no battery export; "
                        "energy.control=heuristic scenarios); `evaluate --bounds` then reports both shares")
    p.add_argument("--integer-levels", action="store_true",
                   help="also the integer-level bound: one step level per (DC, class) and one frequency per DC per "
                        "slot, as the env (Lagrangian over the slots, one MILP per slot: minutes per day); "
                        "`evaluate --bounds` then reports its share too")
    p.add_argument("--workers", type=_positive, default=1,
                   help="processes solving days in parallel (one core each; the same values as 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out folder (only once the new bounds are complete)")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("calibrate", help="calibrate a quality-vs-steps curve on a diffusion model")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("experiment", help="run a declared experiment (recipes/experiments/NAME.yaml)",
                       description="Run a declared experiment grid (finished cells are skipped, interrupted ones "
                                   "resume) and write its report; docs/experiments.md.")
    p.add_argument("name", help="an experiment of recipes/experiments/ (`dcsched list experiment`), a path to "
                                "one, or 'all'")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="experiment keys, e.g. tier=quick 'seeds=[0,1]' only=REGEX max_runs=N launcher=ray "
                        "threads_per_run=1 record=true (docs/experiments.md)")
    p.add_argument("--status", action="store_true",
                   help="print each cell's state (finished, recorded, reusable, partial with its progress, failed, "
                        "to run) and whether these overrides would run it now; runs and writes nothing")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("results", help="the results tables from the recorded cells (results/) alone, and the "
                                       "algorithm table from the registry",
                       description="Print the results-at-a-glance table built from results/*/runs/*/ alone (one row per "
                                   "scenario and method: %% of the LP bound with a 95 %% t interval over seeds, p', "
                                   "late+dropped, seeds, days, training time); --write fills the generated blocks "
                                   "of Markdown files, --check fails (exit 1) when one differs from the records.")
    p.add_argument("--records", default=None, help="the records folder (default: ./results, else the checkout's results/)")
    p.add_argument("--write", nargs="*", metavar="FILE", default=None,
                   help="replace the <!-- results:NAME --> blocks of these Markdown files (none named: every "
                        "docs page with a generated block, relative to the checkout)")
    p.add_argument("--check", nargs="*", metavar="FILE", default=None,
                   help="exit 1 naming each block of these files that differs from what the records give (none "
                        "named: every docs page with a generated block)")
    p.add_argument("--table", choices=("glance", "ladder", "robust", "integer", "algorithms"), default="glance",
                   help="the table to print: glance (per method), ladder (per scenario, the best rule, rounding planner, "
                        "exact-level planner and learned policy), robust (rliable's IQM, optimality gap and "
                        "probability of improvement over runs x test days), integer (policies on the first test days of the "
                        "recorded integer-level bounds, against both bounds), algorithms (the registry)")
    p.add_argument("--export", metavar="DIR", default=None,
                   help="write glance.md, robust.md, marl_eval.json (marl-eval's raw-data layout) and "
                        "performance_profiles.png into DIR")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("bench", help="benchmarks: env or train throughput, a learning curve in %% of the bound (curve), compiled vs eager updates (compile), parallel evaluation (eval), or the GPU check (gpu)")
    p.add_argument("what", choices=tuple(BENCHMARKS))
    p.add_argument("extra", nargs=argparse.REMAINDER, help="arguments passed to the benchmark (see its --help)")
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_results(args) -> int:
    from dcsched.experiments.results_tables import render_tables, write_or_check
    from dcsched.paths import REPO_ROOT

    records = Path(args.records) if args.records else next(
        (p for p in (Path("results"), REPO_ROOT / "results") if p.is_dir()), Path("results"))
    if args.write is not None or args.check is not None:
        from dcsched.experiments.results_tables import DOCS_WITH_TABLES

        files = args.write if args.write is not None else args.check
        files = files or [REPO_ROOT / f for f in DOCS_WITH_TABLES]
        stale = write_or_check(records, files, write=args.write is not None)
        if args.write is not None:
            print(f"updated {len(stale)} block(s)" + "".join(f"\n  {s}" for s in stale))
            return 0
        for line in stale:
            print(f"stale: {line} (regenerate: dcsched results --write {' '.join(map(str, files))})")
        return 1 if stale else 0
    if args.export:
        from dcsched.experiments.results_tables import export_results

        for path in export_results(records, Path(args.export)):
            print(f"wrote {path}")
        return 0
    print(render_tables(records)[args.table], end="")
    return 0


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args``, except that KEY=VALUE overrides may follow a flag (``dcsched experiment
    NAME --status only=X``): argparse fills a ``nargs="*"`` positional once, before the flag, and
    would refuse the rest; they are appended to the command's overrides instead."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(item.startswith("-") or "=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def _terminate(signum, frame):
    from dcsched.errors import Terminated

    raise Terminated


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    from dcsched.errors import DcschedError, Terminated

    parser = build_parser()
    args = parse_args(parser, argv)
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM unwinds like Ctrl-C: temporary outputs removed
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print("\ndcsched: terminated (SIGTERM); finished artifacts are intact, nothing half-written was kept "
              f"(exit {EXIT_TERMINATED}: rerun the command, or resume= the printed checkpoint, to continue)", file=sys.stderr)
        return EXIT_TERMINATED
    except DcschedError as err:
        print(f"dcsched: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        if err.errno not in UNWRITABLE:
            raise
        where = err.filename or "the output folder"
        print(f"dcsched: error: cannot write {where}: {err.strerror} (choose another output folder, e.g. --out or "
              "out_dir=; nothing half-written was kept)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ndcsched: interrupted; finished artifacts are intact, nothing half-written was kept.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
