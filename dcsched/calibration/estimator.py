"""QualityEstimator: a LightningModule that, for each (steps, seed) of a grid, generates images with
a diffusion pipeline (``predict_step``), scores them with the configured metrics and measures the
wall time (and, on NVIDIA GPUs, the energy from NVML's counter) per denoising step."""

from __future__ import annotations

import platform
import time
from typing import Callable

import lightning as L
import torch


class NvmlEnergy:
    """Energy counter of the current CUDA device in joules (None when NVML is unavailable)."""

    def __init__(self, device: torch.device):
        self.handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            self._read = lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0  # mJ -> J
            self._read()
        except Exception:  # NVML missing or counter unsupported: energy is reported as None
            self.handle = None

    def read(self) -> float | None:
        return self._read() if self.handle is not None else None


def hardware_info(device: torch.device) -> dict:
    info = {"device": str(device), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class QualityEstimator(L.LightningModule):
    """``generate(steps, seed, device) -> (images, context)``; ``metrics``: name -> callable(images, context)."""

    def __init__(self, generate: Callable, metrics: dict[str, Callable], weights: dict[str, float],
                 min_measure_s: float = 0.0):
        super().__init__()
        self.generate = generate
        self.metrics = metrics
        self.weights = weights
        self.min_measure_s = float(min_measure_s)
        self._energy: NvmlEnergy | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def predict_step(self, batch, batch_idx=0):
        from dcsched.quality.metrics import combine

        steps, seed = int(batch["steps"]), int(batch["seed"])
        if self._energy is None:
            self._energy = NvmlEnergy(self.device)
            if self.device.type == "cuda":  # one unmeasured run: kernels loaded, clocks up
                self.generate(steps, seed, self.device)
        self._sync()
        e0 = self._energy.read()
        t0 = time.perf_counter()
        images, context = self.generate(steps, seed, self.device)
        self._sync()
        repeats = 1
        while time.perf_counter() - t0 < self.min_measure_s:  # same inputs again: a longer, averaged reading
            self.generate(steps, seed, self.device)
            self._sync()
            repeats += 1
        wall = (time.perf_counter() - t0) / repeats
        e1 = self._energy.read()
        images = images.detach().float().cpu()
        values = {name: m(images, context) for name, m in self.metrics.items()}
        return {
            "steps": steps, "seed": seed, "num_images": int(images.shape[0]),
            "metrics": {k: v.raw for k, v in values.items()},
            "metric_quality": {k: v.quality for k, v in values.items()},
            "clipped": [k for k, v in values.items() if v.clipped],
            "quality": combine(values, self.weights),
            "time_s": wall, "time_per_step_s": wall / steps, "repeats": repeats,
            "energy_per_step_j": (e1 - e0) / (repeats * steps) if e0 is not None and e1 is not None else None,
        }
