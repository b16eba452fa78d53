"""`dcsched train RECIPE`: build the agent, fit with Lightning, checkpoint, evaluate on test days.

Work is never lost and never overwritten:

- ``checkpoints/last.ckpt`` is written (atomically) at the end of every checkpoint interval
  (``trainer.checkpoint_every_batches`` batches) and when training stops, so a killed process
  resumes from its last interval (``resume=.../last.ckpt``);
- Ctrl-C (SIGINT) is deferred to the end of the current batch: training stops there, last.ckpt is
  written, and the command exits with 130; a second Ctrl-C interrupts at once;
- a resumed run keeps its ``config.yaml`` and writes ``config.resume-N.yaml`` beside it, and its
  evaluation goes to a new ``eval-N/`` folder when ``eval/`` exists;
- a run folder that an error left without a checkpoint is removed; a ``resume=`` path that does not
  exist, or a checkpoint of another method, is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import threading
import uuid
import warnings
from datetime import datetime
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from dcsched.config import save_resolved, to_container
from dcsched.errors import ConfigError, DcschedError, Terminated


def run_dir_for(cfg) -> Path:
    """The folder of a resumed run (its checkpoint's run folder); for a new run see :func:`claim_run_dir`."""
    ckpt = Path(cfg.resume)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def claim_run_dir(cfg, stamp: str | None = None) -> Path:
    """A new run's folder ``out_dir/NAME-sSEED-STAMP``, created exclusively: when it exists (two
    runs of one name and seed started in the same second, as a shell loop over a hyper-parameter
    does) the next free ``...-2``, ``...-3`` is taken, so two runs never share a folder or a last.ckpt."""
    stamp = stamp or datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.out_dir) / f"{cfg.name}-s{cfg.seed}-{stamp}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ConfigError("recipe", "name", f"no free run folder for {base} (10,000 taken)", "another name= or out_dir=")


class LastCheckpoint(Callback):
    """Writes ``last.ckpt`` at the end of every Lightning epoch (one checkpoint interval) and at the
    end of a stopped one (frame budget reached, or Ctrl-C): the write is atomic (AtomicCheckpointIO)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint(str(self.path))


def frames_progress_bar():
    """Lightning's rich progress bar, titled with frames against the budget (training has no epoch
    count: the frame budget ends it). Overrides a private hook; if Lightning renames it, the bar
    only falls back to Lightning's own title."""
    from lightning.pytorch.callbacks import RichProgressBar

    class FramesProgressBar(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            module = self.trainer.lightning_module
            return f"{int(module.frames):,} / {int(module.cfg.trainer.total_frames):,} frames"

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            if self.progress is not None and self.train_progress_bar_id is not None:
                self.progress.update(self.train_progress_bar_id,
                                     description=self._get_train_description(trainer.current_epoch))

    return FramesProgressBar()


def build_trainer(cfg, run_dir: Path, loggers, extra_callbacks=()):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dcsched.training.checkpoint_io import AtomicCheckpointIO
    from dcsched.training.placement import lightning_accelerator, resolve_device

    t = cfg.trainer
    batches_per_epoch = max(1, t.checkpoint_every_batches)
    callbacks = [LastCheckpoint(run_dir / "checkpoints" / "last.ckpt")]
    if t.progress:
        callbacks.append(frames_progress_bar())
    if t.keep_all_checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="epoch{epoch:03d}",
                                         save_last=False, save_top_k=-1, every_n_epochs=1,
                                         auto_insert_metric_name=False))
    return L.Trainer(
        accelerator=lightning_accelerator(resolve_device(cfg.env.device, t.accelerator)), devices=1,
        # The frame budget alone ends training (the module sets should_stop): an epoch count would end a
        # resumed run early, since Lightning counts an epoch cut short by Ctrl-C as a whole one.
        max_epochs=-1, limit_train_batches=batches_per_epoch,
        logger=loggers or False, callbacks=[*callbacks, *extra_callbacks], enable_progress_bar=t.progress,
        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
        plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir),
        enable_checkpointing=bool(t.keep_all_checkpoints),  # else Lightning adds its own epoch=..ckpt writer
    )


