"""The shaper interface an off-policy agent calls, and what every shaper shares.

A shaper is an ``nn.Module`` with its own optimisers and its own random generator, so it never
draws from the policy agent's random stream (this is what makes eta = 0 reduce exactly to SAC).
It acts on sampled batches like a transform; the policy agent calls:

- ``annotate(batch)`` on every collected batch: stores the auxiliary reward it proposes for (s, a)
  under ``R_AUX_KEY`` (the reward agent's transitions keep what it proposed);
- ``shape(sample, actor, frames, diagnose)`` once per update: writes the policy agent's reward
  r^E + eta * F to its own key ``("next", SHAPED_REWARD)`` (the sampled r^E is never overwritten;
  the loss module is pointed at the new key with ``set_keys``), runs the shaper's own update on
  the same sample, and returns its metrics. F = 0 until the shaper has trained for
  ``rs_learning_starts`` environment frames, counted from its first update (:meth:`Shaper.active`).
  No autograd graph outlives the call.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
R_AUX_KEY = ("shaper", "r_aux")  # r^A proposed at collection time, [.., 1]
R_AUX_NOW_KEY = ("shaper", "r_aux_now")  # r^A of the current reward agent at update time, [B, 1]
SHAPED_REWARD = "shaped_reward"  # the policy agent's loss reads ("next", SHAPED_REWARD)


def mlp(in_dim: int, out_dim: int, hidden: list[int], act=nn.Mish) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), act()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def squash_log_std(raw: torch.Tensor) -> torch.Tensor:
    """Smooth map of a raw network output onto [LOG_STD_MIN, LOG_STD_MAX] (tanh-rescaled, as in
    DRESS and CleanRL): unlike a clamp it never zeroes the gradient."""
    return LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)


def tanh_gaussian(mu: torch.Tensor, raw_log_std: torch.Tensor, gen: torch.Generator | None,
                  deterministic: bool = False):
    """Sample r = tanh(u), u ~ N(mu, sigma), log sigma = squash_log_std(raw), with log pi(r).
    Shapes [B, 1]; ``deterministic`` gives r = tanh(mu)."""
    log_std = squash_log_std(raw_log_std)
    std = log_std.exp()
    if deterministic:
        u = mu
    else:
        u = mu + std * torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
    r = torch.tanh(u)
    logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)) - torch.log1p(-r.pow(2) + 1e-6)
    return r, logp


def potential_shaping(phi: torch.Tensor, phi_next: torch.Tensor, terminated: torch.Tensor,
                      gamma: float) -> torch.Tensor:
    """F = gamma (1 - terminated) Phi(s') - Phi(s) (Ng, Harada & Russell 1999): adding F to the
    reward leaves the optimal policy unchanged for any state-only potential Phi. A truncated
    (time-limit) transition keeps gamma Phi(s'), since bootstrapping continues there."""
    return gamma * (1.0 - terminated.to(phi.dtype)) * phi_next - phi


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors' flattened values (0 when either is constant)."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return float((a @ b).item() / den) if den > 0 else 0.0


class Shaper(nn.Module):
    """Base class. ``eta`` scales F in the policy agent's critic target."""

    def __init__(self, eta: float, rs_learning_starts: int, seed: int, device: torch.device | str = "cpu"):
        super().__init__()
        self.eta = float(eta)
        self.rs_learning_starts = int(rs_learning_starts)
        # on the training device: torch.randn(..., generator=gen, device=d) needs gen on d
        self.gen = torch.Generator(device=device).manual_seed(int(seed) + 7919)
        # environment frame count at the shaper's first update (-1: not yet updated); in the checkpoint
        self.register_buffer("first_update_frame", torch.full((), -1, dtype=torch.long, device=device))

    def active(self, frames: int) -> bool:
        """Whether F enters the policy agent's target: eta > 0 and the shaper has trained for
        ``rs_learning_starts`` environment frames since its first update. Call once per update
        (the first call records the first update's frame count)."""
        if int(self.first_update_frame) < 0:
            self.first_update_frame.fill_(int(frames))
        return self.eta != 0.0 and int(frames) - int(self.first_update_frame) >= self.rs_learning_starts

    def is_active(self, frames: int) -> bool:
        """:meth:`active` without recording anything (for a caller that did not run the update)."""
        first = int(self.first_update_frame)
        return self.eta != 0.0 and first >= 0 and int(frames) - first >= self.rs_learning_starts

    @torch.no_grad()
    def bonus(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
              terminated: torch.Tensor) -> torch.Tensor:
        """What eta multiplies, for rows that were not part of an update: [M, S], [M, A], [M, S],
        [M, 1] -> [M, 1]. Default: r^A drawn from :meth:`propose`."""
        return self.propose(obs, action)[0]

    def write_shaped(self, sample, bonus: torch.Tensor | None) -> None:
        """("next", SHAPED_REWARD) = r^E + eta * bonus (exactly r^E when bonus is None)."""
        r_env = sample["next", "reward"]
        shaped = r_env.clone() if bonus is None else r_env + self.eta * bonus.detach().to(r_env.dtype)
        sample.set(("next", SHAPED_REWARD), shaped)

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

    def propose(self, obs: torch.Tensor, action: torch.Tensor):
        """(r^A, log pi(r^A)) for obs [B, S], action [B, A]; each [B, 1]."""
        raise NotImplementedError

    @torch.no_grad()
    def annotate(self, batch) -> None:
        """Store the r^A proposed for each collected (s, a) under R_AUX_KEY. batch: [*, ...]."""
        r_aux, _ = self.propose(batch["observation"].reshape(-1, batch["observation"].shape[-1]),
                                batch["action"].reshape(-1, batch["action"].shape[-1]))
        batch.set(R_AUX_KEY, r_aux.reshape(*batch.shape, 1))

    def shape(self, sample, actor, frames: int, diagnose: bool = False,
              next_action: torch.Tensor | None = None) -> dict[str, float]:
        """``next_action`` [B, A]: a' at s' when the caller has it (an on-policy batch); else a' ~ actor(s')."""
        raise NotImplementedError

    def optimizer_state(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_optimizer_state(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
