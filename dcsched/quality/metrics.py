"""Quality metrics, registered under kind "quality_metric". Each maps generated images (and
their prompts or labels) to a raw value and, with its references, to a quality in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dcsched.registry import QUALITY_METRICS


@dataclass
class MetricValue:
    raw: float
    quality: float  # normalised: 0 = the bad reference, 1 = the good reference (clipped, see `clipped`)
    clipped: bool


def normalise(raw: float, bad: float, good: float) -> MetricValue:
    q = (raw - bad) / (good - bad) if good != bad else 1.0
    return MetricValue(raw, float(min(max(q, 0.0), 1.0)), bool(q < 0.0 or q > 1.0))


class _DigitsMetric:
    """A digit-classifier metric normalised between Gaussian noise (0) and real digits (1)."""

    def __init__(self, reference, noise_images: torch.Tensor, real_images: torch.Tensor):
        self.ref = reference
        self.bad = self.raw(noise_images)
        self.good = self.raw(real_images)

    def raw(self, images: torch.Tensor) -> float:
        raise NotImplementedError

    def __call__(self, images, context=None) -> MetricValue:
        return normalise(self.raw(images), self.bad, self.good)

    def references(self) -> dict:
        return {"noise": self.bad, "real": self.good}


@QUALITY_METRICS.register("digits_fd", "Fréchet distance on a digit classifier's features vs held-out digits (lower is better)")
class DigitsFD(_DigitsMetric):
    def raw(self, images):
        return self.ref.fd(images)


@QUALITY_METRICS.register("digits_is", "Inception-score analogue from the digit classifier (higher is better, max 10)")
class DigitsIS(_DigitsMetric):
    def raw(self, images):
        return self.ref.inception(images)


def combine(values: dict[str, MetricValue], weights: dict[str, float]) -> float:
    """The paper's weighted mix of normalised metrics."""
    total = sum(weights.values())
    return float(sum(weights[k] * values[k].quality for k in weights) / total)


def noise_like(images: torch.Tensor, seed: int = 12345) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(images.shape, generator=g).clamp(-1, 1)


__all__ = ["MetricValue", "normalise", "combine", "DigitsFD", "DigitsIS", "noise_like"]
