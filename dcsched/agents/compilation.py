"""The ``trainer.compile`` switch: ``torch.compile`` of an agent's loss module.

The compiled callable wraps the loss module (its forward and, through AOTAutograd, its backward);
it is kept beside the module, not registered as a child, so a checkpoint has the same keys with
the switch on or off and a run may resume with either. Compiled and eager losses agree to float
rounding, not bit for bit: fused kernels reorder float operations.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn



def compiled_loss(loss: nn.Module, enabled: bool, mode: str = "default") -> Callable:
    """``loss`` itself unless ``enabled``; else ``torch.compile(loss, mode=mode)`` (compiled at its
    first call; on a CPU this needs a C++ compiler, which inductor looks up)."""
    if not enabled:
        return loss
    return torch.compile(loss, mode=mode)
