"""Execute one cell of an experiment grid into ``<exp_dir>/runs/<cell>/`` and write its result.json.

A cell is done when its ``result.json`` exists with the cell's config hash; a done cell is never
re-run. A learned run interrupted mid-training resumes from its ``train/checkpoints/last.ckpt``.
A cell folder left by an older config (hash differs) is cleared before the new run starts.

Records: a finished cell's ``result.json`` and ``spec.json`` copied into a folder kept in git
(``results/<experiment>/runs/<cell>/``, :func:`record_cells`). A later invocation in any checkout
adopts a recorded cell with the same config hash instead of running it (:func:`adopt_record`), so that
seeds run in different sessions or on different machines add up to one table. A record holds the
numbers, not the checkpoint or the training logs.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dcsched.experiments.spec import RunSpec
from dcsched.io import atomic_write_json

RESULT = "result.json"
SPEC = "spec.json"
COPYING = ".copying-"  # infix of a cell folder being copied in (adopted or reused), not yet placed


@dataclass
class RunOptions:
    """How cells are executed (the same for every cell of one invocation)."""

    wandb_mode: str = "offline"
    threads: int = 0  # torch threads; 0 = leave torch's default
    lp_workers: int = 1  # processes solving a bound cell's days in parallel
    eval_workers: int = 1  # processes playing a day-separable policy cell's day chunks in parallel
    reuse_root: str = ""  # search finished cells with the same hash under this folder ("" = no reuse)
    launcher: str = "sequential"


def run_dir(exp_dir: Path, spec: RunSpec) -> Path:
    return Path(exp_dir) / "runs" / spec.dirname


def read_result(exp_dir: Path, spec: RunSpec) -> dict | None:
    """The finished result of a cell, or None (absent, unreadable or from another config)."""
    path = run_dir(exp_dir, spec) / RESULT
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("spec", {}).get("config_hash") == spec.config_hash else None


def execute(spec: RunSpec | dict, exp_dir: str | Path, options: RunOptions | dict) -> dict:
    """Run one cell (or return its finished result). Safe to call in another process or a Ray task."""
    spec = spec if isinstance(spec, RunSpec) else RunSpec(**spec)
    options = options if isinstance(options, RunOptions) else RunOptions(**options)
    exp_dir = Path(exp_dir)
    done = read_result(exp_dir, spec)
    if done is not None:
        return done
    folder = run_dir(exp_dir, spec)
    _clear_if_stale(folder, spec)
    if options.reuse_root:
        reused = _reuse(Path(options.reuse_root), exp_dir, spec)
        if reused is not None:
            return reused
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / SPEC, spec.to_dict())
    import torch

    if options.threads > 0:
        torch.set_num_threads(options.threads)
    code = process_commit()
    t0 = time.perf_counter()
    body = {"bound": _run_bound, "policy": _run_policy, "train": _run_train}[spec.kind](spec, folder, options)
    result = {"spec": spec.to_dict(), **body, "wall_s": time.perf_counter() - t0,
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "host": platform.node(), "launcher": options.launcher, "torch_threads": torch.get_num_threads(),
              "pid": os.getpid(), "git_commit": code}
    from dcsched.provenance import git_commit

    end = git_commit()
    if end != code:  # the checkout changed while this process ran: its modules may be older than it
        result["git_commit_at_end"] = end
    atomic_write_json(folder / RESULT, result)
    for progress in PROGRESS_FILES:  # a bound's days, a policy's days, the Poisson seeds: in result.json now
        (folder / progress).unlink(missing_ok=True)
    return result


_PROCESS_COMMIT: list[str] = []


def process_commit() -> str:
    """The checkout's commit when this process ran its first cell: the code its modules were
    imported from (a sequential experiment imports them once, so a commit made while it runs does
    not reach it)."""
    if not _PROCESS_COMMIT:
        from dcsched.provenance import git_commit

        _PROCESS_COMMIT.append(git_commit())
    return _PROCESS_COMMIT[0]


def _clear_if_stale(folder: Path, spec: RunSpec) -> None:
    try:
        old = json.loads((folder / SPEC).read_text())
    except (OSError, ValueError):
        return
    if old.get("config_hash") != spec.config_hash:
        # never deleted: the other config's run is moved aside, with its hash in the name
        aside = folder.with_name(f"{folder.name}.superseded-{str(old.get('config_hash', 'unknown'))[:12]}")
        n = 1
        while aside.exists():
            n += 1
            aside = aside.with_name(f"{folder.name}.superseded-{str(old.get('config_hash', 'unknown'))[:12]}-{n}")
        logging.getLogger("dcsched").warning("%s holds a run of another config: moved to %s", folder, aside.name)
        folder.rename(aside)


def find_finished(root: Path, exp_dir: Path, spec: RunSpec) -> tuple[Path, dict] | None:
    """A finished cell with ``spec``'s config hash and kind in another experiment under ``root``
    (``root/<experiment>/runs/<cell>/result.json``): (its result.json, its result), or None."""
    for candidate in sorted(Path(root).glob(f"*/runs/*/{RESULT}")):
        if candidate.parent.parent.parent.resolve() == Path(exp_dir).resolve() or COPYING in candidate.parent.name:
            continue  # this experiment's own cells, or another invocation's copy in flight
        try:
            other = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if other.get("spec", {}).get("config_hash") == spec.config_hash and other["spec"].get("kind") == spec.kind:
            return candidate, other
    return None


def _reuse(root: Path, exp_dir: Path, spec: RunSpec, mark: str = "reused_from") -> dict | None:
    """Copy a finished cell with the same config hash from another experiment under ``root``; the
    copy's result names its source under ``mark``."""
    found = find_finished(root, exp_dir, spec)
    if found is None:
        return None
    candidate, other = found
    folder = run_dir(exp_dir, spec)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # a folder of this process's own: two invocations adopting the same cell at once never share it
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + COPYING, dir=folder.parent))
    try:
        shutil.copytree(candidate.parent, tmp, dirs_exist_ok=True)
        other.pop("reused_from", None)
        other.pop("recorded_from", None)
        other[mark] = str(candidate.parent)
        other["spec"] = spec.to_dict()
        atomic_write_json(tmp / RESULT, other)
        atomic_write_json(tmp / SPEC, spec.to_dict())
        return place_copy(tmp, exp_dir, spec, other)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def place_copy(tmp: Path, exp_dir: Path, spec: RunSpec, result: dict) -> dict:
    """Move the filled folder ``tmp`` (whose result.json holds ``result``) into ``spec``'s cell folder
    and return ``result``. When another invocation has placed the same cell (same config hash,
    finished) there first, as two invocations started together on one output folder both adopt every
    recorded cell, theirs is kept and returned, and ``tmp`` is left for the caller to remove; a folder
    of anything else there is replaced."""
    folder = run_dir(exp_dir, spec)
    theirs = read_result(exp_dir, spec)
    if theirs is not None:
        return theirs
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:  # placed by another invocation between the rmtree and the rename
        theirs = read_result(exp_dir, spec)
        if theirs is None:
            raise
        return theirs
    return result


