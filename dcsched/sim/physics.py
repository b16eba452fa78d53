"""The physics of MODEL.md sections 5-6 as small pure functions: the one place each formula is
written. The batched kernels (torch), the LP bound's coefficients and the calibration (numpy) all
call these; a formula changed here changes all of them (tests/test_physics_source.py holds the LP
to the env after patching a formula). Arguments broadcast; they may be torch tensors, numpy arrays
or floats. The scalar reference (dcsched/sim/reference.py) stays independent of this module on
purpose: it is the check.

Several functions are linear in their flow arguments; the LP takes its coefficients by calling them
at unit flows (e.g. ``soc_next(0, 1, 0, ...)`` is the SoC gained per kW of charging).
"""

from __future__ import annotations

import numpy as np
import torch


def positive_part(x):
    """max(x, 0) for a tensor, an array or a float."""
    if isinstance(x, torch.Tensor):
        return x.clamp(min=0.0)
    return np.maximum(x, 0.0)


def step_time_s(tau_step_s, freq, dvfs_delta):
    """DVFS time per denoising step: tau(f) = tau_step (delta / f + 1 - delta); freq a fraction of f_max."""
    return tau_step_s * (dvfs_delta / freq + 1.0 - dvfs_delta)


def gpu_power_w(idle_power_w, busy_power_w, freq):
    """GPU power at frequency f: P(f) = P_idle + (P_busy - P_idle) f^3, W."""
    return idle_power_w + (busy_power_w - idle_power_w) * freq**3


def it_power_kw(served_energy_j, idle_gpu_s, idle_power_w, base_power_w, slot_s):
    """Average IT power of a slot, kW: served job energy + idle GPU energy + server base power.
    Linear in (served_energy_j, idle_gpu_s, base_power_w)."""
    return (served_energy_j + idle_power_w * idle_gpu_s + base_power_w * slot_s) / slot_s / 1000.0


def pue(temp_c, pue_base, pue_slope_per_c, pue_threshold_c):
    """PUE(T) = base + slope * max(0, T - threshold)."""
    return pue_base + pue_slope_per_c * positive_part(temp_c - pue_threshold_c)


def cooling_kw(it_kw, pue_value):
    """Cooling power (PUE - 1) * P_IT, kW."""
    return (pue_value - 1.0) * it_kw


def soc_next(soc, charge_kw, discharge_kw, eta_charge, eta_discharge, slot_h, capacity_kwh):
    """State of charge after a slot: soc + (eta_ch * charge - discharge / eta_dis) * slot_h / capacity.
    Linear in (soc, charge_kw, discharge_kw)."""
    return soc + (charge_kw * eta_charge - discharge_kw / eta_discharge) * slot_h / capacity_kwh


def grid_cost_usd(buy_kw, sell_kw, price_usd_per_mwh, sell_price_factor, slot_h):
    """Net cost of the grid over a slot, $: buy at the price, sell at factor * price (both may be
    negative prices). Linear in (buy_kw, sell_kw)."""
    return (buy_kw - sell_price_factor * sell_kw) * (slot_h / 1000.0) * price_usd_per_mwh


def degradation_usd(charge_kw, discharge_kw, usd_per_kwh, slot_h):
    """Battery wear over a slot, $ per kWh of throughput. Linear in (charge_kw, discharge_kw)."""
    return usd_per_kwh * (charge_kw + discharge_kw) * slot_h
