"""Linear program of the system model over a window of slots (MODEL.md sections 5-7, 9).

Built from the same :class:`SimParams` and kernel coefficients as the env (never retyped
constants). Relaxations, each of which can only raise the optimum, so that the value is an
upper bound on every policy of the deterministic env:
- jobs at a DC may be split over step levels and frequency levels (the env uses one step level
  per (DC, class) and one frequency per DC; :mod:`dcsched.baselines.integer_bound` bounds the
  problem without this relaxation);
- transfer fractions are free per (origin, DC, class);
- a job may be declared late even when its level is feasible;
- battery charge and discharge may be simultaneous, curtailment is free.

Variables (all >= 0), by block:
  Yot[t,i,n,k,c]  on-time jobs from origin i served at n in slot t at level c = (step, freq),
                  only for feasible (i, n, k, c);
  Lo[t,i,n,k], Lc[t,n,k,c]   late jobs served this slot: origin part and level part (linked);
  Bo[t,i,n,k], Bc[t,n,k,c]   jobs admitted to the backlog (late), served at level c in slot t+1;
  D[t,i,n,k]      dropped jobs;
  ch, dis, soc, buy, sell, cur [t,n]  battery, state of charge after slot t, grid, curtailment.
With batch work (MODEL.md section 11; Window.batch_arrivals set), per allowed route (t, i, n):
  Rb routed, Yb[t,i,n,c] served on time at level c, Lb served late (levels Lbc[t,n,c]), Mb
  leaving the on-time queue unserved (late, or dropped at once), Xb dropped, Qon / Qlate the
  on-time and late queues after slot t, Wb_on / Wb_all the route's arrivals of the last D_b - 1 /
  A - 1 slots (sliding sums). EDF makes this cumulative form exact for one deadline: after slot t
  the on-time queue holds at most the route's arrivals of the last D_b - 1 slots (Qon <= Wb_on)
  and the whole queue at most those of the last A - 1 (horizon A), with no variable per
  (arrival slot, service slot) pair. A window
  that ends at the day's end settles its queues (Qon = Qlate = 0 after its last slot: the rest
  is dropped, as in the env). Relaxations: service may be split over levels and need not be
  proportional over origins; late work may be served in the slot it turns late.
Constraints: every arriving job is placed once; capacity (backlog from t-1 first); backlog cap;
power balance; SoC dynamics. Faults (``Window.capacity_frac``, ``link_up``) follow the kernels'
rules: capacity and idle power scale with the GPUs up, the backlog admitted in t is capped by
slot t+1's capacity (the window's last slot by its own), no variable routes over a down link. Objective: revenue - penalties - transfer - energy - degradation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from dcsched.sim import physics
from dcsched.sim.params import SimParams


@dataclass
class Coefficients:
    """Per-level coefficients from the kernels' formulas (float64 numpy)."""

    exec_s: np.ndarray  # [N, C]
    energy_j: np.ndarray  # [N, C]
    quality: np.ndarray  # [N, C]
    feasible: np.ndarray  # [N(i), N(n), K, C] bool
    step_of: np.ndarray  # [C] step index
    freq_of: np.ndarray  # [C] frequency index


def level_coefficients(p: SimParams) -> Coefficients:
    import torch

    from dcsched.sim.kernels import job_time_and_energy

    S, F, N = len(p.steps_grid), len(p.freq_levels), p.num_dcs
    step_of = np.repeat(np.arange(S), F)
    freq_of = np.tile(np.arange(F), S)
    p64 = p.to(dtype=torch.float64)
    steps = p64.steps_grid[torch.as_tensor(step_of)].expand(N, -1)  # [N, C] (the kernel's class axis = C)
    # evaluate the kernel formula level by level: treat C as the class axis with one frequency per level
    exec_s = np.empty((N, S * F))
    energy_j = np.empty((N, S * F))
    for f_idx in range(F):  # F is 5: build coefficients once, outside any step
        cols = freq_of == f_idx
        e, ej = job_time_and_energy(p64, steps[:, cols], p64.freq_levels[f_idx].expand(N))
        exec_s[:, cols], energy_j[:, cols] = e.numpy(), ej.numpy()
    quality = p64.quality.numpy()[:, step_of]
    delay = p64.transfer_delay_s.numpy()
    deadline = p64.deadline_s.numpy()
    feasible = (exec_s[None, :, None, :] + delay[:, :, None, None]) <= deadline[None, None, :, None]
    return Coefficients(exec_s, energy_j, quality, feasible, step_of, freq_of)


