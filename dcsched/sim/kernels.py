"""The system model (MODEL.md sections 5-7) as pure batched torch functions.

Every function works on any leading batch shape ``*`` and on CPU or CUDA; there is no Python
loop over environments, data centres, classes or jobs. Index names: i = origin DC, n =
serving DC, k = job class (EDF order), N DCs, K classes.

Accounting conventions (docs/model.md):
- A job is counted once, in the slot it arrives: on time (served this slot within its
  deadline), late (served this slot past its deadline, or admitted to the backlog and served
  next slot) or dropped (did not fit in the backlog).
- The backlog holds at most one slot of capacity and is served first in the next slot, so it
  always clears in one slot; it carries its GPU-seconds and the energy it was assigned with.
- Job terms (revenue, penalties) are attributed to the serving DC n; the transfer cost to the
  destination n; energy terms to the DC that consumes the energy.

Deferrable batch work (MODEL.md section 11, when ``p.has_batch``; docs/model.md):
- Batch jobs of origin i are routed on arrival (``Decision.batch_transfer`` [*, i, n]) into the
  serving DC's queue, kept by origin and age (slots since arrival) in ``SimState.batch_queue``
  [*, i, n, A] with A = ``p.batch_horizon_slots``. Queued work does not move again.
- Each slot, after the backlog and the interactive classes, DC n serves the share
  ``batch_serve_frac`` of its queue (arrivals of this slot included) as far as the capacity left
  allows, oldest first (earliest deadline first), every origin of an age in the same proportion,
  at its own step level and the DC's frequency. Served at an age below ``batch_deadline_slots``:
  on time (revenue rho^b_i Q); later: late (penalty psi_b,i, no revenue). Batch work never enters
  the one-slot backlog.
- A job still queued at age A - 1 after service is dropped (psi_drop,i); so is every job still
  queued after the day's last slot (``exo["last_slot"]``): the day settles its batch work.
- A batch job is counted once, in the slot it is served or dropped (not in its arrival slot).

Faults (optional ``exo`` entries, from the dc_outage and link_down stresses):
- ``capacity_frac`` [*, N]: the share of a DC's GPUs that are up this slot. Its capacity and its
  idle GPU power scale with it (base power stays). The backlog admitted this slot is capped by
  the *next* slot's capacity (``capacity_frac_next``), so a DC going down admits no backlog it
  could not serve, and the backlog still clears in one slot. Jobs sent to a down DC find no room:
  they are dropped (the policy must move them).
- ``link_up`` [*, N, N]: 0 where the transfer link origin -> dest is down. Shares sent over a
  down link stay at the origin (:func:`route_over_links`), before service, so the transfer cost
  and delay are those of the route actually taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dcsched.sim import physics
from dcsched.sim.params import SimParams

J_PER_KWH = 3.6e6


@dataclass
class SimState:
    """Per-environment state. Every tensor is [*, N]."""

    soc: torch.Tensor  # battery state of charge, fraction of capacity
    backlog_work_gpu_s: torch.Tensor  # late work waiting for the next slot
    backlog_energy_j: torch.Tensor  # energy the backlog was assigned with
    backlog_jobs: torch.Tensor  # jobs in the backlog
    batch_queue: torch.Tensor | None = None  # [*, N(origin), N(serving), A] batch jobs by age at the next slot; None: no batch class


@dataclass
class Decision:
    """Decoded per-slot decision."""

    transfer: torch.Tensor  # x [*, N(origin), N(dest), K], rows sum to 1 over dest
    steps_idx: torch.Tensor  # [*, N, K] index into params.steps_grid (long)
    freq_idx: torch.Tensor  # [*, N] index into params.freq_levels (long)
    battery_frac: torch.Tensor | None = None  # [*, N] in [-1, 1], + charge; used if energy is learned
    # batch work (p.has_batch); None: the default (default_batch_decision)
    batch_transfer: torch.Tensor | None = None  # [*, N(origin), N(dest)] rows sum to 1
    batch_steps_idx: torch.Tensor | None = None  # [*, N] step level of batch work at each serving DC
    batch_serve_frac: torch.Tensor | None = None  # [*, N] in [0, 1], share of the queue to serve this slot


def initial_state(p: SimParams, batch_shape: tuple[int, ...]) -> SimState:
    ref = p.capacity_gpu_s
    zeros = torch.zeros(*batch_shape, p.num_dcs, dtype=ref.dtype, device=ref.device)
    queue = None
    if p.has_batch:
        queue = torch.zeros(*batch_shape, p.num_dcs, p.num_dcs, p.batch_horizon_slots, dtype=ref.dtype, device=ref.device)
    return SimState(soc=zeros + p.soc_init, backlog_work_gpu_s=zeros.clone(),
                    backlog_energy_j=zeros.clone(), backlog_jobs=zeros.clone(), batch_queue=queue)


def default_batch_decision(p: SimParams, d: Decision) -> Decision:
    """``d`` with every missing batch field set to the default a batch-unaware policy gets: new
    batch work stays at its origin, runs at the step level of the DC's longest-deadline
    interactive class, and as much of the queue as capacity allows is served (share 1)."""
    if not p.has_batch:
        return d
    batch = d.freq_idx.shape[:-1]
    N = p.num_dcs
    transfer = d.batch_transfer
    if transfer is None:
        transfer = torch.eye(N, dtype=p.capacity_gpu_s.dtype, device=d.freq_idx.device).expand(*batch, N, N)
    steps = d.batch_steps_idx if d.batch_steps_idx is not None else d.steps_idx[..., -1]
    serve = d.batch_serve_frac
    if serve is None:
        serve = torch.ones(*batch, N, dtype=p.capacity_gpu_s.dtype, device=d.freq_idx.device)
    return Decision(d.transfer, d.steps_idx, d.freq_idx, d.battery_frac, transfer, steps, serve)


def step_time_s(p: SimParams, freq: torch.Tensor) -> torch.Tensor:
    """DVFS time per denoising step: tau(f) = tau_step (delta / f + 1 - delta). freq: [*, N] fraction of f_max."""
    return physics.step_time_s(p.tau_step_s, freq, p.dvfs_delta)


def gpu_power_w(p: SimParams, freq: torch.Tensor) -> torch.Tensor:
    """GPU power at frequency: P(f) = P_idle + (P_busy - P_idle) f^3. [*, N] watts."""
    return physics.gpu_power_w(p.idle_power_w, p.busy_power_w, freq)


def job_time_and_energy(p: SimParams, steps: torch.Tensor, freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Execution time (s) and energy (J) of one job. steps [*, N, K], freq [*, N] -> two [*, N, K]."""
    tau = step_time_s(p, freq).unsqueeze(-1)
    power = gpu_power_w(p, freq).unsqueeze(-1)
    exec_s = steps * tau + p.tau_fixed_s.unsqueeze(-1)
    energy_j = steps * power * tau + p.energy_fixed_j.unsqueeze(-1)
    return exec_s, energy_j


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """min(1, num / den), 1 where den == 0."""
    positive = den > 0
    return torch.where(positive, (num / torch.where(positive, den, torch.ones_like(den))).clamp(max=1.0),
                       torch.ones_like(den))


