"""Lightning CheckpointIO that writes atomically (tmp file + rename): Ctrl-C never leaves a
half-written .ckpt."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dcsched.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        atomic_write(Path(path), lambda p: torch.save(checkpoint, p))