@dataclass
class Window:
    """Exogenous inputs of H slots, numpy float64: arrivals [H, N, K], the rest [H, N]."""

    arrivals: np.ndarray
    price_usd_per_mwh: np.ndarray
    temp_c: np.ndarray
    pv_kw: np.ndarray  # already times kWp
    wind_kw: np.ndarray
    soc0: np.ndarray = None  # [N] initial SoC
    backlog_work0_gpu_s: np.ndarray = None  # [N] backlog entering the first slot
    backlog_energy0_j: np.ndarray = None
    capacity_frac: np.ndarray = None  # [H, N] share of GPUs up (faults); None = all up
    carbon_g_per_kwh: np.ndarray = None  # [H, N] grid carbon intensity (charged if energy.carbon_price_usd_per_t > 0)
    price_low_usd_per_mwh: np.ndarray = None  # [H, N] the battery rule's thresholds (dispatch-only bound)
    price_high_usd_per_mwh: np.ndarray = None
    link_up: np.ndarray = None  # [H, N, N] 0 where a transfer link is down; None = all up
    batch_arrivals: np.ndarray = None  # [H, N] batch jobs by origin; None = no batch class
    batch_settles: bool = True  # the window ends at the day's end: its batch queues are settled
    batch_ignored: bool = False  # the interactive classes only, on purpose (greedy_myopic's one-slot plan)
    batch_queue0: np.ndarray = None  # [N(i), N(n), A] batch jobs queued by age at the first slot; None = empty


@dataclass
class LPModel:
    c: np.ndarray  # objective to MAXIMISE
    A_eq: sp.csr_matrix
    b_eq: np.ndarray
    A_ub: sp.csr_matrix
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    blocks: dict = field(default_factory=dict)  # name -> (offset, shape, index arrays)
    constant: float = 0.0


class _Builder:
    def __init__(self):
        self.n = 0
        self.blocks = {}
        self.obj, self.lb, self.ub = [], [], []
        self.rows_eq, self.rows_ub = [], []  # (row_ids, col_ids, vals) triplets
        self.b_eq, self.b_ub = [], []
        self.n_eq = self.n_ub = 0

    def add_block(self, name, count, obj, lb=0.0, ub=np.inf, meta=None):
        off = self.n
        self.blocks[name] = (off, count, meta)
        self.n += count
        self.obj.append(np.broadcast_to(np.asarray(obj, dtype=np.float64), (count,)))
        self.lb.append(np.broadcast_to(np.asarray(lb, dtype=np.float64), (count,)))
        self.ub.append(np.broadcast_to(np.asarray(ub, dtype=np.float64), (count,)))
        return np.arange(off, off + count)

    def rows(self, kind, count, rhs):
        start = self.n_eq if kind == "eq" else self.n_ub
        if kind == "eq":
            self.n_eq += count
            self.b_eq.append(np.broadcast_to(np.asarray(rhs, dtype=np.float64), (count,)))
        else:
            self.n_ub += count
            self.b_ub.append(np.broadcast_to(np.asarray(rhs, dtype=np.float64), (count,)))
        return start

    def coef(self, kind, rows, cols, vals):
        rows, cols = np.asarray(rows).ravel(), np.asarray(cols).ravel()
        vals = np.broadcast_to(np.asarray(vals, dtype=np.float64), rows.shape).ravel()
        (self.rows_eq if kind == "eq" else self.rows_ub).append((rows, cols, vals))

    def matrix(self, kind):
        trip = self.rows_eq if kind == "eq" else self.rows_ub
        nrows = self.n_eq if kind == "eq" else self.n_ub
        if not trip:
            return sp.csr_matrix((nrows, self.n))
        r = np.concatenate([t[0] for t in trip])
        c = np.concatenate([t[1] for t in trip])
        v = np.concatenate([t[2] for t in trip])
        return sp.csr_matrix((v, (r, c)), shape=(nrows, self.n))


def battery_modes(w: Window) -> np.ndarray:
    """[H, N] the env's battery rule per slot (MODEL.md section 6), known from prices alone:
    1 = cheap (charge at full power), 2 = dear (discharge to cover the deficit), 0 = otherwise
    (store renewable surplus only)."""
    if w.price_low_usd_per_mwh is None or w.price_high_usd_per_mwh is None:
        raise ValueError("the dispatch-only bound needs the window's price thresholds (window_from_exo sets them)")
    cheap = w.price_usd_per_mwh <= w.price_low_usd_per_mwh
    dear = (w.price_usd_per_mwh >= w.price_high_usd_per_mwh) & ~cheap
    return np.where(cheap, 1, np.where(dear, 2, 0))