def route_over_links(transfer: torch.Tensor, link_up: torch.Tensor | None) -> torch.Tensor:
    """Transfer shares [*, i, n, k] with the share of each down link (``link_up`` [*, i, n] == 0)
    moved back to the origin's own DC. Rows still sum to 1. None: no link is down."""
    if link_up is None:
        return transfer
    up = link_up.unsqueeze(-1)
    stranded = (transfer * (1.0 - up)).sum(-2, keepdim=True)  # [*, i, 1, k]
    eye = torch.eye(transfer.shape[-2], dtype=transfer.dtype, device=transfer.device).unsqueeze(-1)  # [i, n, 1]
    return transfer * up + eye * stranded


def serve(p: SimParams, state: SimState, arrivals: torch.Tensor, d: Decision,
          capacity_gpu_s: torch.Tensor | None = None, backlog_cap_gpu_s: torch.Tensor | None = None,
          ) -> dict[str, torch.Tensor]:
    """Fluid service model of one slot (MODEL.md section 5).

    arrivals: [*, N, K] jobs by origin and class. ``capacity_gpu_s`` / ``backlog_cap_gpu_s``
    ([*, N] or None for the nominal ones): this slot's capacity and the backlog it may admit.
    Returns job flows by origin/serving DC/class ([*, N, N, K]), the new backlog and the busy
    GPU-seconds and served energy per DC ([*, N]).
    """
    capacity = p.capacity_gpu_s if capacity_gpu_s is None else capacity_gpu_s
    backlog_cap = p.backlog_cap_gpu_s if backlog_cap_gpu_s is None else backlog_cap_gpu_s
    steps = p.steps_grid[d.steps_idx]  # [*, N, K]
    freq = p.freq_levels[d.freq_idx]  # [*, N]
    exec_s, energy_j = job_time_and_energy(p, steps, freq)  # [*, N, K]
    jobs = d.transfer * arrivals.unsqueeze(-2)  # [*, i, n, k]
    feasible = (exec_s.unsqueeze(-3) + p.transfer_delay_s.unsqueeze(-1)) <= p.deadline_s  # [*, i, n, k]
    feasible = feasible.to(jobs.dtype)

    jobs_n = jobs.sum(-3)  # [*, n, k]
    work = jobs_n * exec_s  # GPU-seconds by class
    free = capacity - state.backlog_work_gpu_s  # backlog first
    before = torch.cumsum(work, dim=-1) - work  # EDF: earlier-deadline classes first
    room = (free.unsqueeze(-1) - before).clamp(min=0.0)
    served_frac = _safe_ratio(room, work)  # phi [*, n, k]
    overflow_work = ((1.0 - served_frac) * work).sum(-1)  # [*, n]
    admit_frac = _safe_ratio(backlog_cap.expand_as(overflow_work), overflow_work)  # [*, n]

    phi = served_frac.unsqueeze(-3)
    adm = admit_frac.unsqueeze(-1).unsqueeze(-3)
    on_time = jobs * phi * feasible
    backlogged = jobs * (1.0 - phi) * adm  # admitted to the backlog: late, served next slot
    late = jobs * phi * (1.0 - feasible) + backlogged
    dropped_k = jobs * (1.0 - phi) * (1.0 - adm)  # [*, i, n, k]
    dropped = dropped_k.sum(-1)  # [*, i, n]

    unserved_jobs = ((1.0 - served_frac) * jobs_n).sum(-1)
    unserved_energy = ((1.0 - served_frac) * jobs_n * energy_j).sum(-1)
    served_work = (served_frac * work).sum(-1)
    served_energy = (served_frac * jobs_n * energy_j).sum(-1)
    return {
        "steps": steps, "freq": freq, "exec_s": exec_s, "job_energy_j": energy_j, "jobs": jobs,
        "on_time": on_time, "late": late, "dropped": dropped, "backlogged": backlogged,
        "dropped_k": dropped_k, "busy_gpu_s": state.backlog_work_gpu_s + served_work,
        "served_energy_j": state.backlog_energy_j + served_energy,
        "new_backlog_work_gpu_s": admit_frac * overflow_work,
        "new_backlog_energy_j": admit_frac * unserved_energy,
        "new_backlog_jobs": admit_frac * unserved_jobs,
    }