def adopt_record(records_dir: Path, exp_dir: Path, spec: RunSpec) -> dict | None:
    """A recorded cell with ``spec``'s config hash (any experiment under ``records_dir``) copied into
    the cell's folder, its result marked ``recorded_from``; None when there is none. A folder left by
    another config is moved aside first, as before a run."""
    if not Path(records_dir).is_dir():
        return None
    _clear_if_stale(run_dir(exp_dir, spec), spec)
    return _reuse(Path(records_dir), exp_dir, spec, mark="recorded_from")


def record_cells(exp_dir: Path, specs: list[RunSpec], records_dir: Path) -> tuple[int, int]:
    """Copy every finished cell's result.json and spec.json to ``records_dir/<experiment>/runs/<cell>/``
    (atomically, file by file). Returns (written, unchanged). A record of another config at the same
    place is replaced (git keeps the old one); cells adopted from these records are left as they are."""
    exp_dir, records_dir = Path(exp_dir), Path(records_dir)
    written = unchanged = 0
    for spec in specs:
        result = read_result(exp_dir, spec)
        if result is None:
            continue
        target = records_dir / exp_dir.name / "runs" / spec.dirname
        if result.get("recorded_from") and Path(result["recorded_from"]).resolve() == target.resolve():
            unchanged += 1
            continue
        result = {k: v for k, v in result.items() if k not in ("recorded_from", "reused_from")}
        try:
            if json.loads((target / RESULT).read_text()) == result:
                unchanged += 1
                continue
        except (OSError, ValueError):
            pass
        atomic_write_json(target / SPEC, spec.to_dict())
        atomic_write_json(target / RESULT, result)
        written += 1
    return written, unchanged


def _scenario(spec: RunSpec):
    from dcsched.config import load_scenario

    return load_scenario(spec.scenario, spec.scenario_overrides)


BOUND_PROGRESS = "bounds.partial.json"  # a bound cell's days solved so far (a rerun solves only the rest)
EVAL_PROGRESS = "eval.partial.json"  # a policy cell's per-day rows so far (a rerun plays only the rest)
STOCHASTIC_PROGRESS = "stochastic.partial.json"  # Poisson seeds evaluated so far (a rerun plays only the rest)
PROGRESS_FILES = (BOUND_PROGRESS, EVAL_PROGRESS, STOCHASTIC_PROGRESS)