def build_lp(p: SimParams, w: Window, coef: Coefficients | None = None, battery_rule: bool = False) -> LPModel:
    """LP of one window of H slots. See the module docstring for the variables.

    One function per family of rows, in this order (the order fixes the matrices' layout):
    :func:`_placement_rows` (a), :func:`_level_link_rows` (b, c), :func:`_capacity_rows` (d),
    :func:`_backlog_cap_rows` (e), :func:`_power_balance_rows` (f), :func:`_soc_rows` (g) and,
    with ``battery_rule``, :func:`_battery_rule_rows`.

    ``battery_rule``: the *dispatch-only* bound, for scenarios whose env runs the battery by its
    price rule (``energy.control: heuristic``): per slot the rule's mode is fixed by the prices
    (:func:`battery_modes`), so the LP may not charge in a dear slot nor discharge outside one,
    may discharge only to cover the DC's own deficit (no battery export) and, in a neutral slot,
    charge only from its renewable surplus. "Up to the deficit" (and "up to the surplus") is not
    convex in the net load; the LP takes its convex hull over the net load's range [-renewables,
    full-load power], and "charge at full power when cheap" is relaxed to "at most". Two valid
    cuts tighten it: exports never exceed the renewables (stored energy is never sold), and in a
    dear slot export and discharge exclude each other (hull: pmax x export + renewables x
    discharge <= renewables x pmax). Every
    trajectory of the env satisfies these rows (tests/test_dispatch_bound.py), so the value still
    bounds every policy, and it is at most the full bound (same LP with more rows)."""
    x = _window_terms(p, w, coef or level_coefficients(p))
    b = _Builder()
    v = _variables(b, p, w, x)
    _placement_rows(b, w, x, v)
    _level_link_rows(b, x, v)
    _capacity_rows(b, x, v)
    _backlog_cap_rows(b, x, v)
    pue = _power_balance_rows(b, p, w, x, v)
    if w.batch_arrivals is not None and not p.has_batch:
        raise ValueError("the window has batch arrivals but the scenario has no batch class (scenario.batch.share = 0)")
    if p.has_batch and w.batch_arrivals is None and not w.batch_ignored:
        raise ValueError("the scenario has a batch class: its window needs batch_arrivals (window_from_exo sets them)")
    _soc_rows(b, p, x, v)
    if w.batch_arrivals is not None:
        _batch_rows(b, p, w, x, v, pue)
    if battery_rule and not p.learned_energy:
        _battery_rule_rows(b, p, w, x.coef, pue, dict(ch=v.ch, dis=v.dis, buy=v.buy, sell=v.sell, cur=v.cur))
    return LPModel(
        c=np.concatenate(b.obj), A_eq=b.matrix("eq"), b_eq=np.concatenate(b.b_eq), A_ub=b.matrix("ub"),
        b_ub=np.concatenate(b.b_ub), lb=np.concatenate(b.lb), ub=np.concatenate(b.ub), blocks=b.blocks)


@dataclass
class _Terms:
    """What the row families share: sizes (H slots, N DCs, K classes, C levels), the scenario's
    parameters as numpy arrays (``pn``), the window's availability and initial state, and the index
    arrays of the job variables (set by :func:`_variables`)."""

    coef: Coefficients
    H: int
    N: int
    K: int
    C: int
    slot_s: float
    slot_h: float
    pn: dict
    allowed_t: np.ndarray  # [H, N, N] a link that may carry jobs in slot t
    up: np.ndarray  # [H, N] the share of each DC's GPUs up
    up_next: np.ndarray  # [H, N] the share up in the next slot (the backlog admitted in t is served in t + 1)
    soc0: np.ndarray  # [N]
    bw0: np.ndarray  # [N] initial backlog work, GPU-s
    be0: np.ndarray  # [N] initial backlog energy, J
    rows_cap: int = 0  # first row of the capacity family (d)
    rows_pb: int = 0  # first row of the power balance family (f)
    idx: np.ndarray = None  # (t, i, n, k, c) of the served-on-time variables
    origin_idx: np.ndarray = None  # (t, i, n, k) of the late / backlog / drop origin variables
    level_idx: np.ndarray = None  # (t, n, k, c) of the late / backlog level variables

    def tn(self, t, n):
        """The row offset of (slot t, DC n) in a per-(t, n) family."""
        return t * self.N + n


@dataclass
class _Variables:
    """The column blocks of :func:`build_lp` (index arrays into the variable vector)."""

    yot: np.ndarray
    late_o: np.ndarray
    back_o: np.ndarray
    drop: np.ndarray
    late_c: np.ndarray
    back_c: np.ndarray
    ch: np.ndarray
    dis: np.ndarray
    soc: np.ndarray
    buy: np.ndarray
    sell: np.ndarray
    cur: np.ndarray


