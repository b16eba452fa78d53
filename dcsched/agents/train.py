"""`dcsched train RECIPE`: build the agent, fit with Lightning, checkpoint, evaluate on test days."""

from __future__ import annotations

import math
import os
import warnings
import uuid
from datetime import datetime
from pathlib import Path

import torch

from dcsched.config import save_resolved, to_container


def run_dir_for(cfg) -> Path:
    if cfg.resume:
        ckpt = Path(cfg.resume)
        return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(cfg.out_dir) / f"{cfg.name}-s{cfg.seed}-{stamp}"


def build_trainer(cfg, run_dir: Path, loggers, extra_callbacks=()):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dcsched.agents.checkpoint_io import AtomicCheckpointIO

    t = cfg.trainer
    batches_per_epoch = max(1, t.checkpoint_every_batches)
    total_batches = max(1, math.ceil(t.total_frames / t.frames_per_batch))
    epochs = max(1, math.ceil(total_batches / batches_per_epoch))
    ckpt = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="epoch{epoch:03d}", save_last=True,
                           save_top_k=-1 if t.keep_all_checkpoints else 0, every_n_epochs=1,
                           auto_insert_metric_name=False)
    return L.Trainer(
        accelerator=t.accelerator, devices=1, max_epochs=epochs, limit_train_batches=batches_per_epoch,
        logger=loggers or False, callbacks=[ckpt, *extra_callbacks], enable_progress_bar=t.progress,
        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1,
        plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir),
    )


def train_from_config(cfg, console=None, agent_cls=None, evaluate: bool = True, run_dir: Path | None = None):
    """Train per the resolved RunConfig; returns (module, run_dir). Writes runs/<run>/config.yaml,
    csv/metrics.csv, checkpoints/last.ckpt and, after training, eval/ on the test days.

    ``run_dir``: a fixed folder (the experiment layer's); default ``out_dir/<name>-s<seed>-<time>``."""
    from dcsched.registry import AGENTS
    from dcsched.tracking import make_loggers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for pattern in (".*dataloader_iter.*", ".*LeafSpec.*", ".*Consider using tensor.detach.*"):
        warnings.filterwarnings("ignore", message=pattern)
    agent_cls = agent_cls or AGENTS.get(cfg.agent.name)
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    save_resolved(cfg, run_dir)
    module = agent_cls(to_container(cfg))
    wandb_id = None
    if cfg.resume:
        if not Path(cfg.resume).exists():
            from dcsched.errors import ConfigError

            raise ConfigError("command line", "resume", f"checkpoint {cfg.resume} not found")
        wandb_id = torch.load(cfg.resume, map_location="cpu", weights_only=False).get("dcsched", {}).get("wandb_id")
    module.wandb_id = wandb_id or uuid.uuid4().hex[:8]
    loggers = make_loggers(cfg, run_dir, run_id=module.wandb_id, config=to_container(cfg))
    trainer = build_trainer(cfg, run_dir, loggers)
    trainer.fit(module, ckpt_path=cfg.resume or None, weights_only=False)  # our own checkpoint: trusted
    for lg in loggers:
        if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
            lg.experiment.finish()
    if console is not None:
        console.print(f"trained {int(module.frames):,} frames, {int(module.updates):,} updates -> {run_dir}")
    if evaluate and cfg.eval.policies is not None:
        from dcsched.eval.evaluate import evaluate_policies

        ckpt = run_dir / "checkpoints" / "last.ckpt"
        bounds = None
        if cfg.eval.with_bound:
            from dcsched.baselines.lp_bound import bounds_by_date

            bounds = bounds_by_date(cfg.scenario, cfg.eval.days, cfg.eval.max_days)
        evaluate_policies(cfg.scenario, [str(ckpt), *cfg.eval.policies], cfg.eval.days, run_dir / "eval",
                          deterministic=True, seed=cfg.seed, max_days=cfg.eval.max_days, bounds=bounds, console=console)
    return module, run_dir
