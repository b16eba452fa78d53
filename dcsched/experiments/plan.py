"""Which cells an invocation of `dcsched experiment` runs, and where it writes (pure functions of a loaded experiment config)."""

from __future__ import annotations

import re
from pathlib import Path


def experiment_dir(cfg) -> tuple[Path, Path]:
    """(the output root, this experiment's folder) of a loaded experiment config; the quick tier
    writes under runs/experiments-quick unless out_dir was given."""
    out_root = Path(cfg.out_dir)
    if cfg.tier == "quick" and cfg.out_dir == "runs/experiments":
        out_root = Path("runs/experiments-quick")
    return out_root, out_root / cfg.name


def adopts_records(cfg) -> bool:
    """Whether an invocation with this config adopts recorded cells (full tier, reuse, a records_dir)."""
    return cfg.tier == "full" and cfg.reuse and bool(cfg.records_dir)


def cells_to_run(cfg, unfinished: list) -> list:
    """The unfinished cells an invocation executes: those whose key matches ``only``, then the
    first ``max_runs`` of them."""
    todo = [s for s in unfinished if re.search(cfg.only, s.key)] if cfg.only else list(unfinished)
    return todo[: cfg.max_runs] if cfg.max_runs else todo