def _window_terms(p: SimParams, w: Window, coef: Coefficients) -> _Terms:
    import torch

    H, N, K = w.arrivals.shape
    pn = {k: (v.detach().double().numpy() if isinstance(v, torch.Tensor) else v) for k, v in vars(p).items()}
    allowed = np.ones((N, N), dtype=bool) if p.allow_transfer else np.eye(N, dtype=bool)
    allowed_t = np.broadcast_to(allowed, (H, N, N))  # [t, i, n]: a down link carries nothing
    if w.link_up is not None:
        allowed_t = allowed_t & ((w.link_up > 0) | np.eye(N, dtype=bool))
    up = np.ones((H, N)) if w.capacity_frac is None else w.capacity_frac  # [t, n]
    return _Terms(coef=coef, H=H, N=N, K=K, C=coef.exec_s.shape[1], slot_s=p.slot_s, slot_h=p.slot_s / 3600.0, pn=pn,
                  allowed_t=allowed_t, up=up, up_next=np.concatenate([up[1:], up[-1:]]),
                  soc0=w.soc0 if w.soc0 is not None else np.full(N, p.soc_init),
                  bw0=w.backlog_work0_gpu_s if w.backlog_work0_gpu_s is not None else np.zeros(N),
                  be0=w.backlog_energy0_j if w.backlog_energy0_j is not None else np.zeros(N))


def _variables(b: _Builder, p: SimParams, w: Window, x: _Terms) -> _Variables:
    """Every column with its objective coefficient and bounds: jobs served on time (per origin,
    DC, class, level), late / backlogged / dropped jobs (per origin and per level), battery flows
    and state of charge, grid purchase and sale, curtailment."""
    H, N, K, C, pn, coef = x.H, x.N, x.K, x.C, x.pn, x.coef
    rho, psi, psi_drop = pn["price_usd_per_image"], pn["late_penalty_usd"], pn["drop_penalty_usd"]
    ctr = pn["transfer_cost_usd_per_job"]
    feas = coef.feasible[None] & x.allowed_t[:, :, :, None, None]  # [t, i, n, k, c]
    ti, ii, nn, kk, cc = x.idx = np.nonzero(feas)
    yot = b.add_block("Yot", len(ti), rho[ii] * coef.quality[nn, cc] - ctr[ii, nn], meta=(ti, ii, nn, kk, cc))
    grid_o = np.array(np.meshgrid(np.arange(H), np.arange(N), np.arange(N), np.arange(K), indexing="ij")).reshape(4, -1)
    ok = x.allowed_t[grid_o[0], grid_o[1], grid_o[2]]
    to, io, no, ko = x.origin_idx = grid_o[:, ok]
    late_o = b.add_block("Lo", len(to), -psi[io, ko] - ctr[io, no], meta=(to, io, no, ko))
    back_o = b.add_block("Bo", len(to), -psi[io, ko] - ctr[io, no], meta=(to, io, no, ko))
    drop = b.add_block("D", len(to), -psi_drop[io] - ctr[io, no], meta=(to, io, no, ko))
    grid_c = np.array(np.meshgrid(np.arange(H), np.arange(N), np.arange(K), np.arange(C), indexing="ij")).reshape(4, -1)
    tc, nc, kc, ccc = x.level_idx = grid_c
    late_c = b.add_block("Lc", len(tc), 0.0, meta=(tc, nc, kc, ccc))
    back_c = b.add_block("Bc", len(tc), 0.0, meta=(tc, nc, kc, ccc))
    price = w.price_usd_per_mwh
    has_batt = pn["battery_kwh"] > 0
    pmax = np.where(has_batt, pn["battery_kw"], 0.0)
    wear_usd_per_kw = physics.degradation_usd(1.0, 0.0, p.degradation_usd_per_kwh, x.slot_h)  # per kW of either flow
    ch = b.add_block("charge", H * N, -wear_usd_per_kw, ub=np.tile(pmax, H))
    dis = b.add_block("discharge", H * N, -wear_usd_per_kw, ub=np.tile(pmax, H))
    soc_lb = np.tile(np.where(has_batt, p.soc_min, x.soc0), H)
    soc_ub = np.tile(np.where(has_batt, p.soc_max, x.soc0), H)
    soc = b.add_block("soc", H * N, 0.0, lb=soc_lb, ub=soc_ub)
    renew = (w.pv_kw + w.wind_kw).reshape(-1)
    if p.curtail_at_negative_price:
        sell_ub = np.where(price.reshape(-1) < 0, 0.0, np.inf)
        buy_ub = np.inf
    else:  # selling at a loss is possible in the env: bound buy/sell arbitrage by physical limits
        pue_max = physics.pue(w.temp_c, p.pue_base, p.pue_slope_per_c, p.pue_threshold_c)  # [H, N]
        full_it_kw = physics.it_power_kw(pn["num_gpus"] * pn["busy_power_w"] * x.slot_s, 0.0, pn["idle_power_w"],
                                         pn["base_power_w"], x.slot_s)  # every GPU busy at f_max
        buy_ub = (pue_max * full_it_kw[None, :] + pmax[None, :]).reshape(-1)
        sell_ub = renew + np.tile(pmax, H)
    flat_price = price.reshape(-1)
    buy_usd_per_kw = physics.grid_cost_usd(1.0, 0.0, flat_price, p.sell_price_factor, x.slot_h)
    if p.carbon_price_usd_per_kg:  # the kernels' carbon charge: kW x h x g/kWh / 1000 = kg
        buy_usd_per_kw = buy_usd_per_kw + x.slot_h * w.carbon_g_per_kwh.reshape(-1) / 1000.0 * p.carbon_price_usd_per_kg
    buy = b.add_block("buy", H * N, -buy_usd_per_kw, ub=buy_ub)
    sell = b.add_block("sell", H * N, -physics.grid_cost_usd(0.0, 1.0, flat_price, p.sell_price_factor, x.slot_h),
                       ub=sell_ub)
    cur = b.add_block("curtail", H * N, 0.0, ub=renew)
    return _Variables(yot, late_o, back_o, drop, late_c, back_c, ch, dis, soc, buy, sell, cur)


