"""What each cell of an experiment grid is at, read from its folders: runs nothing, writes nothing.

    dcsched experiment NAME --status [key=value ...]

A grid of 5 seeds x 6 methods x 2 scenarios spans sessions, machines and launchers; this is the
view of what is left. States, in the order a cell passes through them:

- ``to run``: nothing usable yet (a folder left by another config is named in the detail: it is
  moved aside, not deleted, when the cell runs);
- ``partial``: interrupted or running: a training checkpoint (frames done of the total, from the
  run's metrics CSV), the days a bound or policy cell has saved, or only that it started (its
  spec.json); the age of its newest file tells a running cell from a stopped one;
- ``failed``: the last run of the cell raised (its ``error.txt``) and nothing was written since;
- ``recorded``: a record with the cell's config hash exists under ``records_dir``: the next
  invocation adopts it instead of running it (full tier, ``reuse=true``);
- ``reusable``: a finished cell with the same hash in another experiment under ``out_dir``: the
  next invocation copies it (``reuse=true``);
- ``finished``: ``result.json`` with the cell's hash (its utility and origin in the detail).

``selected``: whether the same command without ``--status`` would execute the cell now (not
finished, not recorded, matched by ``only``, within ``max_runs``), as :func:`cells_to_run` decides
for :func:`dcsched.experiments.run_experiment`.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from dcsched.experiments.runner import (BOUND_PROGRESS, EVAL_PROGRESS, RESULT, SPEC, STOCHASTIC_PROGRESS, _DayProgress,
                                        _scenario, find_finished, read_result, run_dir)
from dcsched.experiments.spec import RunSpec

STATES = ("finished", "recorded", "reusable", "partial", "failed", "to run")
ERROR = "error.txt"


@dataclass(frozen=True)
class CellStatus:
    key: str
    kind: str  # bound | policy | train
    state: str  # one of STATES
    detail: str
    selected: bool = False


def _newest_write(folder: Path) -> float:
    """mtime (s) of the newest file under ``folder`` other than error.txt (the folder's own if none)."""
    return max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file() and p.name != ERROR),
               default=folder.stat().st_mtime)


def _age(age_s: float) -> str:
    """'12 s' / '7 min' / '3.2 h'."""
    age_s = max(0.0, age_s)
    if age_s < 120:
        return f"{age_s:.0f} s"
    return f"{age_s / 60:.0f} min" if age_s < 7200 else f"{age_s / 3600:.1f} h"


def training_progress(train_dir: Path) -> tuple[int | None, int | None]:
    """(frames trained so far, the run's total frames) of a training folder: the last ``frames``
    logged to its metrics CSV (any ``csv/version_*``) and ``trainer.total_frames`` of its
    config.yaml; None where a file is missing (e.g. ``logger.csv=false``)."""
    frames = None
    for metrics in sorted(train_dir.glob("csv/version_*/metrics.csv")):
        with metrics.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("frames"):
                    frames = max(frames or 0, int(float(row["frames"])))
    total = None
    config = train_dir / "config.yaml"
    if config.exists():
        from omegaconf import OmegaConf

        total = OmegaConf.load(config).get("trainer", {}).get("total_frames")
    return frames, None if total is None else int(total)


def _num_days(spec: RunSpec) -> int:
    from dcsched.data.exogenous import parse_days

    return len(parse_days(_scenario(spec), spec.days)[: spec.max_days or None])


def _saved(spec: RunSpec, folder: Path, name: str, key: str) -> dict:
    """A progress file's entries, {} when there is none or it is another config's."""
    return _DayProgress(folder, name, key, spec).known if (folder / name).exists() else {}


def _partial_detail(spec: RunSpec, folder: Path) -> str | None:
    """What an unfinished cell has saved, or None when it has nothing of this config."""
    if spec.kind == "train":
        ckpt = folder / "train" / "checkpoints" / "last.ckpt"
        if not ckpt.exists():
            return "started, no checkpoint yet" if (folder / "train").is_dir() else None
        frames, total = training_progress(folder / "train")
        if frames is None:
            return "checkpoint (frames not logged: logger.csv=false)"
        return f"checkpoint, {frames:,} of {total:,} frames ({100 * frames / total:.0f} %)" if total \
            else f"checkpoint, {frames:,} frames"
    name, key, what = (BOUND_PROGRESS, "bounds_usd", "solved") if spec.kind == "bound" else \
        (EVAL_PROGRESS, "rows", "played")
    known = _saved(spec, folder, name, key)
    if known:
        seeds = _saved(spec, folder, STOCHASTIC_PROGRESS, "per_seed")
        poisson = f", {len(seeds)} of {spec.stochastic_seeds} Poisson seeds" if seeds else ""
        return f"{len(known)} of {_num_days(spec)} days {what}{poisson}"
    # execute() writes spec.json before it starts; a policy that plays in one batch saves no days
    return f"started, no day {what} yet" if (folder / SPEC).exists() else None