class _DayProgress:
    """What a cell has finished so far, by date (or by Poisson seed), in ``folder/name`` under
    ``key`` with the cell's hash: ``known`` holds what an interrupted run saved (nothing if the
    file is from another config), ``save(by_date)`` adds entries and rewrites the file atomically.
    :func:`execute` removes the file once result.json is written."""

    def __init__(self, folder: Path, name: str, key: str, spec: RunSpec):
        self.path, self.key, self.config_hash = folder / name, key, spec.config_hash
        self.known: dict = {}
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            if saved.get("config_hash") == self.config_hash:
                self.known = dict(saved[key])

    def save(self, by_date: dict) -> None:
        self.known.update(by_date)
        atomic_write_json(self.path, {"config_hash": self.config_hash, self.key: self.known})


def _run_bound(spec: RunSpec, folder: Path, options: RunOptions) -> dict:
    """The LP bound of every day of the cell. Each solved day is saved at once to
    ``BOUND_PROGRESS`` (with the cell's hash), so an interrupted cell (a global8 bound takes about an
    hour) resumes with the days still missing; :func:`execute` removes it once result.json is written."""
    from dcsched.baselines.lp_bound import bounds_by_date

    progress = _DayProgress(folder, BOUND_PROGRESS, "bounds_usd", spec)
    by_date = bounds_by_date(_scenario(spec), spec.days, spec.max_days, workers=max(1, options.lp_workers),
                             known=progress.known, on_solved=lambda date, bound_usd: progress.save({date: bound_usd}))
    values = list(by_date.values())
    return {"bounds_usd": by_date, "summary": {"utility_usd": sum(values) / len(values), "num_days": len(values)}}


def _evaluate(scenario_cfg, policy: str, spec: RunSpec, folder: Path, env_cfg=None) -> dict:
    from dcsched.eval.evaluate import evaluate_policies

    out_dir = folder / "eval" if spec.keep_traces else None
    results = evaluate_policies(scenario_cfg, [policy], spec.days, out_dir, deterministic=True, seed=spec.seed,
                                max_days=spec.max_days, env_cfg=env_cfg, plots=False)
    summary = next(iter(results.values()))
    body = {"summary": summary["mean"], "per_day": summary["per_day"], "days": summary["days"]}
    if spec.stochastic_seeds:
        # a trained cell's seeds are not saved: its checkpoint, not its config, is the policy
        saved_in = folder if spec.kind == "policy" else None
        body["stochastic"] = _evaluate_stochastic(scenario_cfg, policy, spec, saved_in, env_cfg)
    return body


def _evaluate_stochastic(scenario_cfg, policy: str, spec: RunSpec, folder: Path | None, env_cfg=None) -> dict:
    """The same days on Poisson arrivals, seeds 0..N-1 (every policy of the experiment sees the same
    draws per seed): per-seed means and their mean. Utility is compared with the deterministic
    (expected-arrivals) LP bound of the same days. Each finished seed is saved at once to
    ``folder/STOCHASTIC_PROGRESS`` (with the cell's hash), so an interrupted cell (an MPC cell's
    three seeds take about 40 minutes on one core) resumes with the seeds still missing; with
    ``folder`` None nothing is saved."""
    from dcsched.eval.evaluate import evaluate_policies

    progress = _DayProgress(folder, STOCHASTIC_PROGRESS, "per_seed", spec) if folder is not None else None
    known = progress.known if progress is not None else {}
    for seed in range(spec.stochastic_seeds):
        if str(seed) in known:
            continue
        res = evaluate_policies(scenario_cfg, [policy], spec.days, None, deterministic=False, seed=seed,
                                max_days=spec.max_days, env_cfg=env_cfg, plots=False)
        mean = next(iter(res.values()))["mean"]
        row = {str(seed): {k: mean[k] for k in ("utility_usd", "violation_rate")}}
        if progress is not None:
            progress.save(row)  # adds the seed to known (progress.known) and writes the file
        else:
            known.update(row)
    per_seed = [known[str(seed)] for seed in range(spec.stochastic_seeds)]
    return {"seeds": list(range(spec.stochastic_seeds)), "per_seed": per_seed,
            **{k: float(sum(r[k] for r in per_seed) / len(per_seed)) for k in ("utility_usd", "violation_rate")}}


