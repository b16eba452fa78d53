"""Action encodings and the one decoder (MODEL.md section 4).

Continuous (SAC/TD3): a box [-1, 1]^D laid out as
    [transfer logits (N * N * K) | steps (N * K) | frequency (N) | battery (N, learned energy only)].
Transfer logits are scaled and soft-maxed over the destination for each (origin, class);
steps and frequency are rounded onto their grids: level = round((a + 1) / 2 * (L - 1)).

Factorised discrete: one categorical per component, laid out as
    [destination per (origin, class, chunk) (N choices each) | step level per (DC, class) |
     frequency level per DC | battery level per DC (learned energy only, BATTERY_LEVELS)].

With batch work (``p.has_batch``, MODEL.md section 11) both encodings end with its components:
continuous [batch transfer logits (N * N, softmax over the destination per origin) | batch step
level per DC (N) | share of the queue to serve per DC (N, (a + 1) / 2)]; discrete [destination
per origin (N) | batch step level per DC (N) | serve share level per DC (SERVE_LEVELS)].
With ``chunks`` = Q (``env.transfer_chunks``, default 1) each (origin, class) row is split into
Q equal chunks, each sent to its own destination, so the row's shares are multiples of 1/Q
(a simplex by construction); Q = 1 sends the row whole to one DC.
"""

from __future__ import annotations

import torch

from dcsched.sim.kernels import Decision, default_batch_decision
from dcsched.sim.params import SimParams

BATTERY_LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)
SERVE_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)  # discrete share of its batch queue a DC serves
ACTION_TOLERANCE = 1e-6


def continuous_dim(p: SimParams) -> int:
    N, K = p.num_dcs, p.num_classes
    return N * N * K + N * K + N + (N if p.learned_energy else 0) + (N * N + 2 * N if p.has_batch else 0)


def _check_chunks(chunks: int) -> int:
    if int(chunks) != chunks or chunks < 1:
        raise ValueError(f"transfer chunks must be an integer >= 1, got {chunks}")
    return int(chunks)


def discrete_nvec(p: SimParams, chunks: int = 1) -> list[int]:
    N, K = p.num_dcs, p.num_classes
    S, F = len(p.steps_grid), len(p.freq_levels)
    nvec = [N] * (N * K * _check_chunks(chunks)) + [S] * (N * K) + [F] * N
    if p.learned_energy:
        nvec += [len(BATTERY_LEVELS)] * N
    if p.has_batch:
        nvec += [N] * N + [S] * N + [len(SERVE_LEVELS)] * N
    return nvec


def level_from_unit(a: torch.Tensor, levels: int) -> torch.Tensor:
    """Map a in [-1, 1] to an integer level in [0, levels - 1] by rounding."""
    return torch.round((a + 1.0) * 0.5 * (levels - 1)).clamp(0, levels - 1).long()


def unit_from_level(level: torch.Tensor, levels: int) -> torch.Tensor:
    """Inverse of :func:`level_from_unit`: the centre of each level's interval."""
    if levels == 1:
        return torch.zeros_like(level, dtype=torch.float32)
    return level.float() / (levels - 1) * 2.0 - 1.0


def _local_transfer(p: SimParams, batch: tuple[int, ...], dtype, device) -> torch.Tensor:
    N, K = p.num_dcs, p.num_classes
    eye = torch.eye(N, dtype=dtype, device=device).unsqueeze(-1).expand(N, N, K)
    return eye.expand(*batch, N, N, K).clone()


def shares_from_logits(logits: torch.Tensor, logit_scale: float, min_share: float, dim: int) -> torch.Tensor:
    """softmax(scale * logits) over ``dim``, shares below ``min_share`` set to zero and the rest
    renormalised (so that a one-hot intent is exact)."""
    shares = torch.softmax(logits * logit_scale, dim=dim)
    if min_share > 0:
        shares = torch.where(shares < min_share, torch.zeros_like(shares), shares)
        shares = shares / shares.sum(dim=dim, keepdim=True)
    return shares


def logits_from_shares(shares: torch.Tensor, logit_scale: float, dim: int) -> torch.Tensor:
    """Logits in [-1, 1] that :func:`shares_from_logits` maps back to ``shares`` (log-ratios to
    the largest share over ``dim``; exact for shares of at least exp(-2 * scale) of the largest)."""
    x = shares.to(torch.float64)
    x_max = x.amax(dim=dim, keepdim=True).clamp(min=1e-300)
    return (1.0 + torch.log(x.clamp(min=1e-300) / x_max) / logit_scale).clamp(-1.0, 1.0)