def serve_batch(p: SimParams, queue: torch.Tensor, d: Decision, freq: torch.Tensor, room_gpu_s: torch.Tensor,
                batch_arrivals: torch.Tensor, last_slot: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch queue's slot (module docstring): route the arrivals, serve oldest first, drop and age.

    queue [*, i, n, A] (age at this slot; age 0 empty), d with its batch fields set, freq [*, N],
    room_gpu_s [*, N] the capacity the interactive work left, batch_arrivals [*, i], last_slot [*]
    bool (settle the day). Returns flows by origin and serving DC [*, i, n] (routed, on_time, late,
    dropped), the next queue, and the busy GPU-seconds and energy of the served batch work [*, N]."""
    D = p.batch_deadline_slots
    steps = p.steps_grid[d.batch_steps_idx]  # [*, N]
    exec_s, energy_j = job_time_and_energy(p, steps.unsqueeze(-1), freq)
    exec_s, energy_j = exec_s.squeeze(-1), energy_j.squeeze(-1)  # [*, N]
    routed = d.batch_transfer * batch_arrivals.unsqueeze(-1)  # [*, i, n]
    q = torch.cat([queue[..., :1] + routed.unsqueeze(-1), queue[..., 1:]], dim=-1)
    q_n = q.sum(-3)  # [*, n, A]
    wanted = d.batch_serve_frac * q_n.sum(-1)
    jobs_served = torch.minimum(wanted, room_gpu_s.clamp(min=0.0) / exec_s)  # [*, n]
    older = torch.flip(torch.cumsum(torch.flip(q_n, (-1,)), -1), (-1,)) - q_n  # jobs older than each age
    served_n = torch.minimum((jobs_served.unsqueeze(-1) - older).clamp(min=0.0), q_n)
    served = q * _safe_ratio(served_n, q_n).unsqueeze(-3)  # [*, i, n, A]
    rest = q - served
    aged = torch.cat([torch.zeros_like(rest[..., :1]), rest[..., :-1]], dim=-1)  # one slot older
    settle = last_slot.to(q.dtype)[(...,) + (None,) * 2]  # [*, 1, 1]
    dropped = rest[..., -1] + settle * aged.sum(-1)
    busy = served_n.sum(-1) * exec_s
    return {
        "routed": routed, "on_time": served[..., :D].sum(-1), "late": served[..., D:].sum(-1), "dropped": dropped,
        "queue": aged * (1.0 - settle.unsqueeze(-1)), "busy_gpu_s": busy, "energy_j": served_n.sum(-1) * energy_j,
        "steps": steps,
    }


def it_power_kw(p: SimParams, busy_gpu_s: torch.Tensor, served_energy_j: torch.Tensor,
                capacity_gpu_s: torch.Tensor | None = None) -> torch.Tensor:
    """Average IT power of the slot: served job energy + idle GPU energy (of the GPUs that are up:
    ``capacity_gpu_s``, nominal if None) + base power. [*, N] kW."""
    capacity = p.capacity_gpu_s if capacity_gpu_s is None else capacity_gpu_s
    idle_gpu_s = (capacity - busy_gpu_s).clamp(min=0.0)
    return physics.it_power_kw(served_energy_j, idle_gpu_s, p.idle_power_w, p.base_power_w, p.slot_s)


def cooling_kw(p: SimParams, it_kw: torch.Tensor, temp_c: torch.Tensor) -> torch.Tensor:
    """PUE cooling: (PUE(T) - 1) * P_IT with PUE = base + slope * max(0, T - threshold)."""
    return physics.cooling_kw(it_kw, physics.pue(temp_c, p.pue_base, p.pue_slope_per_c, p.pue_threshold_c))


def battery_limits_kw(p: SimParams, soc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest charge and discharge power (kW, at the DC bus) that keep SoC in bounds this slot."""
    headroom_kwh = (p.soc_max - soc).clamp(min=0.0) * p.battery_kwh
    avail_kwh = (soc - p.soc_min).clamp(min=0.0) * p.battery_kwh
    max_charge = torch.minimum(p.battery_kw.expand_as(soc), headroom_kwh / (p.eta_charge * p.slot_h))
    max_discharge = torch.minimum(p.battery_kw.expand_as(soc), avail_kwh * p.eta_discharge / p.slot_h)
    return max_charge, max_discharge


def battery_heuristic_kw(
    p: SimParams, soc: torch.Tensor, net_load_kw: torch.Tensor, price: torch.Tensor,
    price_low: torch.Tensor, price_high: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner energy heuristic (MODEL.md section 6). Renewables serve the load first; charge at
    full power when the price is at or below the trailing low percentile; discharge to cover the
    deficit when at or above the high percentile; otherwise store renewable surplus only.
    Returns (charge_kw, discharge_kw), both >= 0 and never both positive."""
    max_c, max_d = battery_limits_kw(p, soc)
    surplus = (-net_load_kw).clamp(min=0.0)
    deficit = net_load_kw.clamp(min=0.0)
    cheap = price <= price_low
    dear = (price >= price_high) & ~cheap
    charge = torch.where(cheap, max_c, torch.where(dear, torch.zeros_like(max_c), torch.minimum(max_c, surplus)))
    discharge = torch.where(dear, torch.minimum(max_d, deficit), torch.zeros_like(max_d))
    return charge, discharge


def battery_learned_kw(p: SimParams, soc: torch.Tensor, frac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Learned battery command b in [-1, 1] of the power limit, honouring the SoC bounds
    (the physical limit is applied and the actual power is reported)."""
    max_c, max_d = battery_limits_kw(p, soc)
    cmd = frac * p.battery_kw
    return torch.minimum(cmd.clamp(min=0.0), max_c), torch.minimum((-cmd).clamp(min=0.0), max_d)


def step(
    p: SimParams, state: SimState, arrivals: torch.Tensor, d: Decision, exo: dict[str, torch.Tensor]
) -> tuple[SimState, dict[str, torch.Tensor]]:
    """One slot of the whole system. exo holds [*, N] tensors: price_usd_per_mwh,
    price_low_usd_per_mwh, price_high_usd_per_mwh, carbon_g_per_kwh, temp_c, pv_kw_per_kwp,
    wind_kw_per_kw; optionally the faults capacity_frac, capacity_frac_next [*, N] and link_up
    [*, N, N] (module docstring). Returns the next state and the outcome (every utility term and
    job count)."""
    capacity = backlog_cap = None
    if exo.get("capacity_frac") is not None:
        capacity = p.capacity_gpu_s * exo["capacity_frac"]
        backlog_cap = p.backlog_cap_gpu_s * exo.get("capacity_frac_next", exo["capacity_frac"])
    d = default_batch_decision(p, d)
    if exo.get("link_up") is not None:
        bt = d.batch_transfer
        if bt is not None:
            bt = route_over_links(bt.unsqueeze(-1), exo["link_up"]).squeeze(-1)
        d = Decision(route_over_links(d.transfer, exo["link_up"]), d.steps_idx, d.freq_idx, d.battery_frac,
                     bt, d.batch_steps_idx, d.batch_serve_frac)
    s = serve(p, state, arrivals, d, capacity, backlog_cap)
    b = None
    if p.has_batch:
        if "batch_arrivals" not in exo or "last_slot" not in exo:
            raise ValueError("a scenario with batch work needs exo['batch_arrivals'] [*, N] and exo['last_slot'] [*]")
        room = (p.capacity_gpu_s if capacity is None else capacity) - s["busy_gpu_s"]
        b = serve_batch(p, state.batch_queue, d, s["freq"], room, exo["batch_arrivals"], exo["last_slot"])
        s["busy_gpu_s"] = s["busy_gpu_s"] + b["busy_gpu_s"]
        s["served_energy_j"] = s["served_energy_j"] + b["energy_j"]
    it_kw = it_power_kw(p, s["busy_gpu_s"], s["served_energy_j"], capacity)
    cool_kw = cooling_kw(p, it_kw, exo["temp_c"])
    pv_kw = p.pv_kwp * exo["pv_kw_per_kwp"]
    wind_kw = p.wind_kw * exo["wind_kw_per_kw"]
    net_kw = it_kw + cool_kw - pv_kw - wind_kw
    price = exo["price_usd_per_mwh"]
    if p.learned_energy and d.battery_frac is not None:
        charge_kw, discharge_kw = battery_learned_kw(p, state.soc, d.battery_frac)
    else:
        charge_kw, discharge_kw = battery_heuristic_kw(
            p, state.soc, net_kw, price, exo["price_low_usd_per_mwh"], exo["price_high_usd_per_mwh"])
    grid_kw = net_kw + charge_kw - discharge_kw
    buy_kw = grid_kw.clamp(min=0.0)
    export_kw = (-grid_kw).clamp(min=0.0)
    if p.curtail_at_negative_price:
        curtail_kw = torch.where(price < 0, export_kw, torch.zeros_like(export_kw))
    else:
        curtail_kw = torch.zeros_like(export_kw)
    sell_kw = export_kw - curtail_kw
    safe_kwh = torch.where(p.battery_kwh > 0, p.battery_kwh, torch.ones_like(p.battery_kwh))
    soc_next = physics.soc_next(state.soc, charge_kw, discharge_kw, p.eta_charge, p.eta_discharge, p.slot_h, safe_kwh)
    soc_next = torch.where(p.battery_kwh > 0, soc_next, state.soc)

    energy_cost = physics.grid_cost_usd(buy_kw, sell_kw, price, p.sell_price_factor, p.slot_h)
    degradation = physics.degradation_usd(charge_kw, discharge_kw, p.degradation_usd_per_kwh, p.slot_h)
    carbon_kg = buy_kw * p.slot_h * exo["carbon_g_per_kwh"] / 1000.0
    carbon_cost = carbon_kg * p.carbon_price_usd_per_kg  # 0 unless energy.carbon_price_usd_per_t is set

    quality = torch.gather(
        p.quality.expand(*d.steps_idx.shape[:-2], -1, -1), -1, d.steps_idx)  # [*, n, k]
    rho_i = p.price_usd_per_image.unsqueeze(-1).unsqueeze(-1)  # [i, 1, 1]
    revenue = (rho_i * quality.unsqueeze(-3) * s["on_time"]).sum((-3, -1))  # [*, n]
    transfer_cost = (s["jobs"] * p.transfer_cost_usd_per_job.unsqueeze(-1)).sum((-3, -1))
    late_pen = (s["late"] * p.late_penalty_usd.unsqueeze(-2)).sum((-3, -1))
    drop_pen = (s["dropped"] * p.drop_penalty_usd.unsqueeze(-1)).sum(-2)
    penalty = late_pen + drop_pen
    if b is not None:
        batch_quality = torch.gather(p.quality.expand(*d.batch_steps_idx.shape[:-1], -1, -1), -1,
                                     d.batch_steps_idx.unsqueeze(-1)).squeeze(-1)  # [*, n]
        revenue = revenue + batch_quality * (p.batch_price_usd_per_image.unsqueeze(-1) * b["on_time"]).sum(-2)
        transfer_cost = transfer_cost + (b["routed"] * p.transfer_cost_usd_per_job).sum(-2)
        penalty = penalty + (b["late"] * p.batch_late_penalty_usd.unsqueeze(-1)).sum(-2) \
            + (b["dropped"] * p.drop_penalty_usd.unsqueeze(-1)).sum(-2)
    utility = revenue - energy_cost - transfer_cost - penalty - degradation - carbon_cost

    next_state = SimState(soc=soc_next, backlog_work_gpu_s=s["new_backlog_work_gpu_s"],
                          backlog_energy_j=s["new_backlog_energy_j"], backlog_jobs=s["new_backlog_jobs"],
                          batch_queue=None if b is None else b["queue"])
    outcome = {
        "arrivals": arrivals,  # [*, N(origin), K]
        "served": s["jobs"].sum(-3),  # [*, n, K] assigned to n this slot
        "on_time": s["on_time"].sum(-3),  # [*, n, K]
        "late": s["late"].sum(-3),  # [*, n, K]
        "dropped": s["dropped"].sum(-2),  # [*, n]
        "flow_on_time": s["on_time"], "flow_late": s["late"], "flow_dropped": s["dropped"],
        "flow_backlogged": s["backlogged"],  # [*, i, n, k] part of flow_late admitted to the backlog
        "flow_dropped_k": s["dropped_k"],  # [*, i, n, k]
        "busy_gpu_s": s["busy_gpu_s"],
        "backlog_jobs": s["new_backlog_jobs"],
        "backlog_work_gpu_s": s["new_backlog_work_gpu_s"],
        "steps": s["steps"], "freq": s["freq"], "transfer": d.transfer,
        "it_kw": it_kw, "cooling_kw": cool_kw, "charge_kw": charge_kw, "discharge_kw": discharge_kw,
        "pv_kw": pv_kw, "wind_kw": wind_kw, "curtail_kw": curtail_kw, "grid_buy_kw": buy_kw,
        "grid_sell_kw": sell_kw, "soc": soc_next,
        "revenue_usd": revenue, "energy_cost_usd": energy_cost, "transfer_cost_usd": transfer_cost,
        "penalty_usd": penalty, "degradation_usd": degradation, "utility_usd": utility,
        "carbon_kg": carbon_kg, "carbon_cost_usd": carbon_cost,
    }
    if b is not None:
        outcome.update({
            "batch_arrivals": exo["batch_arrivals"],  # [*, N(origin)]
            "batch_on_time": b["on_time"].sum(-2), "batch_late": b["late"].sum(-2),  # [*, n]
            "batch_dropped": b["dropped"].sum(-2), "batch_queue_jobs": b["queue"].sum((-3, -1)),
            "batch_steps": b["steps"], "batch_transfer": d.batch_transfer,
            "flow_batch_routed": b["routed"], "flow_batch_on_time": b["on_time"],  # [*, i, n]
            "flow_batch_late": b["late"], "flow_batch_dropped": b["dropped"],
        })
    return next_state, outcome


def violation_share(outcome: dict[str, torch.Tensor]) -> torch.Tensor:
    """Share of this slot's arriving jobs that were late or dropped. [*]"""
    arrived = outcome["arrivals"].sum((-2, -1))
    bad = outcome["late"].sum((-2, -1)) + outcome["dropped"].sum(-1)
    return torch.where(arrived > 0, bad / arrived.clamp(min=1e-12), torch.zeros_like(arrived))