def _run_policy(spec: RunSpec, folder: Path, options: RunOptions) -> dict:
    """A day-separable policy (the rules and planners, :mod:`dcsched.eval.chunked`) plays its days
    in chunks of a few days, ``options.eval_workers`` chunks at a time; each finished chunk's rows
    are saved to ``EVAL_PROGRESS`` (with the cell's hash), so an interrupted cell (a one-slot MILP
    planner on 52 days: about 2 h on one core) resumes with the days still missing. The rows equal
    one batched evaluation's. Any other policy, or a cell that keeps its traces, runs in one batch."""
    from dcsched.eval.chunked import evaluate_day_rows, is_day_separable
    from dcsched.eval.summary import mean_summary

    scenario_cfg = _scenario(spec)
    if spec.keep_traces or not is_day_separable(spec.policy):
        return _evaluate(scenario_cfg, spec.policy, spec, folder)
    progress = _DayProgress(folder, EVAL_PROGRESS, "rows", spec)
    per_day = evaluate_day_rows(scenario_cfg, spec.policy, spec.days, spec.max_days, seed=spec.seed,
                                workers=max(1, options.eval_workers), known=progress.known,
                                on_chunk=lambda rows: progress.save({row["day"]: row for row in rows}))
    body = {"summary": mean_summary([{k: v for k, v in row.items() if k != "day"} for row in per_day]),
            "per_day": per_day, "days": [row["day"] for row in per_day]}
    if spec.stochastic_seeds:
        body["stochastic"] = _evaluate_stochastic(scenario_cfg, spec.policy, spec, folder)
    return body


def first_success_frames(train_dir: Path) -> float:
    """The environment frames at the first logged batch in which an episode reached its goal
    (``train/success_rate`` > 0 in the run's metrics.csv); NaN when none did."""
    import csv

    import math

    for path in sorted((train_dir / "csv").glob("version_*/metrics.csv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                rate, frames = row.get("train/success_rate") or "", row.get("frames") or ""
                if rate and frames and float(rate) > 0:
                    return float(frames)
    return math.nan


def _evaluate_task(ckpt: Path, cfg, train_dir: Path) -> dict:
    """A Gymnasium task's cell: the checkpoint's return and success over ``eval.episodes`` episodes
    (:func:`dcsched.eval.task_eval.evaluate_task_checkpoint`) and the frames to the first success in
    training."""
    from dcsched.eval.task_eval import evaluate_task_checkpoint

    res = evaluate_task_checkpoint(ckpt, cfg.eval.episodes, cfg.seed)
    summary = {"task_return": res["return_mean"], "success_rate": res["success_rate"],
               "task_episode_length": res["length_mean"], "first_success_frames": first_success_frames(train_dir)}
    return {"summary": summary, "days": [], "per_episode": res["returns"], "eval_seed": res["eval_seed"]}


def drop_replay_buffer(ckpt: Path) -> float:
    """Rewrite a finished run's checkpoint without its replay buffer (weights, optimisers and
    counters stay: it still evaluates and loads). Returns the new size in MB."""
    import torch

    from dcsched.agents.checkpoint_format import load_checkpoint
    from dcsched.io import atomic_write

    state = load_checkpoint(ckpt, "cpu")
    if state.get("dcsched", {}).pop("rb", None) is not None:
        atomic_write(ckpt, lambda p: torch.save(state, p))
    return ckpt.stat().st_size / 1e6


def _run_train(spec: RunSpec, folder: Path, options: RunOptions) -> dict:
    from dcsched.training.train import train_from_config
    from dcsched.experiments.aggregate import DIAGNOSTICS
    from dcsched.config import load_recipe

    train_dir = folder / "train"
    ckpt = train_dir / "checkpoints" / "last.ckpt"
    extra = [f"name={spec.dirname}", f"out_dir={folder}", f"logger.wandb_mode={options.wandb_mode}",
             "trainer.progress=false", "eval.policies=null"]
    cfg = load_recipe(spec.recipe, [*spec.overrides, *extra])
    resumed = ckpt.exists()
    if resumed:
        cfg.resume = str(ckpt)
    t0 = time.perf_counter()
    module, _ = train_from_config(cfg, run_dir=train_dir)
    train_wall_s = time.perf_counter() - t0
    from dcsched.envs.gym_task import is_gym_task

    if is_gym_task(cfg.task):
        body = _evaluate_task(ckpt, cfg, train_dir)
    else:
        body = _evaluate(cfg.scenario, str(ckpt), spec, folder, env_cfg=cfg.env)
    body["checkpoint_mb"] = drop_replay_buffer(ckpt)
    body["train"] = {"frames": int(module.frames), "updates": int(module.updates), "wall_s": train_wall_s,
                     "frames_per_s": float("nan") if resumed else float(module.frames) / train_wall_s,
                     "resumed": resumed, "total_frames": int(cfg.trainer.total_frames),
                     "diagnostics": module.last_logged(DIAGNOSTICS)}
    return body
