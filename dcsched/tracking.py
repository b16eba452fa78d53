"""Loggers: a CSV logger always, Weights & Biases through Lightning's WandbLogger.

W&B defaults to offline mode (sync later with ``wandb sync runs/<run>/wandb/offline-run-*``);
tests and CI use ``disabled``. No mode may hang or fail for lack of network or API key:
``online`` without an API key is refused up front with a clear message.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcsched.errors import ConfigError
from dcsched.registry import LOGGERS


@LOGGERS.register("csv", "Lightning CSVLogger: metrics.csv under the run folder (always on)")
def make_csv_logger(run_dir: Path, name: str, **_):
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(run_dir), name="csv")  # csv/version_K/metrics.csv; a resume adds a version, never overwrites


def effective_wandb_mode(configured: str) -> str:
    """WANDB_MODE wins over the config's ``logger.wandb_mode`` (read it before W&B starts: an
    offline run rewrites the variable to "dryrun")."""
    return os.environ.get("WANDB_MODE") or configured


@LOGGERS.register("wandb", "Weights & Biases via Lightning's WandbLogger (offline by default, resumable id)")
def make_wandb_logger(run_dir: Path, name: str, mode: str = "offline", project: str = "dcsched",
                      run_id: str | None = None, config: dict | None = None, **_):
    mode = effective_wandb_mode(mode)
    if mode == "disabled":
        return None
    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or Path.home().joinpath(".netrc").exists()):
        raise ConfigError("command line", "logger.wandb_mode", "online needs WANDB_API_KEY (or `wandb login`)",
                          "offline, disabled, online")
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(project=project, name=name, save_dir=str(run_dir), offline=(mode == "offline"),
                       id=run_id, resume="allow" if run_id else None, config=config)


def quiet_libraries() -> None:
    """Keep library chatter (Lightning's hardware lines and tips, TorchRL's INFO lines, W&B's banner)
    out of what dcsched prints; their warnings still show. dcsched prints where a W&B run went."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "torchrl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_SILENT", "true")


def make_loggers(cfg, run_dir: Path, run_id: str | None = None, config: dict | None = None) -> list:
    """The run's loggers, built by their LOGGERS entries: ``csv`` (``logger.csv``) and ``wandb``
    (unless ``logger.wandb_mode`` or WANDB_MODE is ``disabled``)."""
    loggers = []
    if cfg.logger.csv:
        loggers.append(LOGGERS.get("csv")(run_dir, cfg.name))
    wb = LOGGERS.get("wandb")(run_dir, cfg.name, mode=cfg.logger.wandb_mode, project=cfg.logger.project,
                              run_id=run_id, config=config)
    if wb is not None:
        loggers.append(wb)
    return loggers