def _placement_rows(b: _Builder, w: Window, x: _Terms, v: _Variables) -> None:
    """(a) Every arriving job is placed once, per (t, i, k): served on time somewhere, late,
    backlogged or dropped."""
    H, N, K = x.H, x.N, x.K
    ti, ii, nn, kk, cc = x.idx
    to, io, no, ko = x.origin_idx
    r0 = b.rows("eq", H * N * K, w.arrivals.reshape(-1))
    row_tik = lambda t, i, k: r0 + (t * N + i) * K + k  # noqa: E731
    b.coef("eq", row_tik(ti, ii, kk), v.yot, 1.0)
    for block in (v.late_o, v.back_o, v.drop):
        b.coef("eq", row_tik(to, io, ko), block, 1.0)


def _level_link_rows(b: _Builder, x: _Terms, v: _Variables) -> None:
    """(b, c) Late and backlog links, per (t, n, k): the jobs sent from every origin equal the jobs
    over the levels they run at."""
    H, N, K = x.H, x.N, x.K
    to, io, no, ko = x.origin_idx
    tc, nc, kc, ccc = x.level_idx
    for origin_block, level_block in ((v.late_o, v.late_c), (v.back_o, v.back_c)):
        r = b.rows("eq", H * N * K, 0.0)
        b.coef("eq", r + (to * N + no) * K + ko, origin_block, 1.0)
        b.coef("eq", r + (tc * N + nc) * K + kc, level_block, -1.0)


def _capacity_rows(b: _Builder, x: _Terms, v: _Variables) -> None:
    """(d) Capacity per (t, n): this slot's served work plus the backlog admitted in t - 1."""
    H, N, coef = x.H, x.N, x.coef
    ti, ii, nn, kk, cc = x.idx
    tc, nc, kc, ccc = x.level_idx
    cap = x.pn["capacity_gpu_s"]
    r_cap = x.rows_cap = b.rows("ub", H * N, (cap[None, :] * x.up).reshape(-1) - np.concatenate([x.bw0, np.zeros((H - 1) * N)]))
    b.coef("ub", r_cap + x.tn(ti, nn), v.yot, coef.exec_s[nn, cc])
    b.coef("ub", r_cap + x.tn(tc, nc), v.late_c, coef.exec_s[nc, ccc])
    nxt = tc + 1 < H
    b.coef("ub", r_cap + x.tn(tc[nxt] + 1, nc[nxt]), v.back_c[nxt], coef.exec_s[nc[nxt], ccc[nxt]])


def _backlog_cap_rows(b: _Builder, x: _Terms, v: _Variables) -> None:
    """(e) The backlog admitted per (t, n) is at most the backlog cap of the GPUs up in t + 1."""
    tc, nc, kc, ccc = x.level_idx
    r_bc = b.rows("ub", x.H * x.N, (x.pn["backlog_cap_gpu_s"][None, :] * x.up_next).reshape(-1))
    b.coef("ub", r_bc + x.tn(tc, nc), v.back_c, x.coef.exec_s[nc, ccc])


