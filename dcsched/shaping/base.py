"""The shaper interface an off-policy agent calls, and the reward agent's own SAC.

A shaper is an ``nn.Module`` with its own optimisers and its own random generator, so it never
draws from the policy agent's random stream (this is what makes eta = 0 reduce exactly to SAC).
The policy agent calls:

- ``annotate(batch)`` on every collected batch: stores the auxiliary reward the reward agent
  proposes for (s, a) under ``("shaper", "r_aux")`` (its transitions keep what it proposed);
- ``shaped_reward(sample, actor, frames)`` per update: r^E + eta * r^A(s, a), r^A recomputed per
  sample from the current reward agent, shape [B, 1]; r^A = 0 before ``rs_learning_starts`` frames;
- ``update(sample, actor)`` per update: one SAC step of the reward agent on the environment reward.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, out_dim: int, hidden: list[int], act=nn.Mish) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), act()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def tanh_gaussian(mu: torch.Tensor, log_std: torch.Tensor, gen: torch.Generator | None, deterministic: bool = False):
    """Sample r = tanh(u), u ~ N(mu, sigma), with its log-probability. Shapes [B, 1]."""
    log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = log_std.exp()
    if deterministic:
        u = mu
    else:
        u = mu + std * torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
    r = torch.tanh(u)
    logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)) - torch.log1p(-r.pow(2) + 1e-6)
    return r, logp


class Shaper(nn.Module):
    """Base class. ``eta`` scales the auxiliary reward in the policy agent's critic target."""

    def __init__(self, eta: float, rs_learning_starts: int, seed: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.eta = float(eta)
        self.rs_learning_starts = int(rs_learning_starts)
        # on the training device: torch.randn(..., generator=gen, device=d) needs gen on d
        self.gen = torch.Generator(device=device).manual_seed(int(seed) + 7919)

    def _forked_devices(self) -> list[int]:
        """CUDA devices whose random state :meth:`own_rng` must save and restore."""
        return [self.gen.device.index or 0] if self.gen.device.type == "cuda" else []

    @contextlib.contextmanager
    def own_rng(self):
        """Run code that uses the global RNG (e.g. the policy's sampler) without touching the
        policy agent's stream: the global state is saved, reseeded from this shaper's generator
        and restored afterwards."""
        with torch.random.fork_rng(devices=self._forked_devices()):
            # manual_seed reseeds every CUDA device too: the fork restores the training device's
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self.gen, device=self.gen.device)))
            yield

    def annotate(self, batch) -> None:
        raise NotImplementedError

    def shaped_reward(self, sample, actor, frames: int) -> torch.Tensor:
        raise NotImplementedError

    def update(self, sample, actor) -> dict[str, float]:
        raise NotImplementedError

    def optimizer_state(self) -> dict:
        return {}

    def load_optimizer_state(self, state: dict) -> None:
        pass