def _finished_detail(result: dict) -> str:
    utility = result.get("summary", {}).get("utility_usd")
    text = "" if utility is None else f"{utility:,.2f} $/day"
    origin = result.get("recorded_from") or result.get("reused_from")
    if origin:
        text += f"; {'recorded' if result.get('recorded_from') else 'reused'} from {origin}"
    elif "train" in result:
        text += f"; trained {result['train']['wall_s']:.0f} s"
    return text


def cell_status(spec: RunSpec, exp_dir: Path, records_dir: Path | None = None, reuse_root: Path | None = None,
                now: float | None = None) -> CellStatus:
    """The state of one cell (module docstring). ``records_dir`` / ``reuse_root``: where the next
    invocation would adopt or copy a finished cell with the same hash (None = it would not)."""
    now = time.time() if now is None else now
    result = read_result(exp_dir, spec)
    if result is not None:
        return CellStatus(spec.key, spec.kind, "finished", _finished_detail(result))
    for state, root in (("recorded", records_dir), ("reusable", reuse_root)):
        if root is not None and Path(root).is_dir():
            found = find_finished(Path(root), exp_dir, spec)
            if found is not None:
                return CellStatus(spec.key, spec.kind, state, f"{_finished_detail(found[1])}; in {found[0].parent}")
    folder = run_dir(exp_dir, spec)
    try:
        held = json.loads((folder / SPEC).read_text()).get("config_hash")
    except (OSError, ValueError):
        held = None
    if held is not None and held != spec.config_hash:
        return CellStatus(spec.key, spec.kind, "to run",
                          f"its folder holds another config's run ({held}): moved aside when this cell runs")
    partial = _partial_detail(spec, folder) if folder.is_dir() else None
    newest = _newest_write(folder) if partial is not None else 0.0
    error = folder / ERROR
    if error.exists() and error.stat().st_mtime >= newest:
        lines = [line for line in error.read_text().splitlines() if line.strip()]
        return CellStatus(spec.key, spec.kind, "failed", lines[-1] if lines else "error.txt is empty")
    if partial is not None:
        return CellStatus(spec.key, spec.kind, "partial", f"{partial}; last written {_age(now - newest)} ago")
    return CellStatus(spec.key, spec.kind, "to run", "")


def format_status(name: str, cells: list[CellStatus]) -> str:
    """A plain-text table of the cells and a count per state."""
    width = max([len(c.key) for c in cells] + [4])
    lines = [f"{'cell':<{width}}  {'kind':<6}  {'state':<8}  now  detail"]
    for c in cells:
        lines.append(f"{c.key:<{width}}  {c.kind:<6}  {c.state:<8}  {'yes' if c.selected else '   '}  {c.detail}".rstrip())
    counts = ", ".join(f"{sum(c.state == s for c in cells)} {s}" for s in STATES if any(c.state == s for c in cells))
    selected = sum(c.selected for c in cells)
    lines.append(f"{name}: {len(cells)} cells: {counts}; {selected} would run now with these overrides "
                 "(column 'now')")
    return "\n".join(lines)


def experiment_status(name: str, overrides: list[str] | None = None, now: float | None = None) -> list[CellStatus]:
    """Every cell of experiment ``name`` with these overrides, in grid order, with its state and
    whether the same command without ``--status`` would execute it now."""
    from dataclasses import replace

    from dcsched.experiments.plan import adopts_records, cells_to_run, experiment_dir
    from dcsched.experiments.spec import expand, load_experiment

    cfg = load_experiment(name, list(overrides or []))
    specs = expand(cfg)
    out_root, exp_dir = experiment_dir(cfg)
    records = Path(cfg.records_dir) if adopts_records(cfg) else None
    cells = [cell_status(s, exp_dir, records, out_root if cfg.reuse else None, now) for s in specs]
    unfinished = [s for s, c in zip(specs, cells) if c.state not in ("finished", "recorded")]
    chosen = {s.key for s in cells_to_run(cfg, unfinished)}
    return [replace(c, selected=c.key in chosen) for c in cells]