def _power_balance_rows(b: _Builder, p: SimParams, w: Window, x: _Terms, v: _Variables) -> np.ndarray:
    """(f) Power balance per (t, n): grid purchase - sale - curtailment - charge + discharge =
    PUE x IT power - renewables. IT power is linear in (served energy, idle GPU-seconds, base
    power), split into its parts. Returns the PUE [H, N] (the battery rule's rows use it)."""
    H, N, coef, pn, slot_s = x.H, x.N, x.coef, x.pn, x.slot_s
    ti, ii, nn, kk, cc = x.idx
    tc, nc, kc, ccc = x.level_idx
    idle_w, base_w = pn["idle_power_w"], pn["base_power_w"]
    pue = physics.pue(w.temp_c, p.pue_base, p.pue_slope_per_c, p.pue_threshold_c)  # [H, N]
    it_const_kw = physics.it_power_kw(0.0, pn["capacity_gpu_s"][None, :] * x.up, idle_w, base_w, slot_s)  # all up GPUs idle
    it_b0_kw = physics.it_power_kw(x.be0, -x.bw0, idle_w, 0.0, slot_s)  # initial backlog's energy net of idle
    rhs = pue * it_const_kw - w.pv_kw - w.wind_kw
    rhs[0] += pue[0] * it_b0_kw
    r_pb = x.rows_pb = b.rows("eq", H * N, rhs.reshape(-1))
    per_job_kw = physics.it_power_kw(coef.energy_j, -coef.exec_s, idle_w[:, None], 0.0, slot_s)  # [N, C]
    b.coef("eq", r_pb + x.tn(ti, nn), v.yot, -pue[ti, nn] * per_job_kw[nn, cc])
    b.coef("eq", r_pb + x.tn(tc, nc), v.late_c, -pue[tc, nc] * per_job_kw[nc, ccc])
    nxt = tc + 1 < H
    b.coef("eq", r_pb + x.tn(tc[nxt] + 1, nc[nxt]), v.back_c[nxt],
           -pue[tc[nxt] + 1, nc[nxt]] * per_job_kw[nc[nxt], ccc[nxt]])
    idx = np.arange(H * N)
    b.coef("eq", r_pb + idx, v.buy, 1.0)
    b.coef("eq", r_pb + idx, v.sell, -1.0)
    b.coef("eq", r_pb + idx, v.cur, -1.0)
    b.coef("eq", r_pb + idx, v.ch, -1.0)
    b.coef("eq", r_pb + idx, v.dis, 1.0)
    return pue


def _soc_rows(b: _Builder, p: SimParams, x: _Terms, v: _Variables) -> None:
    """(g) State-of-charge dynamics per (t, n), from the initial SoC."""
    H, N, pn = x.H, x.N, x.pn
    e_kwh = np.where(pn["battery_kwh"] > 0, pn["battery_kwh"], 1.0)
    rhs = np.zeros((H, N))
    rhs[0] = x.soc0
    r_soc = b.rows("eq", H * N, rhs.reshape(-1))
    idx = np.arange(H * N)
    b.coef("eq", r_soc + idx, v.soc, 1.0)
    prev = idx // N > 0
    b.coef("eq", r_soc + idx[prev], v.soc[idx[prev] - N], -1.0)
    kwh = np.tile(e_kwh, H)
    b.coef("eq", r_soc + idx, v.ch, -physics.soc_next(0.0, 1.0, 0.0, p.eta_charge, p.eta_discharge, x.slot_h, kwh))
    b.coef("eq", r_soc + idx, v.dis, -physics.soc_next(0.0, 0.0, 1.0, p.eta_charge, p.eta_discharge, x.slot_h, kwh))


