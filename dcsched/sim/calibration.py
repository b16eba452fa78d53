"""Scenario-level derived quantities, computed (never typed): the capacity property that G_n is
tuned for (MODEL.md section 2) and the revenue scale of the energy-matters regime (section 7)."""

from __future__ import annotations

import numpy as np

from dcsched.data.exogenous import arrival_rate_hourly, hourly_year
from dcsched.sim import physics
from dcsched.sim.params import build_params


def _job_time_and_energy(p, steps: float) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and joules per job at ``steps`` and f_max, from the kernels' formula. [N] each."""
    import torch

    from dcsched.sim.kernels import job_time_and_energy

    p64 = p.to(dtype=torch.float64)
    steps_t = torch.full((p.num_dcs, 1), float(steps), dtype=torch.float64)
    exec_s, energy_j = job_time_and_energy(p64, steps_t, torch.ones(p.num_dcs, dtype=torch.float64))
    return exec_s[:, 0].numpy(), energy_j[:, 0].numpy()


def _exec_s(p, steps: float) -> np.ndarray:
    return _job_time_and_energy(p, steps)[0]


def capacity_report(cfg, steps: float = 30.0) -> dict:
    """Local-only at ``steps`` and full frequency, over the year's hourly expected arrivals:
    per-DC violation share in its peak hour (fluid: 1 - capacity / peak arrivals), and the ratio of
    the three DCs' joint capacity (jobs per slot) to the peak of the total arrivals."""
    p = build_params(cfg)
    rate = arrival_rate_hourly(cfg).sum(-1)  # [8760, N] jobs per slot by origin
    cap_jobs = p.capacity_gpu_s.numpy() / _exec_s(p, steps)  # [N] jobs per slot
    peak = rate.max(axis=0)
    return {
        "exec_s": _exec_s(p, steps).tolist(),  # [N] seconds per job at ``steps`` and f_max
        "capacity_jobs_per_slot": cap_jobs.tolist(),
        "peak_arrivals_per_slot": peak.tolist(),
        "peak_violation_share": np.clip(1.0 - cap_jobs / peak, 0.0, 1.0).tolist(),
        "joint_capacity_over_total_peak": float(cap_jobs.sum() / rate.sum(axis=1).max()),
    }


def energy_revenue_ratio(cfg, steps: float = 30.0) -> dict:
    """Gross energy cost (IT + cooling at the year's hourly temperatures, no renewables or battery)
    of serving the mean load locally at ``steps`` and f_max, priced at the year's mean electricity
    price, against the revenue of that load delivered on time. Both in $ per slot, revenue_scale applied."""
    p = build_params(cfg)
    hourly = hourly_year(cfg)
    mean_jobs = arrival_rate_hourly(cfg).sum(-1).mean(axis=0)  # [N]
    exec_s, job_j = _job_time_and_energy(p, steps)
    busy = mean_jobs * exec_s
    idle_gpu_s = physics.positive_part(p.capacity_gpu_s.numpy() - busy)
    it_kw = physics.it_power_kw(mean_jobs * job_j, idle_gpu_s, p.idle_power_w.numpy(), p.base_power_w.numpy(), p.slot_s)
    pue = physics.pue(hourly["temp_c"], p.pue_base, p.pue_slope_per_c, p.pue_threshold_c)
    facility_kw = it_kw + physics.cooling_kw(it_kw, pue.mean(axis=0))
    energy_usd = float(physics.grid_cost_usd(facility_kw, 0.0, hourly["price_usd_per_mwh"].mean(axis=0),
                                             p.sell_price_factor, p.slot_h).sum())
    q = p.quality.numpy()[:, list(p.steps_grid.numpy()).index(steps)]
    revenue_usd = float((mean_jobs * p.price_usd_per_image.numpy() * q).sum())
    return {"energy_cost_usd_per_slot": energy_usd, "revenue_usd_per_slot": revenue_usd,
            "energy_share_of_revenue": energy_usd / revenue_usd}


def revenue_scale_for_energy_share(cfg, share: float = 0.25) -> float:
    """The factor on every rho that makes gross energy cost ``share`` of revenue (relative to cfg's
    current revenue_scale)."""
    r = energy_revenue_ratio(cfg)
    return float(cfg.revenue_scale * r["energy_share_of_revenue"] / share)