def decode_continuous(p: SimParams, action: torch.Tensor, logit_scale: float, min_share: float = 1e-3) -> Decision:
    """action [*, D] in [-1, 1] -> Decision. Raises if the action leaves the box.

    Transfer shares below ``min_share`` are set to zero and the row renormalised, so that a
    one-hot intent (e.g. "keep everything local") is exact rather than 0.9999.
    """
    N, K = p.num_dcs, p.num_classes
    S, F = len(p.steps_grid), len(p.freq_levels)
    if action.shape[-1] != continuous_dim(p):
        raise ValueError(f"continuous action has {action.shape[-1]} entries, expected {continuous_dim(p)}")
    if action.abs().max() > 1.0 + ACTION_TOLERANCE:
        raise ValueError(f"continuous action outside [-1, 1] (max |a| = {action.abs().max().item():.4g})")
    batch = action.shape[:-1]
    a = action.to(p.capacity_gpu_s.dtype)
    o = 0
    logits = a[..., o : o + N * N * K].reshape(*batch, N, N, K)
    o += N * N * K
    if p.allow_transfer:
        transfer = shares_from_logits(logits, logit_scale, min_share, dim=-2)
    else:
        transfer = _local_transfer(p, batch, a.dtype, a.device)
    steps_idx = level_from_unit(a[..., o : o + N * K], S).reshape(*batch, N, K)
    o += N * K
    freq_idx = level_from_unit(a[..., o : o + N], F)
    o += N
    battery = None
    if p.learned_energy:
        battery = a[..., o : o + N].clamp(-1.0, 1.0)
        o += N
    d = Decision(transfer=transfer, steps_idx=steps_idx, freq_idx=freq_idx, battery_frac=battery)
    if p.has_batch:
        b_logits = a[..., o : o + N * N].reshape(*batch, N, N)
        o += N * N
        if p.allow_transfer:
            b_transfer = shares_from_logits(b_logits, logit_scale, min_share, dim=-1)
        else:
            b_transfer = _local_transfer(p, batch, a.dtype, a.device)[..., 0]
        d.batch_transfer = b_transfer
        d.batch_steps_idx = level_from_unit(a[..., o : o + N], S)
        d.batch_serve_frac = ((a[..., o + N : o + 2 * N] + 1.0) * 0.5).clamp(0.0, 1.0)
    return d


def largest_remainder(shares: torch.Tensor, chunks: int, dim: int = -1) -> torch.Tensor:
    """Counts (int64, summing to ``chunks`` along ``dim``) nearest to ``shares`` (summing to 1
    along ``dim``): floor(share * Q) each, the remaining chunks to the largest remainders (ties to
    the lower index). Q = 1 gives the largest share's index."""
    Q = _check_chunks(chunks)
    x = shares.to(torch.float64) * Q
    base = torch.floor(x + 1e-9).clamp(min=0)
    deficit = (Q - base.sum(dim=dim, keepdim=True)).clamp(min=0)
    order = torch.argsort(-(x - base), dim=dim, stable=True)
    rank = torch.argsort(order, dim=dim, stable=True)  # position of each entry in the remainder order
    return (base + (rank < deficit).to(base.dtype)).long()


def quantise_shares(transfer: torch.Tensor, chunks: int) -> torch.Tensor:
    """Chunk counts [*, i, n, k] (summing to ``chunks`` over n) nearest to the transfer shares
    [*, i, n, k] (:func:`largest_remainder` over the destination)."""
    return largest_remainder(transfer, chunks, dim=-2)


def chunk_levels(counts: torch.Tensor) -> torch.Tensor:
    """Counts [*, L] of Q chunks over L levels -> each chunk's level [*, Q], in increasing order."""
    Q = int(counts.sum(-1).max()) if counts.numel() else 0
    edges = torch.cumsum(counts, dim=-1).contiguous()
    j = torch.arange(Q, device=counts.device).expand(*counts.shape[:-1], Q).contiguous()
    return torch.searchsorted(edges, j, right=True)


def _dest_from_counts(counts: torch.Tensor, chunks: int) -> torch.Tensor:
    """Chunk counts [*, i, n, k] -> each chunk's destination [*, i * k * Q] (origin, class, chunk order)."""
    dest = chunk_levels(counts.movedim(-2, -1))  # [*, i, k, Q]
    return dest.reshape(*counts.shape[:-3], -1)


