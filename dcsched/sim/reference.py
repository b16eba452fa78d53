"""Scalar reference model: one environment, one slot, plain Python loops over DCs, classes and
origins. Written independently of :mod:`dcsched.sim.kernels` and :mod:`dcsched.sim.physics` from
MODEL.md, with its own parameter derivation from the scenario file (:func:`reference_params`), it
is used only to cross-check the kernels in tests (one slot at random states, and whole days chained
with negative prices and the battery at both bounds) and as the baseline of the speed benchmark.
Never import it from the simulator.
"""

from __future__ import annotations

import math


def reference_params(cfg) -> dict:
    """The reference's own parameters, derived from the scenario config (MODEL.md sections 2-6),
    not from :func:`dcsched.sim.params.build_params`: a slip in either derivation shows up as a
    difference between the kernels and this model. Data (quality curves, transfer prices, region
    metadata) comes from the data layer; every formula on it is written here again, on purpose."""
    from dcsched.data.regions import REGIONS
    from dcsched.data.traces import load_transfer_price_usd_per_gb
    from dcsched.quality.curves import default_artifact_path, quality_on_grid

    e, c, dcs = cfg.energy, cfg.classes, list(cfg.dcs)
    N = len(dcs)
    rho = [dc.price_usd_per_image * cfg.revenue_scale for dc in dcs]
    busy_w = [dc.energy_step_j / dc.tau_step_s for dc in dcs]
    base_w = [dc.num_gpus * e.base_power_w_per_8_gpus / 8.0 for dc in dcs]
    # P_full: every GPU busy at f_max plus base power, at the full-load PUE (section 6)
    p_full_kw = [(dc.num_gpus * busy_w[n] + base_w[n]) * e.full_load_pue / 1000.0 for n, dc in enumerate(dcs)]
    renew = 1.0 if e.renewables else 0.0
    batt = 1.0 if e.battery else 0.0
    price_per_gb = load_transfer_price_usd_per_gb(cfg.transfer.cost_matrix)
    cost = [[0.0] * N for _ in range(N)]
    delay = [[0.0] * N for _ in range(N)]
    for i in range(N):
        for n in range(N):
            if i != n:
                a, b = REGIONS[dcs[i].region], REGIONS[dcs[n].region]
                cost[i][n] = float(price_per_gb.loc[a.cloud_region, b.cloud_region]) * cfg.transfer.gb_per_job
                delay[i][n] = (cfg.transfer.delay_same_continent_s if a.continent == b.continent
                               else cfg.transfer.delay_other_continent_s)
    b = cfg.batch
    batch = {"batch": b.share > 0, "batch_deadline_slots": int(b.deadline_slots), "batch_horizon_slots": int(b.horizon_slots),
             "batch_price_usd_per_image": [r * b.price_factor for r in rho],
             "batch_late_penalty_usd": [r * b.price_factor * b.late_penalty_factor for r in rho]}
    quality = [list(quality_on_grid(dc.quality_artifact or default_artifact_path(dc.model), list(cfg.steps_grid)))
               for dc in dcs]
    return {
        "num_dcs": N, "num_classes": len(c.deadline_s), "slot_s": float(cfg.slot_s),
        "capacity_gpu_s": [dc.num_gpus * cfg.slot_s for dc in dcs],
        "backlog_cap_gpu_s": [dc.num_gpus * cfg.slot_s for dc in dcs],
        "tau_step_s": [dc.tau_step_s for dc in dcs], "tau_fixed_s": [dc.tau_fixed_s for dc in dcs],
        "energy_fixed_j": [dc.energy_fixed_j for dc in dcs], "idle_power_w": [dc.idle_power_w for dc in dcs],
        "busy_power_w": busy_w, "base_power_w": base_w, "dvfs_delta": float(cfg.dvfs_delta),
        "steps_grid": [float(s) for s in cfg.steps_grid], "freq_levels": [float(f) for f in cfg.freq_levels],
        "quality": [[float(q) for q in row] for row in quality],
        "price_usd_per_image": rho,
        "late_penalty_usd": [[r * f for f in c.late_penalty_factor] for r in rho],
        "drop_penalty_usd": [r * c.drop_penalty_factor for r in rho],
        "deadline_s": [float(d) for d in c.deadline_s],
        "transfer_cost_usd_per_job": cost, "transfer_delay_s": delay,
        "pue_base": e.pue_base, "pue_slope_per_c": e.pue_slope_per_c, "pue_threshold_c": e.pue_threshold_c,
        "pv_kwp": [pf * e.pv_kwp_per_full_kw * renew for pf in p_full_kw],
        "wind_kw": [pf * e.wind_kw_per_full_kw * renew for pf in p_full_kw],
        "battery_kwh": [pf * e.battery_power_per_full_kw * e.battery_hours * batt for pf in p_full_kw],
        "battery_kw": [pf * e.battery_power_per_full_kw * batt for pf in p_full_kw],
        "eta_charge": e.eta_charge, "eta_discharge": e.eta_discharge, "soc_min": e.soc_min, "soc_max": e.soc_max,
        "soc_init": e.soc_init, "degradation_usd_per_kwh": e.degradation_usd_per_kwh,
        "sell_price_factor": e.sell_price_factor, "learned_energy": e.control == "learned",
        "carbon_price_usd_per_kg": e.get("carbon_price_usd_per_t", 0.0) / 1000.0,
        "curtail_at_negative_price": bool(e.curtail_at_negative_price),
        **batch,
    }


