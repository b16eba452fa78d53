"""Launchers: execute an experiment's cells in this process (sequential) or as Ray tasks.

Both call :func:`dcsched.experiments.runner.execute` per cell, so a cell's result depends only on
its spec (and the torch thread count), never on the launcher. Finished cells are skipped by
both, which is how an interrupted sweep resumes.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from dcsched.errors import ConfigError
from dcsched.experiments.runner import RunOptions, execute, read_result
from dcsched.experiments.spec import RunSpec
from dcsched.ray_runtime import init_ray

Progress = Callable[[RunSpec, str], None]  # (cell, "done" | "reused" | "failed: ...")


def _status(result: dict) -> str:
    return "reused" if result.get("reused_from") else "done"


def run_sequential(specs: list[RunSpec], exp_dir: Path, options: RunOptions, progress: Progress | None = None) -> dict:
    """Run cells one after another in this process. Returns {key: result | exception text}."""
    outcome: dict[str, dict | str] = {}
    for spec in specs:
        try:
            result = execute(spec, exp_dir, options)
            outcome[spec.key] = result
            status = _status(result)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one failing cell must not lose the others
            outcome[spec.key] = f"{type(err).__name__}: {err}"
            _write_error(exp_dir, spec, traceback.format_exc())
            status = f"failed: {outcome[spec.key]}"
        if progress:
            progress(spec, status)
    return outcome


def _write_error(exp_dir: Path, spec: RunSpec, text: str) -> None:
    from dcsched.experiments.runner import run_dir
    from dcsched.io import atomic_write_text

    atomic_write_text(run_dir(exp_dir, spec) / "error.txt", text)


def run_ray(specs: list[RunSpec], exp_dir: Path, options: RunOptions, address: str = "", num_cpus: int = 0,
            cpus_per_run: int = 1, progress: Progress | None = None) -> dict:
    """Run each cell as a Ray task requesting ``cpus_per_run`` CPUs (and as many torch threads).

    ``address`` "" starts a local Ray instance (``num_cpus`` cores, 0 = all) that is shut down at the
    end; otherwise connects to an existing cluster (e.g. "ray://head:10001" or "auto"). The cells
    write into ``exp_dir``, which must be on storage shared by the workers on a multi-node cluster.
    """
    try:
        import ray
    except ImportError as err:
        raise ConfigError("command line", "launcher", "launcher=ray needs the 'ray' package "
                          "(pip install -e '.[ray]')", "sequential, ray") from err
    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address, num_cpus)
    try:
        task = ray.remote(num_cpus=cpus_per_run, max_retries=0)(_ray_execute)
        opts = asdict(options) | {"threads": cpus_per_run, "launcher": "ray"}
        pending, outcome = {}, {}
        for spec in specs:
            finished = read_result(exp_dir, spec)
            if finished is not None:  # no task at all
                outcome[spec.key] = finished
                if progress:
                    progress(spec, "done")
                continue
            ref = task.remote(spec.to_dict(), str(Path(exp_dir).resolve()), opts)
            pending[ref] = spec
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            spec = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
                outcome[spec.key] = result
                status = _status(result)
            except Exception as err:
                cause = getattr(err, "cause", None) or err
                outcome[spec.key] = f"{type(cause).__name__}: {cause}"
                _write_error(exp_dir, spec, str(err))
                status = f"failed: {outcome[spec.key]}"
            if progress:
                progress(spec, status)
        return outcome
    finally:
        if started_here:
            ray.shutdown()


def _ray_execute(spec: dict, exp_dir: str, options: dict) -> dict:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(options.get("threads") or 1))
    return execute(spec, exp_dir, options)