def decode_discrete(p: SimParams, action: torch.Tensor, chunks: int = 1) -> Decision:
    """action [*, len(nvec)] integer levels -> Decision."""
    N, K = p.num_dcs, p.num_classes
    Q = _check_chunks(chunks)
    nvec = torch.as_tensor(discrete_nvec(p, Q), device=action.device)
    if action.shape[-1] != len(nvec):
        raise ValueError(f"discrete action has {action.shape[-1]} entries, expected {len(nvec)}")
    if (action < 0).any() or (action >= nvec).any():
        raise ValueError("discrete action level outside its range")
    batch = action.shape[:-1]
    a = action.long()
    o = 0
    dest = a[..., o : o + N * K * Q].reshape(*batch, N, K, Q)
    o += N * K * Q
    dtype = p.capacity_gpu_s.dtype
    if p.allow_transfer:
        counts = torch.nn.functional.one_hot(dest, N).sum(dim=-2)  # [*, i, k, n]
        transfer = (counts.to(dtype) / Q).transpose(-1, -2)  # [*, i, n, k]
    else:
        transfer = _local_transfer(p, batch, dtype, action.device)
    steps_idx = a[..., o : o + N * K].reshape(*batch, N, K)
    o += N * K
    freq_idx = a[..., o : o + N]
    o += N
    battery = None
    if p.learned_energy:
        levels = torch.as_tensor(BATTERY_LEVELS, dtype=dtype, device=action.device)
        battery = levels[a[..., o : o + N]]
        o += N
    d = Decision(transfer=transfer, steps_idx=steps_idx, freq_idx=freq_idx, battery_frac=battery)
    if p.has_batch:
        dest = a[..., o : o + N] if p.allow_transfer else torch.arange(N, device=action.device).expand(*batch, N)
        d.batch_transfer = torch.nn.functional.one_hot(dest, N).to(dtype)  # [*, i, n]
        d.batch_steps_idx = a[..., o + N : o + 2 * N]
        serve = torch.as_tensor(SERVE_LEVELS, dtype=dtype, device=action.device)
        d.batch_serve_frac = serve[a[..., o + 2 * N : o + 3 * N]]
    return d


def encode_continuous(p: SimParams, d: Decision, logit_scale: float) -> torch.Tensor:
    """A continuous action that decodes to ``d``. Transfer shares are encoded as log-ratios to the
    largest share of their row, so softmax(scale * logits) gives them back exactly when every share
    is at least exp(-2 * scale) of the largest (smaller shares become zero in the decoder)."""
    N, K = p.num_dcs, p.num_classes
    S, F = len(p.steps_grid), len(p.freq_levels)
    batch = d.freq_idx.shape[:-1]
    logits = logits_from_shares(d.transfer, logit_scale, dim=-2).reshape(*batch, N * N * K)
    parts = [logits, unit_from_level(d.steps_idx, S).reshape(*batch, N * K), unit_from_level(d.freq_idx, F)]
    if p.learned_energy:
        parts.append(d.battery_frac if d.battery_frac is not None else torch.zeros(*batch, N))
    if p.has_batch:
        d = default_batch_decision(p, d)
        b_logits = logits_from_shares(d.batch_transfer, logit_scale, dim=-1)
        parts += [b_logits.reshape(*batch, N * N), unit_from_level(d.batch_steps_idx, S),
                  d.batch_serve_frac.to(torch.float64) * 2.0 - 1.0]
    return torch.cat([x.to(torch.float32) for x in parts], dim=-1)


def encode_discrete(p: SimParams, d: Decision, chunks: int = 1) -> torch.Tensor:
    """A discrete action that decodes to ``d`` with its transfer shares quantised to multiples of
    1/``chunks`` (:func:`quantise_shares`; exact when they already are)."""
    N, K = p.num_dcs, p.num_classes
    batch = d.freq_idx.shape[:-1]
    dest = _dest_from_counts(quantise_shares(d.transfer, chunks), chunks)
    parts = [dest, d.steps_idx.reshape(*batch, N * K), d.freq_idx]
    if p.learned_energy:
        levels = torch.as_tensor(BATTERY_LEVELS, dtype=torch.float32, device=d.freq_idx.device)
        frac = d.battery_frac if d.battery_frac is not None else torch.zeros(*batch, N, device=d.freq_idx.device)
        parts.append((frac.unsqueeze(-1).float() - levels).abs().argmin(-1))
    if p.has_batch:
        d = default_batch_decision(p, d)
        serve = torch.as_tensor(SERVE_LEVELS, dtype=torch.float64, device=d.freq_idx.device)
        parts += [d.batch_transfer.argmax(-1), d.batch_steps_idx,
                  (d.batch_serve_frac.unsqueeze(-1).double() - serve).abs().argmin(-1)]
    return torch.cat([x.long() for x in parts], dim=-1)