class TrainingAborted(BaseException):
    """A second Ctrl-C during training (not a KeyboardInterrupt: Lightning turns that into exit 1)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; a scheduler's preemption (SLURM, Kubernetes)


@contextlib.contextmanager
def deferred_interrupt(module):
    """While training: the first SIGINT or SIGTERM only asks the module to stop after the current
    batch (``module.interrupt_requested``; ``module.stop_signal`` says which), so that last.ckpt is
    written at a batch boundary; a second one aborts at once (TrainingAborted).

    Lightning handles SIGTERM itself during ``fit`` (its handler runs before ours): at the end of the
    batch it exits with code 0 and no checkpoint, which a scheduler reads as success. Ours clears
    Lightning's flag, so SIGTERM stops like Ctrl-C and the caller exits 143 (tests/test_interruptions.py)."""
    module.interrupt_requested = False
    module.stop_signal = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def abort(signum, frame):
        raise TrainingAborted

    def ask_to_stop(signum, frame):
        module.interrupt_requested = True
        module.stop_signal = signum
        connector = getattr(getattr(module, "_trainer", None), "_signal_connector", None)
        if connector is not None:
            connector.received_sigterm = False  # Lightning's own SIGTERM stop (exit 0, no checkpoint) is replaced by ours
        for sig in STOP_SIGNALS:
            signal.signal(sig, abort)
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        print(f"\ndcsched: {what}: stopping after this batch and saving last.ckpt (again to abort at once)", flush=True)

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file-size limit


def _out_of_space(err: OSError, run_dir: Path) -> DcschedError:
    """The error for a write that ran out of space during training, saying what was kept: the
    previous last.ckpt (atomic writes: a failed rewrite leaves it whole) and how to resume from it."""
    from dcsched.agents.checkpoint_format import load_checkpoint

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    where = f"cannot write {err.filename or run_dir}: {err.strerror}"
    if not ckpt.exists():
        return DcschedError(f"{where}; no checkpoint had been written, so nothing was kept (free space or choose "
                            "another out_dir=, then train again)")
    frames = int(load_checkpoint(ckpt, "cpu")["state_dict"]["frames"])
    return DcschedError(f"{where}; the previous {ckpt} ({frames:,} frames) is intact: free space, then resume: "
                        f"dcsched train RECIPE resume={ckpt}")


def check_resume(cfg) -> dict:
    """The checkpoint's own dcsched record (plus ``frames``, the frames it had trained); refuses a
    missing file or one of another method."""
    from dcsched.agents.checkpoint_format import load_checkpoint

    path = Path(cfg.resume)
    ckpt = load_checkpoint(path, "cpu", "resume")  # refuses a file that would run code when unpickled
    saved = ckpt["hyper_parameters"]["cfg"]
    for key in ("agent.name", "shaper.name"):
        group, leaf = key.split(".")
        was, now = saved.get(group, {}).get(leaf), cfg[group][leaf]
        if was != now:
            raise ConfigError("command line", "resume", f"this checkpoint is a run with {key}={was}; the recipe "
                              f"has {key}={now}", f"a recipe with {key}={was}")
    record = dict(ckpt.get("dcsched", {}))
    record["frames"] = int(ckpt.get("state_dict", {}).get("frames", 0))
    return record


def _versioned(run_dir: Path, stem: str, suffix: str = "") -> Path:
    """``run_dir/stem+suffix`` if free, else ``stem-2``, ``stem-3``, ... (nothing is overwritten)."""
    target, n = run_dir / f"{stem}{suffix}", 1
    while target.exists():
        n += 1
        target = run_dir / f"{stem}-{n}{suffix}"
    return target


def train_and_evaluate(cfg, console=None) -> tuple:
    """`dcsched train`: :func:`train_from_config`, then :func:`evaluate_trained_run` (``eval.*``)."""
    module, run_dir = train_from_config(cfg, console=console)
    evaluate_trained_run(cfg, run_dir, console=console)
    return module, run_dir


def evaluate_trained_run(cfg, run_dir: Path, console=None) -> Path | None:
    """Evaluate a finished run's last.ckpt beside ``eval.policies`` on ``eval.days`` (with each
    day's LP bound when ``eval.with_bound``) into a new ``run_dir/eval`` (``eval-2``, ... when one
    exists). Returns that folder, or None when ``eval.policies`` is null (no evaluation)."""
    if cfg.eval.policies is None:
        return None
    from dcsched.envs.gym_task import is_gym_task

    if is_gym_task(cfg.task):  # a Gymnasium task: its return and success rate over eval.episodes episodes
        from dcsched.eval.task_eval import evaluate_task_checkpoint

        out = _versioned(run_dir, "eval")
        summary = evaluate_task_checkpoint(run_dir / "checkpoints" / "last.ckpt", cfg.eval.episodes, cfg.seed, out)
        if console is not None:
            lo, hi = summary["return_ci95"]
            console.print(f"{cfg.task}: return {summary['return_mean']:.2f} [{lo:.2f}, {hi:.2f}] over "
                          f"{summary['episodes']} episodes, success {summary['success_rate']:.0%} -> {out / 'summary.json'}")
        return out
    from dcsched.eval.evaluate import evaluate_policies

    bounds = None
    if cfg.eval.with_bound:
        from dcsched.baselines.lp_bound import bounds_by_date

        if console is not None:
            console.print("solving the LP bound of each evaluation day (a few seconds per day) ...")
        bounds = {"lp": bounds_by_date(cfg.scenario, cfg.eval.days, cfg.eval.max_days, progress=console is not None)}
    out = _versioned(run_dir, "eval")
    evaluate_policies(cfg.scenario, [str(run_dir / "checkpoints" / "last.ckpt"), *cfg.eval.policies], cfg.eval.days, out,
                      deterministic=True, seed=cfg.seed, max_days=cfg.eval.max_days, bounds=bounds, console=console)
    return out