def _batch_rows(b: _Builder, p: SimParams, w: Window, x: _Terms, v: _Variables, pue: np.ndarray) -> None:
    """The batch class's columns and rows (module docstring). Its work enters the capacity rows (d)
    and the power balance (f) built before, which are appended to here by (row, column) triplets."""
    H, N, C, pn, coef = x.H, x.N, x.C, x.pn, x.coef
    D, A = p.batch_deadline_slots, p.batch_horizon_slots
    rho_b, psi_b, psi_drop = pn["batch_price_usd_per_image"], pn["batch_late_penalty_usd"], pn["drop_penalty_usd"]
    ctr = pn["transfer_cost_usd_per_job"]
    # every route the scenario allows, in every slot: a queue outlives a link that goes down (queued
    # work does not move); only new work needs the link (Rb is 0 while it is down)
    static = np.ones((N, N), dtype=bool) if p.allow_transfer else np.eye(N, dtype=bool)
    routes = np.array(np.meshgrid(np.arange(H), np.arange(N), np.arange(N), indexing="ij")).reshape(3, -1)
    tr, ir, nr = routes[:, static[routes[1], routes[2]]]
    R = len(tr)
    route_of = -np.ones((H, N, N), dtype=np.int64)  # (t, i, n) -> position in the route blocks
    route_of[tr, ir, nr] = np.arange(R)
    routed = b.add_block("Rb", R, -ctr[ir, nr], ub=np.where(x.allowed_t[tr, ir, nr], np.inf, 0.0), meta=(tr, ir, nr))
    w_on = b.add_block("Wb_on", R, 0.0, meta=(tr, ir, nr))  # the route's arrivals of the last D_b - 1 slots
    w_all = b.add_block("Wb_all", R, 0.0, meta=(tr, ir, nr))  # ... of the last A - 1 slots
    tyc, iyc, nyc, cyc = (np.repeat(tr, C), np.repeat(ir, C), np.repeat(nr, C), np.tile(np.arange(C), R))
    yb = b.add_block("Yb", R * C, rho_b[iyc] * coef.quality[nyc, cyc], meta=(tyc, iyc, nyc, cyc))
    late = b.add_block("Lb", R, -psi_b[ir], meta=(tr, ir, nr))
    leave = b.add_block("Mb", R, 0.0, meta=(tr, ir, nr))
    drop = b.add_block("Xb", R, -psi_drop[ir], meta=(tr, ir, nr))
    last = (tr == H - 1) & w.batch_settles
    q_ub = np.where(last, 0.0, np.inf)
    q_on = b.add_block("Qon", R, 0.0, ub=q_ub, meta=(tr, ir, nr))
    q_late = b.add_block("Qlate", R, 0.0, ub=q_ub, meta=(tr, ir, nr))
    grid_c = np.array(np.meshgrid(np.arange(H), np.arange(N), np.arange(C), indexing="ij")).reshape(3, -1)
    tlc, nlc, clc = grid_c
    late_c = b.add_block("Lbc", len(tlc), 0.0, meta=(tlc, nlc, clc))
    rows = np.arange(R)
    prev = route_of[np.maximum(tr - 1, 0), ir, nr]
    has_prev = tr > 0
    # the queue entering the window, by age at its first slot (index 0 empty): on time while age < D
    q0 = np.zeros((N, N, A)) if w.batch_queue0 is None else np.asarray(w.batch_queue0, dtype=np.float64)
    first = tr == 0
    ages = np.arange(A)
    on0 = np.where(first, q0[ir, nr][:, :D].sum(-1), 0.0)
    late0 = np.where(first, q0[ir, nr][:, D:].sum(-1), 0.0)
    # the initial jobs a queue may still hold after slot t: on time (age at t + 1 below D) / at all (below A)
    still = lambda span: (q0[ir, nr] * ((ages[None, :] + tr[:, None] + 1) < span)).sum(-1)  # noqa: E731
    # placement per (t, i): every batch arrival is routed once
    r = b.rows("eq", H * N, w.batch_arrivals.reshape(-1))
    b.coef("eq", r + tr * N + ir, routed, 1.0)
    # on-time queue: Qon[t] - Qon[t-1] - Rb[t] + sum_c Yb[t, c] + Mb[t] = 0 (t = 0: the initial on-time queue)
    r = b.rows("eq", R, on0)
    b.coef("eq", r + rows, q_on, 1.0)
    b.coef("eq", r + rows[has_prev], q_on[prev[has_prev]], -1.0)
    b.coef("eq", r + rows, routed, -1.0)
    b.coef("eq", r + np.repeat(rows, C), yb, 1.0)
    b.coef("eq", r + rows, leave, 1.0)
    # late queue: Qlate[t] - Qlate[t-1] - Mb[t] + Lb[t] + Xb[t] = 0 (t = 0: the initial late queue)
    r = b.rows("eq", R, late0)
    b.coef("eq", r + rows, q_late, 1.0)
    b.coef("eq", r + rows[has_prev], q_late[prev[has_prev]], -1.0)
    b.coef("eq", r + rows, leave, -1.0)
    b.coef("eq", r + rows, late, 1.0)
    b.coef("eq", r + rows, drop, 1.0)
    # deadline (on-time queue) and horizon (whole queue): at most the route's arrivals of the last
    # span - 1 slots, W[t] = W[t-1] + Rb[t] - Rb[t-span+1] (a sliding sum: 4 entries a row, and
    # every variable on the scale of a queue, which keeps the LP well conditioned)
    for span, window, queues in ((D, w_on, (q_on,)), (A, w_all, (q_on, q_late))):
        r = b.rows("eq", R, 0.0)
        b.coef("eq", r + rows, window, 1.0)
        b.coef("eq", r + rows[has_prev], window[prev[has_prev]], -1.0)
        b.coef("eq", r + rows, routed, -1.0)
        back = tr - span + 1
        older = back >= 0
        b.coef("eq", r + rows[older], routed[route_of[back[older], ir[older], nr[older]]], 1.0)
        r = b.rows("ub", R, still(span))
        for q in queues:
            b.coef("ub", r + rows, q, 1.0)
        b.coef("ub", r + rows, window, -1.0)
    # late service over levels, per (t, n): sum_i Lb = sum_c Lbc
    r = b.rows("eq", H * N, 0.0)
    b.coef("eq", r + tr * N + nr, late, 1.0)
    b.coef("eq", r + tlc * N + nlc, late_c, -1.0)
    # capacity (d) and power balance (f): the rows of (t, n) are the first H * N of their families
    r_cap, r_pb = x.rows_cap, x.rows_pb
    b.coef("ub", r_cap + x.tn(tyc, nyc), yb, coef.exec_s[nyc, cyc])
    b.coef("ub", r_cap + x.tn(tlc, nlc), late_c, coef.exec_s[nlc, clc])
    per_job_kw = physics.it_power_kw(coef.energy_j, -coef.exec_s, pn["idle_power_w"][:, None], 0.0, x.slot_s)
    b.coef("eq", r_pb + x.tn(tyc, nyc), yb, -pue[tyc, nyc] * per_job_kw[nyc, cyc])
    b.coef("eq", r_pb + x.tn(tlc, nlc), late_c, -pue[tlc, nlc] * per_job_kw[nlc, clc])


