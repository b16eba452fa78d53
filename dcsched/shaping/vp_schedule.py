"""Variance-preserving noise schedule of the diffusion reward agent (MODEL.md section 8)."""

from __future__ import annotations

import math

import torch


def vp_betas(num_steps: int, beta_min: float = 0.1, beta_max: float = 10.0, dtype=torch.float32) -> torch.Tensor:
    """beta_i = 1 - exp(-b_min / W - (b_max - b_min)(2i - 1) / (2 W^2)), i = 1..W. Shape [W]."""
    W = num_steps
    i = torch.arange(1, W + 1, dtype=torch.float64)
    betas = 1.0 - torch.exp(-beta_min / W - (beta_max - beta_min) * (2 * i - 1) / (2 * W**2))
    return betas.to(dtype)


class DiffusionSchedule(torch.nn.Module):
    """Buffers of the DDPM posterior for a VP schedule (index 0 is step i = 1)."""

    def __init__(self, num_steps: int, beta_min: float = 0.1, beta_max: float = 10.0):
        super().__init__()
        betas = vp_betas(num_steps, beta_min, beta_max, torch.float64)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        self.num_steps = num_steps
        for name, value in dict(
            betas=betas, alphas=alphas, alphas_cumprod=abar, alphas_cumprod_prev=abar_prev,
            sqrt_recip_abar=torch.sqrt(1.0 / abar), sqrt_recipm1_abar=torch.sqrt(1.0 / abar - 1.0),
            post_mean_coef_x0=betas * torch.sqrt(abar_prev) / (1.0 - abar),
            post_mean_coef_xt=(1.0 - abar_prev) * torch.sqrt(alphas) / (1.0 - abar),
            post_var=betas * (1.0 - abar_prev) / (1.0 - abar),
        ).items():
            self.register_buffer(name, value.float())
        self.register_buffer("post_log_var", torch.log(self.post_var.clamp(min=1e-20)))


def sinusoidal_embedding(step: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer diffusion steps. step [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=step.device, dtype=torch.float32) / max(half - 1, 1))
    args = step.float().unsqueeze(-1) * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
