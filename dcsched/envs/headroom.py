"""The headroom step projection of the hybrid agent (``env.steps_mode: headroom``).

In the default ``absolute`` mode a policy's step component is the denoising-step level itself.
In ``headroom`` mode it is a *margin*: the number of levels below the highest level that the
serving DC can complete this slot with its jobs on time. The projection is one batched torch
function of the slot (no solver, no loop over environments), so a learned policy handles time
(routing ahead of peaks, when to spend energy) while the slot's capacity arithmetic that an
absolute step choice must otherwise learn is done exactly:

1. the routed jobs of each serving DC n and class k, after down links are routed back
   (:func:`dcsched.sim.kernels.route_over_links`): J[n, k];
2. a deadline cap per (n, k): the highest level whose execution time plus the largest transfer
   delay of an origin that sends class-k jobs to n fits the class deadline (level 0 if none);
3. a capacity level per n: the highest uniform level L such that
   sum_k J[n, k] * exec_s(min(L, cap[n, k]), f_n) <= capacity_n * up_share_n - backlog_n
   (level 0 if none: the backlog takes the overflow as in the kernels);
4. the chosen level: max(0, min(L, cap[n, k]) - margin[n, k]).

A margin of 0 everywhere "fills the capacity" at the chosen frequency: with transfers and
frequency fixed, that is the revenue-greedy step choice when quality pays more than the energy
it costs (paper3); a positive margin trades quality for energy (paper3_energy) or for slack.
"""

from __future__ import annotations

import dataclasses

import torch

from dcsched.sim.kernels import Decision, job_time_and_energy, route_over_links
from dcsched.sim.params import SimParams

STEPS_MODES = ("absolute", "headroom")
WORK_TOLERANCE_GPU_S = 1e-9  # a level whose work equals the free capacity still fits


def exec_s_all_levels(p: SimParams, freq_idx: torch.Tensor) -> torch.Tensor:
    """Execution time of one job at every step level (the kernels' own job time).
    freq_idx [*, N] -> [*, N, S] seconds."""
    steps = p.steps_grid.expand(*freq_idx.shape, len(p.steps_grid))
    exec_s, _ = job_time_and_energy(p, steps, p.freq_levels[freq_idx])
    return exec_s


def deadline_cap_levels(p: SimParams, jobs: torch.Tensor, exec_all: torch.Tensor) -> torch.Tensor:
    """Highest level per (serving DC, class) at which every routed job meets its deadline.

    jobs [*, i, n, k] routed jobs, exec_all [*, n, S] -> [*, n, k] long (0 when even level 0 is late).
    """
    delay = p.transfer_delay_s.to(jobs.dtype)  # [i, n]
    worst_delay = torch.where(jobs > 0, delay.unsqueeze(-1), torch.zeros_like(jobs)).amax(-3)  # [*, n, k]
    fits = exec_all.unsqueeze(-2) + worst_delay.unsqueeze(-1) <= p.deadline_s.unsqueeze(-1)  # [*, n, k, S]
    return (fits.sum(-1) - 1).clamp(min=0)


def capacity_levels(p: SimParams, jobs_n: torch.Tensor, exec_all: torch.Tensor, cap: torch.Tensor,
                    free_gpu_s: torch.Tensor) -> torch.Tensor:
    """Highest uniform level L per serving DC whose work fits the free capacity.

    jobs_n [*, n, k], exec_all [*, n, S], cap [*, n, k] (deadline caps), free_gpu_s [*, n]
    -> [*, n] long (0 when even level 0 does not fit).
    """
    S = exec_all.shape[-1]
    levels = torch.arange(S, device=cap.device)
    per_class = torch.minimum(levels, cap.unsqueeze(-1))  # [*, n, k, S]: min(L, cap[n, k])
    exec_nk = torch.gather(exec_all.unsqueeze(-2).expand(*per_class.shape), -1, per_class)  # [*, n, k, S]
    work = (jobs_n.unsqueeze(-1) * exec_nk).sum(-2)  # [*, n, S]
    fits = work <= free_gpu_s.unsqueeze(-1) + WORK_TOLERANCE_GPU_S
    return (fits.sum(-1) - 1).clamp(min=0)  # work grows with L, so the fitting levels are a prefix


def project_steps(p: SimParams, d: Decision, margin: torch.Tensor, arrivals: torch.Tensor,
                  backlog_work_gpu_s: torch.Tensor, exo: dict[str, torch.Tensor]) -> Decision:
    """The decision with ``steps_idx`` = the projected levels for ``margin`` [*, N, K] (long, >= 0).

    arrivals [*, N, K] jobs by origin, backlog_work_gpu_s [*, N]; exo: this slot's entries
    (``capacity_frac`` and ``link_up`` when a fault stress is on). Transfers, frequency and the
    battery command are returned unchanged (the kernels route down links again, identically).
    """
    transfer = route_over_links(d.transfer, exo.get("link_up"))
    jobs = transfer * arrivals.unsqueeze(-2)  # [*, i, n, k]
    exec_all = exec_s_all_levels(p, d.freq_idx)
    cap = deadline_cap_levels(p, jobs, exec_all)
    capacity = p.capacity_gpu_s
    if exo.get("capacity_frac") is not None:
        capacity = capacity * exo["capacity_frac"]
    level = capacity_levels(p, jobs.sum(-3), exec_all, cap, capacity - backlog_work_gpu_s)
    steps_idx = (torch.minimum(level.unsqueeze(-1), cap) - margin.long()).clamp(min=0)
    return dataclasses.replace(d, steps_idx=steps_idx)