def _battery_rule_rows(b: _Builder, p: SimParams, w: Window, coef: Coefficients, pue: np.ndarray,
                       v: dict[str, np.ndarray]) -> None:
    """The dispatch-only rows of :func:`build_lp` (``battery_rule``). Net load = IT + cooling -
    renewables = buy - sell - curtail - charge + discharge, within [lo, hi] = [-renewables,
    PUE x the most IT power a slot can draw]."""
    H, N = w.price_usd_per_mwh.shape
    mode = battery_modes(w).reshape(-1)  # [H*N]
    idx = np.arange(H * N)
    renew = (w.pv_kw + w.wind_kw).reshape(-1)  # = -lo >= 0
    num_gpus = p.num_gpus.detach().double().cpu().numpy()
    idle_w = p.idle_power_w.detach().double().cpu().numpy()
    base_w = p.base_power_w.detach().double().cpu().numpy()
    gpu_w = np.maximum((coef.energy_j / coef.exec_s).max(1), idle_w)  # [N] the most a busy GPU-second draws
    hi = (pue * ((num_gpus * gpu_w + base_w) / 1000.0)[None, :]).reshape(-1)  # [H*N] kW, > 0
    ub = np.concatenate(b.ub)  # mode-fixed flows: upper bound 0
    ub[v["dis"][mode != 2]] = 0.0  # discharge only when dear
    ub[v["ch"][mode == 2]] = 0.0  # never charge when dear
    b.ub = [ub]
    # dear: discharge <= max(0, net), hull: renew * dis - hi * (buy - sell - cur) <= hi * renew
    dear = idx[mode == 2]
    r = b.rows("ub", len(dear), hi[dear] * renew[dear])
    rows = r + np.arange(len(dear))
    b.coef("ub", rows, v["dis"][dear], renew[dear])
    b.coef("ub", rows, v["buy"][dear], -hi[dear])
    b.coef("ub", rows, v["sell"][dear], hi[dear])
    b.coef("ub", rows, v["cur"][dear], hi[dear])
    # every slot: only renewables are exported (the rule never exports stored energy)
    r = b.rows("ub", H * N, renew)
    b.coef("ub", r + idx, v["sell"], 1.0)
    b.coef("ub", r + idx, v["cur"], 1.0)
    # dear: export and discharge never together (export only when net < 0, discharge only when
    # net > 0); hull over [0, renew] x [0, battery power]: pmax * export + renew * dis <= renew * pmax
    pmax = np.tile(np.where(p.battery_kwh.detach().cpu().numpy() > 0, p.battery_kw.detach().double().cpu().numpy(), 0.0), H)
    r = b.rows("ub", len(dear), renew[dear] * pmax[dear])
    rows = r + np.arange(len(dear))
    b.coef("ub", rows, v["sell"][dear], pmax[dear])
    b.coef("ub", rows, v["cur"][dear], pmax[dear])
    b.coef("ub", rows, v["dis"][dear], renew[dear])
    # neutral: charge <= max(0, -net), hull: hi * ch + renew * (buy - sell - cur) <= hi * renew
    neutral = idx[mode == 0]
    r = b.rows("ub", len(neutral), hi[neutral] * renew[neutral])
    rows = r + np.arange(len(neutral))
    b.coef("ub", rows, v["ch"][neutral], hi[neutral])
    b.coef("ub", rows, v["buy"][neutral], renew[neutral])
    b.coef("ub", rows, v["sell"][neutral], -renew[neutral])
    b.coef("ub", rows, v["cur"][neutral], -renew[neutral])
