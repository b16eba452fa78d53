"""The one parameter object of a scenario, as tensors. Built once from the validated config;
the kernels, the environment and the LP bound all read their coefficients from here.

Shapes: N data centres, K job classes (listed by increasing deadline: EDF order), S step levels, F
frequency levels. Units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from dcsched.data.regions import REGIONS
from dcsched.data.traces import load_transfer_price_usd_per_gb
from dcsched.quality.curves import default_artifact_path, quality_on_grid


@dataclass
class SimParams:
    slot_s: float
    slots_per_day: int
    num_dcs: int
    num_classes: int
    # GPUs and jobs [N]
    num_gpus: torch.Tensor
    capacity_gpu_s: torch.Tensor  # G_n * slot_s
    backlog_cap_gpu_s: torch.Tensor  # one slot of capacity
    tau_step_s: torch.Tensor
    tau_fixed_s: torch.Tensor
    energy_fixed_j: torch.Tensor
    idle_power_w: torch.Tensor
    busy_power_w: torch.Tensor  # energy_step_j / tau_step_s, at f_max
    base_power_w: torch.Tensor  # server base power
    dvfs_delta: float
    steps_grid: torch.Tensor  # [S]
    freq_levels: torch.Tensor  # [F], fraction of f_max
    quality: torch.Tensor  # [N, S] Q_{m_n}(steps_grid)
    # prices and penalties
    price_usd_per_image: torch.Tensor  # [N] rho_i, revenue_scale applied
    late_penalty_usd: torch.Tensor  # [N, K] psi_{i,k}
    drop_penalty_usd: torch.Tensor  # [N] psi_drop,i
    deadline_s: torch.Tensor  # [K]
    transfer_cost_usd_per_job: torch.Tensor  # [N, N] origin -> destination, zero diagonal
    transfer_delay_s: torch.Tensor  # [N, N]
    allow_transfer: bool
    u_scale_usd: float  # mean-load revenue per slot at full quality
    # energy [N] and scalars
    pue_base: float
    pue_slope_per_c: float
    pue_threshold_c: float
    pv_kwp: torch.Tensor
    wind_kw: torch.Tensor
    battery_kwh: torch.Tensor
    battery_kw: torch.Tensor
    eta_charge: float
    eta_discharge: float
    soc_min: float
    soc_max: float
    soc_init: float
    degradation_usd_per_kwh: float
    carbon_price_usd_per_kg: float  # charged on grid purchases' carbon (energy.carbon_price_usd_per_t / 1000)
    sell_price_factor: float
    learned_energy: bool
    curtail_at_negative_price: bool
    # deferrable batch work (MODEL.md section 11); batch_share 0: none, the other fields unused
    batch_share: float = 0.0
    batch_deadline_slots: int = 0  # D_b: served at an age (slots since arrival) below this is on time
    batch_horizon_slots: int = 0  # unserved at this age: dropped; also the queue's age axis
    batch_obs_buckets: int = 0
    batch_price_usd_per_image: torch.Tensor | None = None  # [N] rho^b_i by origin
    batch_late_penalty_usd: torch.Tensor | None = None  # [N] psi_b,i by origin

    @property
    def has_batch(self) -> bool:
        return self.batch_share > 0

    @property
    def slot_h(self) -> float:
        return self.slot_s / 3600.0

    def to(self, device=None, dtype=None) -> "SimParams":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):  # (None fields stay None)
                v = v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else v.dtype)
            out[f.name] = v
        return SimParams(**out)


def full_load_kw(cfg_dc, energy_cfg) -> float:
    """P_full: all GPUs busy at f_max, plus server base power, times the full-load PUE. kW."""
    busy_w = cfg_dc.energy_step_j / cfg_dc.tau_step_s
    base_w = cfg_dc.num_gpus / 8.0 * energy_cfg.base_power_w_per_8_gpus
    return (cfg_dc.num_gpus * busy_w + base_w) * energy_cfg.full_load_pue / 1000.0


def build_params(cfg, dtype: torch.dtype = torch.float64, device="cpu") -> SimParams:
    """SimParams from a validated ScenarioConfig."""
    e, c = cfg.energy, cfg.classes
    N = len(cfg.dcs)

    def t(x):
        return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)

    deadline = np.asarray(c.deadline_s)  # classes are listed in EDF order (validated)
    late_factor = np.asarray(c.late_penalty_factor)
    rho = np.array([dc.price_usd_per_image for dc in cfg.dcs]) * cfg.revenue_scale
    full_kw = np.array([full_load_kw(dc, e) for dc in cfg.dcs])
    prices = load_transfer_price_usd_per_gb(cfg.transfer.cost_matrix)
    cost = np.zeros((N, N))
    delay = np.zeros((N, N))
    for i, a in enumerate(cfg.dcs):
        for n, b in enumerate(cfg.dcs):
            if i == n:
                continue
            ra, rb = REGIONS[a.region], REGIONS[b.region]
            cost[i, n] = prices.loc[ra.cloud_region, rb.cloud_region] * cfg.transfer.gb_per_job
            same = ra.continent == rb.continent
            delay[i, n] = cfg.transfer.delay_same_continent_s if same else cfg.transfer.delay_other_continent_s
    quality = np.stack([
        quality_on_grid(dc.quality_artifact or default_artifact_path(dc.model), list(cfg.steps_grid)) for dc in cfg.dcs
    ])
    gpus = np.array([dc.num_gpus for dc in cfg.dcs], dtype=np.float64)
    b = cfg.batch
    batch = {}
    if b.share > 0:
        batch = dict(batch_share=float(b.share), batch_deadline_slots=int(b.deadline_slots),
                     batch_horizon_slots=int(b.horizon_slots), batch_obs_buckets=int(b.obs_buckets),
                     batch_price_usd_per_image=t(rho * b.price_factor),
                     batch_late_penalty_usd=t(rho * b.price_factor * b.late_penalty_factor))
    weights = np.array([dc.arrival_weight for dc in cfg.dcs])
    return SimParams(
        slot_s=float(cfg.slot_s),
        slots_per_day=int(cfg.slots_per_day),
        num_dcs=N,
        num_classes=len(deadline),
        num_gpus=t(gpus),
        capacity_gpu_s=t(gpus * cfg.slot_s),
        backlog_cap_gpu_s=t(gpus * cfg.slot_s),
        tau_step_s=t([dc.tau_step_s for dc in cfg.dcs]),
        tau_fixed_s=t([dc.tau_fixed_s for dc in cfg.dcs]),
        energy_fixed_j=t([dc.energy_fixed_j for dc in cfg.dcs]),
        idle_power_w=t([dc.idle_power_w for dc in cfg.dcs]),
        busy_power_w=t([dc.energy_step_j / dc.tau_step_s for dc in cfg.dcs]),
        base_power_w=t(gpus / 8.0 * e.base_power_w_per_8_gpus),
        dvfs_delta=float(cfg.dvfs_delta),
        steps_grid=t(list(cfg.steps_grid)),
        freq_levels=t(list(cfg.freq_levels)),
        quality=t(quality),
        price_usd_per_image=t(rho),
        late_penalty_usd=t(rho[:, None] * late_factor[None, :]),
        drop_penalty_usd=t(rho * c.drop_penalty_factor),
        deadline_s=t(deadline),
        transfer_cost_usd_per_job=t(cost),
        transfer_delay_s=t(delay),
        allow_transfer=bool(cfg.allow_transfer),
        u_scale_usd=float(cfg.arrivals.total_per_slot * (weights * rho).sum()),
        pue_base=float(e.pue_base),
        pue_slope_per_c=float(e.pue_slope_per_c),
        pue_threshold_c=float(e.pue_threshold_c),
        pv_kwp=t(full_kw * e.pv_kwp_per_full_kw * (1.0 if e.renewables else 0.0)),
        wind_kw=t(full_kw * e.wind_kw_per_full_kw * (1.0 if e.renewables else 0.0)),
        battery_kwh=t(full_kw * e.battery_power_per_full_kw * e.battery_hours * (1.0 if e.battery else 0.0)),
        battery_kw=t(full_kw * e.battery_power_per_full_kw * (1.0 if e.battery else 0.0)),
        eta_charge=float(e.eta_charge),
        eta_discharge=float(e.eta_discharge),
        soc_min=float(e.soc_min),
        soc_max=float(e.soc_max),
        soc_init=float(e.soc_init),
        degradation_usd_per_kwh=float(e.degradation_usd_per_kwh),
        carbon_price_usd_per_kg=float(e.get("carbon_price_usd_per_t", 0.0)) / 1000.0,
        sell_price_factor=float(e.sell_price_factor),
        learned_energy=e.control == "learned",
        curtail_at_negative_price=bool(e.curtail_at_negative_price),
        **batch,
    )