def params_to_python(p) -> dict:
    """SimParams -> plain Python floats and lists."""
    out = {}
    for name, value in vars(p).items():
        out[name] = value.tolist() if hasattr(value, "tolist") else value
    return out


def reference_step(P: dict, state: dict, arrivals: list, decision: dict, exo: dict) -> tuple[dict, dict]:
    """One slot. state: soc, backlog_work_gpu_s, backlog_energy_j, backlog_jobs (lists of N floats);
    arrivals[i][k]; decision: transfer[i][n][k], steps_idx[n][k], freq_idx[n], battery_frac[n] or None;
    exo: per-DC lists price_usd_per_mwh, price_low_usd_per_mwh, price_high_usd_per_mwh,
    carbon_g_per_kwh, temp_c, pv_kw_per_kwp, wind_kw_per_kw, and optionally the faults
    capacity_frac[n], capacity_frac_next[n] (share of GPUs up now and next slot) and link_up[i][n].

    Batch work (P["batch"]): state["batch_queue"][i][n][age], exo["batch_arrivals"][i] and
    exo["last_slot"]; decision batch_transfer[i][n], batch_steps_idx[n], batch_serve_frac[n], each
    None for its default (stay at the origin; the last interactive class's step level; share 1)."""
    N, K = P["num_dcs"], P["num_classes"]
    up_now = exo.get("capacity_frac") or [1.0] * N
    up_next = exo.get("capacity_frac_next") or up_now
    link_up = exo.get("link_up")
    if link_up is not None:  # a share sent over a down link stays at its origin
        moved = [[[decision["transfer"][i][n][k] for k in range(K)] for n in range(N)] for i in range(N)]
        for i in range(N):
            for n in range(N):
                if i != n and link_up[i][n] == 0.0:
                    for k in range(K):
                        moved[i][i][k] += moved[i][n][k]
                        moved[i][n][k] = 0.0
        decision = {**decision, "transfer": moved}
    batch = P.get("batch", False)
    if batch:
        b_move = decision.get("batch_transfer")
        if b_move is None:
            b_move = [[1.0 if i == n else 0.0 for n in range(N)] for i in range(N)]
        b_move = [list(row) for row in b_move]
        if link_up is not None:
            for i in range(N):
                for n in range(N):
                    if i != n and link_up[i][n] == 0.0:
                        b_move[i][i] += b_move[i][n]
                        b_move[i][n] = 0.0
        b_steps = decision.get("batch_steps_idx") or [decision["steps_idx"][n][K - 1] for n in range(N)]
        b_serve = decision.get("batch_serve_frac") or [1.0] * N
        A, D = P["batch_horizon_slots"], P["batch_deadline_slots"]
    slot_s = P["slot_s"]
    slot_h = slot_s / 3600.0
    res = {k: [0.0] * N for k in (
        "dropped", "it_kw", "cooling_kw", "charge_kw", "discharge_kw", "pv_kw", "wind_kw", "curtail_kw",
        "grid_buy_kw", "grid_sell_kw", "soc", "revenue_usd", "energy_cost_usd", "transfer_cost_usd",
        "penalty_usd", "degradation_usd", "utility_usd", "carbon_kg", "carbon_cost_usd", "backlog_jobs",
        "backlog_work_gpu_s")}
    res["on_time"] = [[0.0] * K for _ in range(N)]
    res["late"] = [[0.0] * K for _ in range(N)]
    res["served"] = [[0.0] * K for _ in range(N)]
    new_state = {"soc": [0.0] * N, "backlog_work_gpu_s": [0.0] * N, "backlog_energy_j": [0.0] * N, "backlog_jobs": [0.0] * N}
    if batch:
        for key in ("batch_on_time", "batch_late", "batch_dropped", "batch_queue_jobs"):
            res[key] = [0.0] * N
        new_state["batch_queue"] = [[[0.0] * A for _ in range(N)] for _ in range(N)]

    for n in range(N):
        f = P["freq_levels"][decision["freq_idx"][n]]
        tau = P["tau_step_s"][n] * (P["dvfs_delta"] / f + 1.0 - P["dvfs_delta"])
        power_w = P["idle_power_w"][n] + (P["busy_power_w"][n] - P["idle_power_w"][n]) * f ** 3
        capacity = P["capacity_gpu_s"][n] * up_now[n]
        remaining = capacity - state["backlog_work_gpu_s"][n]
        busy = state["backlog_work_gpu_s"][n]
        energy_j = state["backlog_energy_j"][n]
        overflow_by_origin_class = []  # (i, k, jobs, work, energy)
        for k in range(K):  # classes are in EDF order
            steps = P["steps_grid"][decision["steps_idx"][n][k]]
            exec_s = steps * tau + P["tau_fixed_s"][n]
            job_j = steps * power_w * tau + P["energy_fixed_j"][n]
            quality = P["quality"][n][decision["steps_idx"][n][k]]
            jobs_here = [decision["transfer"][i][n][k] * arrivals[i][k] for i in range(N)]
            work = sum(jobs_here) * exec_s
            if work <= 0:
                frac = 1.0
            else:
                frac = min(1.0, max(0.0, remaining) / work)
            remaining -= frac * work
            busy += frac * work
            energy_j += frac * sum(jobs_here) * job_j
            for i in range(N):
                jobs = jobs_here[i]
                res["served"][n][k] += jobs
                res["transfer_cost_usd"][n] += jobs * P["transfer_cost_usd_per_job"][i][n]
                on_time_ok = exec_s + P["transfer_delay_s"][i][n] <= P["deadline_s"][k]
                served = frac * jobs
                if on_time_ok:
                    res["on_time"][n][k] += served
                    res["revenue_usd"][n] += P["price_usd_per_image"][i] * quality * served
                else:
                    res["late"][n][k] += served
                    res["penalty_usd"][n] += P["late_penalty_usd"][i][k] * served
                left = (1.0 - frac) * jobs
                if left > 0:
                    overflow_by_origin_class.append((i, k, left, left * exec_s, left * job_j))
        total_overflow = sum(o[3] for o in overflow_by_origin_class)
        cap = P["backlog_cap_gpu_s"][n] * up_next[n]
        admit = 1.0 if total_overflow <= cap else cap / total_overflow
        for i, k, jobs, work, ej in overflow_by_origin_class:
            res["late"][n][k] += admit * jobs
            res["penalty_usd"][n] += P["late_penalty_usd"][i][k] * admit * jobs
            res["dropped"][n] += (1.0 - admit) * jobs
            res["penalty_usd"][n] += P["drop_penalty_usd"][i] * (1.0 - admit) * jobs
            new_state["backlog_work_gpu_s"][n] += admit * work
            new_state["backlog_energy_j"][n] += admit * ej
            new_state["backlog_jobs"][n] += admit * jobs

        if batch:  # the batch queue after the interactive classes: oldest first, up to the capacity left
            queue = [[state["batch_queue"][i][n][a] for a in range(A)] for i in range(N)]
            for i in range(N):
                routed = b_move[i][n] * exo["batch_arrivals"][i]
                queue[i][0] += routed
                res["transfer_cost_usd"][n] += routed * P["transfer_cost_usd_per_job"][i][n]
            b_exec_s = P["steps_grid"][b_steps[n]] * tau + P["tau_fixed_s"][n]
            b_job_j = P["steps_grid"][b_steps[n]] * power_w * tau + P["energy_fixed_j"][n]
            b_quality = P["quality"][n][b_steps[n]]
            queued = sum(queue[i][a] for i in range(N) for a in range(A))
            to_serve = min(b_serve[n] * queued, max(0.0, remaining) / b_exec_s)
            busy += to_serve * b_exec_s
            energy_j += to_serve * b_job_j
            for a in reversed(range(A)):  # the oldest (nearest its deadline) first
                here = sum(queue[i][a] for i in range(N))
                take = min(to_serve, here)
                to_serve -= take
                share = take / here if here > 0 else 0.0
                for i in range(N):
                    jobs = share * queue[i][a]
                    queue[i][a] -= jobs
                    if a < D:
                        res["batch_on_time"][n] += jobs
                        res["revenue_usd"][n] += P["batch_price_usd_per_image"][i] * b_quality * jobs
                    else:
                        res["batch_late"][n] += jobs
                        res["penalty_usd"][n] += P["batch_late_penalty_usd"][i] * jobs
            for i in range(N):
                for a in range(A):
                    last_age = a == A - 1
                    if last_age or exo["last_slot"]:  # at the horizon, or the day is settled
                        res["batch_dropped"][n] += queue[i][a]
                        res["penalty_usd"][n] += P["drop_penalty_usd"][i] * queue[i][a]
                    else:
                        new_state["batch_queue"][i][n][a + 1] = queue[i][a]
                        res["batch_queue_jobs"][n] += queue[i][a]

        idle_j = P["idle_power_w"][n] * max(0.0, capacity - busy)
        it_kw = (energy_j + idle_j + P["base_power_w"][n] * slot_s) / slot_s / 1000.0
        temp = exo["temp_c"][n]
        pue = P["pue_base"] + P["pue_slope_per_c"] * max(0.0, temp - P["pue_threshold_c"])
        cool_kw = (pue - 1.0) * it_kw
        pv = P["pv_kwp"][n] * exo["pv_kw_per_kwp"][n]
        wind = P["wind_kw"][n] * exo["wind_kw_per_kw"][n]
        load = it_kw + cool_kw - pv - wind
        soc = state["soc"][n]
        e_kwh = P["battery_kwh"][n]
        p_max = P["battery_kw"][n]
        can_charge = min(p_max, max(0.0, P["soc_max"] - soc) * e_kwh / (P["eta_charge"] * slot_h))
        can_discharge = min(p_max, max(0.0, soc - P["soc_min"]) * e_kwh * P["eta_discharge"] / slot_h)
        price = exo["price_usd_per_mwh"][n]
        if P["learned_energy"] and decision.get("battery_frac") is not None:
            cmd = decision["battery_frac"][n] * p_max
            charge = min(max(cmd, 0.0), can_charge)
            discharge = min(max(-cmd, 0.0), can_discharge)
        elif price <= exo["price_low_usd_per_mwh"][n]:
            charge, discharge = can_charge, 0.0
        elif price >= exo["price_high_usd_per_mwh"][n]:
            charge, discharge = 0.0, min(can_discharge, max(load, 0.0))
        else:
            charge, discharge = min(can_charge, max(-load, 0.0)), 0.0
        grid = load + charge - discharge
        buy = max(grid, 0.0)
        export = max(-grid, 0.0)
        curtail = export if (P["curtail_at_negative_price"] and price < 0) else 0.0
        sell = export - curtail
        new_soc = soc + (charge * P["eta_charge"] - discharge / P["eta_discharge"]) * slot_h / e_kwh if e_kwh > 0 else soc
        energy_cost = (buy - P["sell_price_factor"] * sell) * slot_h / 1000.0 * price
        degradation = P["degradation_usd_per_kwh"] * (charge + discharge) * slot_h
        res["it_kw"][n], res["cooling_kw"][n] = it_kw, cool_kw
        res["pv_kw"][n], res["wind_kw"][n] = pv, wind
        res["charge_kw"][n], res["discharge_kw"][n] = charge, discharge
        res["grid_buy_kw"][n], res["grid_sell_kw"][n], res["curtail_kw"][n] = buy, sell, curtail
        res["soc"][n] = new_soc
        new_state["soc"][n] = new_soc
        res["energy_cost_usd"][n] = energy_cost
        res["degradation_usd"][n] = degradation
        res["carbon_kg"][n] = buy * slot_h * exo["carbon_g_per_kwh"][n] / 1000.0
        res["carbon_cost_usd"][n] = res["carbon_kg"][n] * P["carbon_price_usd_per_kg"]
        res["utility_usd"][n] = (res["revenue_usd"][n] - energy_cost - res["transfer_cost_usd"][n]
                                 - res["penalty_usd"][n] - degradation - res["carbon_cost_usd"][n])
        res["backlog_jobs"][n] = new_state["backlog_jobs"][n]
        res["backlog_work_gpu_s"][n] = new_state["backlog_work_gpu_s"][n]
        assert math.isfinite(res["utility_usd"][n])
    return new_state, res
