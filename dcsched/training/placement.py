"""One training device per run, and a loud check that everything is on it.

The env, the networks, the loss (and its target networks), the replay buffer's storage and the
shaper (its networks and its random generator) share one device: ``env.device``. Lightning's
``trainer.accelerator`` must agree with it (``gpu`` with ``cuda``, ``cpu`` with ``cpu``; ``auto``
follows ``env.device``). A mixed placement (learner on the GPU, env on the CPU) is refused rather
than half-supported: on a GPU the batched env itself runs 15x faster than on the CPU, so there is
nothing to gain from splitting them.
"""

from __future__ import annotations

import torch
from torch import nn

from dcsched.errors import ConfigError, DcschedError

ACCELERATORS = ("cpu", "gpu", "auto")


class DevicePlacementError(DcschedError):
    """A tensor of a training run is not on the run's device."""


def resolve_device(env_device: str, accelerator: str, source: str = "recipe") -> torch.device:
    """The run's device from ``env.device`` and ``trainer.accelerator``; a clear error when they
    disagree or CUDA is asked for on a machine without it. ``cuda`` is normalised to ``cuda:<index>``
    so that device comparisons inside TorchRL do not see two devices."""
    try:
        device = torch.device(env_device)
    except RuntimeError as err:
        raise ConfigError(source, "env.device", f"'{env_device}' is not a torch device", "cpu, cuda, cuda:N") from err
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(source, "env.device", f"'{env_device}' is not supported", "cpu, cuda, cuda:N")
    if accelerator not in ACCELERATORS:
        raise ConfigError(source, "trainer.accelerator", f"'{accelerator}' is not allowed", ", ".join(ACCELERATORS))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(source, "env.device", f"'{env_device}' asked for, but torch {torch.__version__} "
                              "sees no CUDA device on this machine", "cpu")
        if accelerator == "cpu":
            raise ConfigError(source, "trainer.accelerator",
                              f"'cpu' with env.device={env_device}: the learner and the env share one device",
                              "gpu or auto (or env.device=cpu)")
        return torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
    if accelerator == "gpu":
        raise ConfigError(source, "env.device",
                          "'cpu' with trainer.accelerator=gpu: the learner and the env share one device",
                          "cuda (or trainer.accelerator=cpu)")
    return device


def lightning_accelerator(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def misplaced_tensors(named: dict[str, object], device: torch.device) -> list[str]:
    """Names (with their device) of every tensor, parameter, buffer or generator in ``named`` that
    is not on ``device``. Values may be modules, tensors, generators or (nested) dicts of them."""
    device = torch.device(device)
    bad: list[str] = []

    def same(d: torch.device) -> bool:
        return d.type == device.type and (device.type == "cpu" or (d.index or 0) == (device.index or 0))

    def visit(prefix: str, obj) -> None:
        if isinstance(obj, nn.Module):
            for n, t in [*obj.named_parameters(), *obj.named_buffers()]:
                if not same(t.device):
                    bad.append(f"{prefix}.{n} on {t.device}")
        elif isinstance(obj, torch.Tensor):
            if not same(obj.device):
                bad.append(f"{prefix} on {obj.device}")
        elif isinstance(obj, torch.Generator):
            if not same(obj.device):
                bad.append(f"{prefix} (random generator) on {obj.device}")
        elif isinstance(obj, dict):
            for k, v in obj.items():
                visit(f"{prefix}.{k}" if prefix else str(k), v)

    for name, obj in named.items():
        visit(name, obj)
    return bad


def check_placement(named: dict[str, object], device: torch.device, where: str) -> None:
    """Raise :class:`DevicePlacementError` listing what is not on ``device``."""
    bad = misplaced_tensors(named, device)
    if bad:
        shown = "; ".join(bad[:8]) + (f"; and {len(bad) - 8} more" if len(bad) > 8 else "")
        raise DevicePlacementError(f"{where}: expected everything on {device}, found {shown}")
