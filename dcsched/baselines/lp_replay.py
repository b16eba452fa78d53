"""Map a simulated day onto the LP's variables (consistency checks of the LP against the env).

``replay_day`` runs the kernels for one deterministic day with any decision function and keeps
the full per-slot flows; ``trajectory_vector`` places them in the LP's variable vector. The LP's
objective at that vector must equal the simulated utility, and the vector must satisfy the LP's
constraints (tests/test_lp.py).
"""

from __future__ import annotations

import numpy as np
import torch

from dcsched.baselines.lp_model import LPModel
from dcsched.sim import kernels


def replay_day(p, exo, day: int, decide) -> list[dict]:
    """decide(t, state) -> Decision for batch 1. Returns per-slot outcome dicts (numpy, batch 1 squeezed)."""
    state = kernels.initial_state(p, (1,))
    T = exo.price_usd_per_mwh.shape[1]
    keys = ("price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
            "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw")
    out = []
    for t in range(T):
        ex = {k: getattr(exo, k)[day : day + 1, t] for k in keys}
        ex.update(exo.faults_at(torch.tensor([day]), torch.tensor([t])))  # faults, as the env passes them
        if p.has_batch:
            ex["batch_arrivals"] = exo.batch_arrival_rate[day : day + 1, t]
            ex["last_slot"] = torch.tensor([t == T - 1])
        d = kernels.default_batch_decision(p, decide(t, state))
        state, o = kernels.step(p, state, exo.arrival_rate[day : day + 1, t], d, ex)
        rec = {k: v[0].detach().cpu().numpy() for k, v in o.items()}
        if p.has_batch:
            rec["batch_queue_next"] = state.batch_queue[0].cpu().numpy()  # [i, n, age at the next slot]
            rec["batch_steps_idx"] = d.batch_steps_idx[0].cpu().numpy()
            rec["batch_deadline_slots"] = p.batch_deadline_slots  # (the horizon is the queue's last axis)
        rec["steps_idx"] = d.steps_idx[0].cpu().numpy()
        rec["freq_idx"] = d.freq_idx[0].cpu().numpy()
        out.append(rec)
    return out


def trajectory_vector(model: LPModel, slots: list[dict], num_freq: int, batch_queue0: np.ndarray | None = None) -> np.ndarray:
    """The LP's variable vector of replayed slots (a window: ``slots`` from its first slot;
    ``batch_queue0`` the batch queue entering it, by age, None when empty)."""
    x = np.zeros(model.c.size)
    H = len(slots)
    N, _, K = slots[0]["flow_on_time"].shape

    def put(name, values):
        off, count, meta = model.blocks[name]
        lookup = {key: off + j for j, key in enumerate(zip(*meta))}
        for key, v in values:
            if abs(v) < 1e-15:
                continue
            if key not in lookup:
                raise KeyError(f"{name}{key} has {v} but is not an LP variable (infeasible level used on time?)")
            x[lookup[key]] += v

    yot, lo, lc, bo, bc, dr = [], [], [], [], [], []
    ch = np.zeros((H, N)); dis = ch.copy(); soc = ch.copy(); buy = ch.copy(); sell = ch.copy(); cur = ch.copy()
    for t, s in enumerate(slots):
        level = s["steps_idx"] * num_freq + s["freq_idx"][:, None]  # [n, k]
        late_served = s["flow_late"] - s["flow_backlogged"]
        for i in range(N):
            for n in range(N):
                for k in range(K):
                    c = int(level[n, k])
                    yot.append(((t, i, n, k, c), s["flow_on_time"][i, n, k]))
                    lo.append(((t, i, n, k), late_served[i, n, k]))
                    bo.append(((t, i, n, k), s["flow_backlogged"][i, n, k]))
                    dr.append(((t, i, n, k), s["flow_dropped_k"][i, n, k]))
                    lc.append(((t, n, k, c), late_served[i, n, k]))
                    bc.append(((t, n, k, c), s["flow_backlogged"][i, n, k]))
        ch[t], dis[t], soc[t] = s["charge_kw"], s["discharge_kw"], s["soc"]
        buy[t], sell[t], cur[t] = s["grid_buy_kw"], s["grid_sell_kw"], s["curtail_kw"]
    put("Yot", yot)
    put("Lo", lo)
    put("Bo", bo)
    put("D", dr)
    put("Lc", lc)
    put("Bc", bc)
    for name, arr in (("charge", ch), ("discharge", dis), ("soc", soc), ("buy", buy), ("sell", sell), ("curtail", cur)):
        off, count, _ = model.blocks[name]
        x[off : off + count] = arr.reshape(-1)
    if "Rb" in model.blocks:
        _put_batch(model, slots, num_freq, x, put, batch_queue0)
    return x


def _put_batch(model: LPModel, slots: list[dict], num_freq: int, x: np.ndarray, put, queue0=None) -> None:
    """The batch blocks of a replayed day: flows from the outcome, the queues from the env's state
    (ages below the deadline at the next slot: on time), Mb by the on-time queue's balance."""
    N = slots[0]["flow_batch_routed"].shape[0]
    D, A = int(slots[0]["batch_deadline_slots"]), slots[0]["batch_queue_next"].shape[-1]
    routed = np.stack([s["flow_batch_routed"] for s in slots])  # [H, i, n]
    q_on_prev = np.zeros((N, N)) if queue0 is None else queue0[..., :D].sum(-1)
    rb, w_on, w_all, yb, lb, lbc, mb, xb, qon, qlate = ([] for _ in range(10))
    for t, s in enumerate(slots):
        level = s["batch_steps_idx"] * num_freq + s["freq_idx"]  # [n]
        queue = s["batch_queue_next"]  # [i, n, A]
        q_on = queue[..., :D].sum(-1)
        q_late = queue[..., D:].sum(-1)
        recent_on = routed[max(0, t - D + 2) : t + 1].sum(0)  # arrivals of the last D - 1 slots
        recent_all = routed[max(0, t - A + 2) : t + 1].sum(0)
        leave = q_on_prev + s["flow_batch_routed"] - s["flow_batch_on_time"] - q_on
        for i in range(N):
            for n in range(N):
                key = (t, i, n)
                rb.append((key, s["flow_batch_routed"][i, n]))
                w_on.append((key, recent_on[i, n]))
                w_all.append((key, recent_all[i, n]))
                yb.append(((t, i, n, int(level[n])), s["flow_batch_on_time"][i, n]))
                lb.append((key, s["flow_batch_late"][i, n]))
                lbc.append(((t, n, int(level[n])), s["flow_batch_late"][i, n]))
                mb.append((key, leave[i, n]))
                xb.append((key, s["flow_batch_dropped"][i, n]))
                qon.append((key, q_on[i, n]))
                qlate.append((key, q_late[i, n]))
        q_on_prev = q_on
    for name, values in (("Rb", rb), ("Wb_on", w_on), ("Wb_all", w_all), ("Yb", yb), ("Lb", lb), ("Lbc", lbc), ("Mb", mb), ("Xb", xb),
                         ("Qon", qon), ("Qlate", qlate)):
        put(name, values)


def max_violation(model: LPModel, x: np.ndarray) -> float:
    """Largest constraint or bound violation of x (absolute)."""
    eq = np.abs(model.A_eq @ x - model.b_eq).max(initial=0.0)
    ub = np.maximum(model.A_ub @ x - model.b_ub, 0.0).max(initial=0.0)
    lo = np.maximum(model.lb - x, 0.0).max(initial=0.0)
    hi = np.maximum(x - model.ub, 0.0).max(initial=0.0)
    return float(max(eq, ub, lo, hi))