def train_from_config(cfg, console=None, agent_cls=None, run_dir: Path | None = None):
    """Train per the resolved RunConfig; returns (module, run_dir). Writes runs/<run>/config.yaml,
    csv/metrics.csv and checkpoints/last.ckpt. Only trains: `dcsched train` evaluates after it
    (:func:`train_and_evaluate`).

    ``run_dir``: a fixed folder (the experiment layer's); default ``out_dir/<name>-s<seed>-<time>``.
    Raises KeyboardInterrupt after a Ctrl-C, once last.ckpt is written."""
    from dcsched.agents.checkpoint_format import (algorithm_class, load_checkpoint, migrate_state_dict, safe_globals,
                                                  typed_config)
    from dcsched.training.parts import build_parts
    from dcsched.training.harness import Agent
    from dcsched.tracking import effective_wandb_mode, make_loggers, quiet_libraries

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_libraries()
    for pattern in (".*dataloader_iter.*", ".*LeafSpec.*", ".*Consider using tensor.detach.*"):
        warnings.filterwarnings("ignore", message=pattern)
    agent_cls = agent_cls or Agent
    saved = check_resume(cfg) if cfg.resume else {}
    if run_dir is not None:  # a fixed folder (the experiment layer's)
        run_dir = Path(run_dir)
        created = not run_dir.exists()
    elif cfg.resume:
        run_dir, created = run_dir_for(cfg), False
    else:
        run_dir, created = claim_run_dir(cfg), True
    try:
        if cfg.resume and (run_dir / "config.yaml").exists():
            save_resolved(cfg, run_dir, _versioned(run_dir, "config.resume", ".yaml").name)
        else:
            save_resolved(cfg, run_dir)
        typed = typed_config(to_container(cfg))
        module = agent_cls(to_container(cfg), build_parts(typed, algorithm_class(typed.agent.name)))  # the run's one seeding
        module.wandb_id = saved.get("wandb_id") or uuid.uuid4().hex[:8]
        mode = effective_wandb_mode(cfg.logger.wandb_mode)
        loggers = make_loggers(cfg, run_dir, run_id=module.wandb_id, config=to_container(cfg))
        trainer = build_trainer(cfg, run_dir, loggers)
        if cfg.resume and saved["frames"] >= cfg.trainer.total_frames:
            # a finished run: nothing to train (a fit would collect and train one more batch)
            state = load_checkpoint(cfg.resume, "cpu", "resume")["state_dict"]
            module.load_state_dict(migrate_state_dict(state))
            if console is not None:
                console.print(f"{cfg.resume} already has {saved['frames']:,} of {cfg.trainer.total_frames:,} frames: "
                              "nothing to train")
        else:
            with deferred_interrupt(module), safe_globals():  # Lightning's resume load: weights only, TensorDicts allowed
                trainer.fit(module, ckpt_path=cfg.resume or None, weights_only=True)
    except BaseException as err:
        if created and not (run_dir / "checkpoints" / "last.ckpt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping: no empty run folders
        if isinstance(err, TrainingAborted):
            raise KeyboardInterrupt from None
        if isinstance(err, OSError) and err.errno in DISK_FULL:
            raise _out_of_space(err, run_dir) from err
        raise
    for lg in loggers:
        if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
            if console is not None:
                console.print(f"W&B run ({mode}) in {run_dir / 'wandb'}"
                              + (f"; upload it with: wandb sync {run_dir / 'wandb'}/offline-run-*" if mode == "offline" else ""))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if module.interrupt_requested:
        if console is not None:
            console.print(f"interrupted at {int(module.frames):,} frames; saved {ckpt}\n"
                          f"resume: dcsched train RECIPE resume={ckpt}")
        raise Terminated if module.stop_signal == signal.SIGTERM else KeyboardInterrupt
    if console is not None:
        console.print(f"trained {int(module.frames):,} frames, {int(module.updates):,} updates -> {run_dir}")
    return module, run_dir
