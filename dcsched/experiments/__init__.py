"""`dcsched experiment NAME [key=value ...]`: run a declared experiment grid and write its report.

NAME is a file in recipes/experiments/ (or a path to one), or ``all`` for every declared
experiment in turn. Output: ``<out_dir>/<NAME>/`` (default runs/experiments/NAME, or
runs/experiments-quick/NAME with ``tier=quick``) with runs/<cell>/result.json per cell, runs.csv,
summary.csv, table_<scenario>.md, PNG figures and report.md. ``--status``: each cell's state
(:mod:`dcsched.experiments.status`), nothing run or written.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from dcsched.errors import Terminated
from dcsched.experiments.plan import adopts_records, cells_to_run, experiment_dir
from dcsched.experiments.spec import available_experiments, expand, load_experiment

__all__ = ["experiment_command", "run_experiment", "experiment_dir", "cells_to_run"]


def _refuse_records_from_a_dirty_checkout(records_dir: Path) -> None:
    """The records the checkout ships (its results/) must name the code that made them: refused
    while tracked files have uncommitted changes (``git_commit`` ends in ``-dirty``). Records
    written elsewhere (a scratch folder) carry the mark instead."""
    from dcsched.errors import ConfigError
    from dcsched.paths import REPO_ROOT
    from dcsched.provenance import git_commit

    shipped = (REPO_ROOT / "results").resolve()
    if records_dir.resolve() != shipped:
        return
    commit = git_commit()
    if commit.endswith("-dirty"):
        raise ConfigError("command line", "record", f"the checkout has uncommitted changes ({commit}): a record in "
                          f"{shipped} must name the code that made it; commit first (git status shows what changed)",
                          "record=true from a clean checkout, or records_dir= a scratch folder")


def run_experiment(name: str, overrides: list[str] | None = None, console=None) -> tuple[Path, dict]:
    """Expand, launch (skipping finished cells), aggregate. Returns (report path, outcome by cell key)."""
    from dcsched.experiments.launchers import run_ray, run_sequential
    from dcsched.experiments.report import write_report
    from dcsched.errors import ConfigError
    from dcsched.experiments.runner import RunOptions, adopt_record, read_result, record_cells

    overrides = list(overrides or [])
    cfg = load_experiment(name, overrides)
    if cfg.record and cfg.tier == "quick":
        raise ConfigError("command line", "record", "the quick tier is a smoke test, its numbers are not results: "
                          "nothing of it is recorded", "record=false (or tier=full)")
    if cfg.record and not cfg.records_dir:
        raise ConfigError("command line", "records_dir", "record=true needs a folder to write the records to",
                          "a path, e.g. records_dir=results")
    if cfg.record:
        _refuse_records_from_a_dirty_checkout(Path(cfg.records_dir))
    specs = expand(cfg)
    out_root, exp_dir = experiment_dir(cfg)
    exp_dir.mkdir(parents=True, exist_ok=True)
    command = "dcsched experiment " + " ".join(shlex.quote(x) for x in [name, *overrides])
    adopted = 0
    if adopts_records(cfg):  # recorded cells (kept in git) count as finished
        adopted = sum(adopt_record(Path(cfg.records_dir), exp_dir, s) is not None
                      for s in specs if read_result(exp_dir, s) is None)
    unfinished = [s for s in specs if read_result(exp_dir, s) is None]
    finished = len(specs) - len(unfinished)
    todo = cells_to_run(cfg, unfinished)
    options = RunOptions(wandb_mode=cfg.wandb_mode, threads=cfg.threads_per_run, lp_workers=cfg.lp_workers,
                         eval_workers=cfg.eval_workers,
                         reuse_root=str(out_root) if cfg.reuse else "", launcher=cfg.launcher)
    if console is not None:
        console.print(f"[bold]{cfg.name}[/] ({cfg.tier}): {len(specs)} runs, {finished} finished"
                      + (f" ({adopted} adopted from the records in {cfg.records_dir}/)" if adopted else "") + ", "
                      f"{len(todo)} to run now with launcher={cfg.launcher} -> {exp_dir}")
    t0 = time.perf_counter()
    counter = {"n": 0, "recorded": 0}

    def progress(spec, status: str) -> None:
        counter["n"] += 1
        if cfg.record and not status.startswith("failed"):  # at once: a later cell may be interrupted
            counter["recorded"] += record_cells(exp_dir, [spec], Path(cfg.records_dir))[0]
        if console is not None:
            style = "red" if status.startswith("failed") else "green"
            console.print(f"  [{counter['n']}/{len(todo)}] {spec.key}: [{style}]{status}[/] "
                          f"({time.perf_counter() - t0:.0f} s)")

    if cfg.launcher == "ray":
        outcome = run_ray(todo, exp_dir, options, address=cfg.ray_address, num_cpus=cfg.ray_num_cpus,
                          cpus_per_run=cfg.cpus_per_run, progress=progress)
    else:
        outcome = run_sequential(todo, exp_dir, options, progress=progress)
    report = write_report(cfg, specs, exp_dir, command, outcome)
    if console is not None:
        console.print(f"report: {report} ({time.perf_counter() - t0:.0f} s)")
    if cfg.record:
        written, unchanged = record_cells(exp_dir, specs, Path(cfg.records_dir))
        # the cells recorded as they finished count as written by this invocation, not as unchanged
        written, unchanged = written + counter["recorded"], unchanged - counter["recorded"]
        if console is not None:
            console.print(f"recorded: {written} cell(s) written, {unchanged} unchanged -> "
                          f"{Path(cfg.records_dir) / exp_dir.name}/runs/ (commit them to keep them)")
    return report, outcome


def experiment_command(args, console=None) -> int:
    names = available_experiments() if args.name == "all" else [args.name]
    if getattr(args, "status", False):
        from dcsched.experiments.status import experiment_status, format_status

        for name in names:
            print(format_status(Path(name).stem, experiment_status(name, args.overrides)))
        return 0
    failed = 0
    for name in names:
        try:
            _, outcome = run_experiment(name, args.overrides, console=console)
        except (KeyboardInterrupt, Terminated):  # Ctrl-C or a scheduler's SIGTERM
            if console is not None:
                console.print(f"[yellow]{Path(name).stem}: interrupted.[/] Finished cells are kept; a training cell that was "
                              "running saved its last.ckpt at a batch boundary. Run the same command again to "
                              "resume: finished cells are skipped, the interrupted one continues from its checkpoint.")
            raise
        failed += sum(isinstance(v, str) for v in outcome.values())
    if failed and console is not None:
        console.print(f"[red]{failed} run(s) failed; their error.txt is in the run folders[/]")
    return 1 if failed else 0
