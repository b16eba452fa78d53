"""A tighter perfect-foresight bound with the env's integer level choice (``dcsched solve --integer-levels``).

The LP bound (:mod:`dcsched.baselines.lp_model`) lets the jobs of a (DC, class) mix step levels
and the jobs of a DC mix frequencies within a slot; the env picks one step level per (DC, class)
and one frequency per DC (``kernels.Decision``). The exact integer program of a whole day (about
30,000 binaries for paper3) is out of reach, so this module bounds it by Lagrangian
decomposition over the slots, which gives a value between the integer optimum and the LP bound:

1. Split the day's LP into slots. Each variable has a slot (its job flows' ``t``; the battery's
   and the grid's row-major ``t``), each row the latest slot of its variables. A variable that a
   later slot's row reads (the soc of t - 1 in slot t's SoC row, the backlog admitted in t - 1
   in slot t's capacity and power rows) gets a copy in that slot, tied by a *coupling* row
   ``x - x_copy = 0``. This is the same LP, with the same optimum.
2. Solve it and take the coupling rows' duals y (HiGHS).
3. Price the coupling rows out: for any y,
   ``L(y) = sum_t max { (c + A_c^T y)_t . x_t : x_t satisfies slot t's own rows }``
   is at least the value of every x that satisfies all rows (the coupling terms vanish there).
   With the LP's slot problems and its optimal y, L(y) equals the LP bound (checked every solve).
4. Add the env's level choice to every slot's problem: binaries z_s[n, k, s] (one step level per
   (DC, class)) and z_f[n, f] (one frequency per DC), each summing to 1, and "the jobs served at
   n in slot t with class k at step s (frequency f) are at most M_tk z_s (M_tk z_f)", with M_tk
   the class's arrivals over all origins (no more jobs of class k can be at n). The backlog
   admitted in t keeps slot t's level (as the kernels do); its copy served in t + 1 has no level
   variable. Each slot's MILP (about 1,500 continuous variables and 165 binaries for paper3) is
   solved by HiGHS; its *dual bound* is used, so a MILP stopped at the time limit still gives
   a valid value.

Every env trajectory satisfies every slot's rows with its own levels as the binaries
(tests/test_integer_bound.py replays random and rule-based days), so the sum is an upper bound
on every policy of the deterministic env. It is at most the LP bound (step 3), and it measures
what the LP's mixing of levels is worth, up to the coupling: with the LP's y the slots are
priced as in the LP, not re-optimised jointly (the other relaxations of the LP stay: free
transfer splits, optional lateness, simultaneous battery flows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from dcsched.baselines.lp_solve import LPResult, LPSolveError, highs_bounds, solve_model_result
from dcsched.baselines.lp_model import Coefficients, LPModel, Window, build_lp, level_coefficients
from dcsched.sim.params import SimParams

JOB_BLOCKS_WITH_LEVEL = ("Yot", "Lc", "Bc")  # jobs placed at a level c in their own slot


@dataclass
class SlotSplit:
    """The LP with every cross-slot read replaced by a copy: the same optimum, slot-separable rows
    except ``coupling`` (equality rows x - x_copy = 0)."""

    model: LPModel  # augmented: originals, then copies; A_eq = [own rows; coupling rows]
    var_slot: np.ndarray  # [n_vars] slot of every variable (copies: the slot that reads them)
    eq_slot: np.ndarray  # [rows of A_eq] slot of each row, -1 for a coupling row
    ub_slot: np.ndarray  # [rows of A_ub]
    num_original: int  # variables of the original LP (the first ones)


@dataclass
class IntegerBoundResult:
    value_usd: float  # the integer-level bound: sum of the slots' MILP dual bounds
    lp_value_usd: float  # the LP bound of the same window
    lagrangian_lp_usd: float  # the same decomposition with LP slot problems (= lp_value_usd up to tolerance)
    primal_usd: float  # sum of the slots' best integer solutions found (the MILPs' gap: value - primal)
    slots_not_proven: int  # slots whose MILP stopped at the time limit (their dual bound is used)
    solve_s: float


def variable_slots(model: LPModel, num_dcs: int) -> np.ndarray:
    """[n] the slot of every LP variable: the first entry of a job block's meta, or index // N for
    the per-(slot, DC) energy blocks."""
    slot = np.empty(model.c.size, dtype=np.int64)
    for name, (off, count, meta) in model.blocks.items():
        slot[off : off + count] = np.asarray(meta[0]) if meta is not None else np.arange(count) // num_dcs
    return slot


def _row_slots(A: sp.csr_matrix, var_slot: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    out = np.zeros(A.shape[0], dtype=np.int64)  # a row without variables (0 <= b) belongs to slot 0
    np.maximum.at(out, rows, var_slot[A.indices])
    return out


def split_by_slot(model: LPModel, num_dcs: int) -> SlotSplit:
    """Step 1 of the module docstring."""
    var_slot = variable_slots(model, num_dcs)
    n = model.c.size
    A_eq, A_ub = model.A_eq.tocsr(), model.A_ub.tocsr()
    eq_slot, ub_slot = _row_slots(A_eq, var_slot), _row_slots(A_ub, var_slot)
    # (variable, reading slot) pairs that need a copy, over both matrices
    pairs = []
    for A, row_slot in ((A_eq, eq_slot), (A_ub, ub_slot)):
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        late = var_slot[A.indices] < row_slot[rows]
        pairs.append(np.stack([A.indices[late], row_slot[rows[late]]], axis=1))
    pairs = np.unique(np.concatenate(pairs), axis=0)  # [copies, 2]: (original column, slot)
    copy_of = {(int(j), int(s)): n + q for q, (j, s) in enumerate(pairs)}

    def redirect(A: sp.csr_matrix, row_slot: np.ndarray) -> sp.csr_matrix:
        A = A.copy()
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        late = np.nonzero(var_slot[A.indices] < row_slot[rows])[0]
        A.indices[late] = [copy_of[(int(A.indices[e]), int(row_slot[rows[e]]))] for e in late]
        return sp.csr_matrix((A.data, A.indices, A.indptr), shape=(A.shape[0], n + len(pairs)))

    q = len(pairs)
    coupling = sp.csr_matrix((np.concatenate([np.ones(q), -np.ones(q)]),
                              (np.tile(np.arange(q), 2), np.concatenate([pairs[:, 0], n + np.arange(q)]))),
                             shape=(q, n + q))
    aug = LPModel(c=np.concatenate([model.c, np.zeros(q)]),
                  A_eq=sp.vstack([redirect(A_eq, eq_slot), coupling]).tocsr(),
                  b_eq=np.concatenate([model.b_eq, np.zeros(q)]),
                  A_ub=redirect(A_ub, ub_slot), b_ub=model.b_ub,
                  lb=np.concatenate([model.lb, model.lb[pairs[:, 0]]]),
                  ub=np.concatenate([model.ub, model.ub[pairs[:, 0]]]),
                  blocks=model.blocks, constant=model.constant)
    return SlotSplit(aug, np.concatenate([var_slot, pairs[:, 1]]), np.concatenate([eq_slot, -np.ones(q, dtype=np.int64)]),
                     ub_slot, n)


def _solve_lp(model: LPModel):
    res = solve_model_result(model)
    if res.status != 0:
        raise LPSolveError(f"the slot-split LP was not solved: {res.message}")
    return res


@dataclass
class SlotProblem:
    """Slot t's own rows over its variables ``cols`` (columns of the split LP), and the level rows
    over [cols, z_s (N*K*S), z_f (N*F)]: first the N*K*S step links, then the N*K*F frequency
    links (jobs - M z <= 0), then the N*K + N "one level" rows (= 1)."""

    cols: np.ndarray
    A_eq: sp.csr_matrix
    b_eq: np.ndarray
    A_ub: sp.csr_matrix
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    A_level: sp.csr_matrix
    level_lo: np.ndarray
    level_hi: np.ndarray
    shape: tuple[int, int, int, int]  # N, K, S, F

    @property
    def num_binaries(self) -> int:
        N, K, S, F = self.shape
        return N * K * S + N * F

    def jobs_per_level(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Jobs of a solution ``x`` (over ``cols``) by (n, k, step) [N, K, S] and by (n, freq) [N, F]."""
        N, K, S, F = self.shape
        load = self.A_level[: N * K * (S + F), : len(self.cols)] @ x
        return load[: N * K * S].reshape(N, K, S), load[N * K * S :].reshape(N, K, F).sum(1)


def level_rows(model: LPModel, coef: Coefficients, arrivals: np.ndarray, slots: np.ndarray, position: np.ndarray,
               num_cont: int, num_dcs: int, num_classes: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, int]:
    """The env's level choice for the window slots ``slots``, as rows over [num_cont continuous
    columns, then per slot z_s (N*K*S), z_f (N*F)]. ``position`` maps the LP's job columns to
    the continuous columns. Per slot: N*K*S step links, N*K*F frequency links (jobs at n, k at that
    level - M z <= 0, M = the class's arrivals over all origins), then N*K + N "one level" rows
    (= 1). Returns (A, lower, upper, number of binaries)."""
    N, K = num_dcs, num_classes
    S, F = int(coef.step_of.max()) + 1, int(coef.freq_of.max()) + 1
    per_slot_bin, per_slot_rows = N * K * S + N * F, N * K * (S + F) + N * K + N
    n_bin = per_slot_bin * len(slots)
    slot_pos = np.full(int(max(slots)) + 1, -1)
    slot_pos[np.asarray(slots)] = np.arange(len(slots))
    rows, cols, vals = [], [], []
    for name in JOB_BLOCKS_WITH_LEVEL:
        off, count, meta = model.blocks[name]
        tt = np.asarray(meta[0])
        mine = np.nonzero((tt <= slot_pos.size - 1) & (slot_pos[np.minimum(tt, slot_pos.size - 1)] >= 0))[0]
        first = 2 if name == "Yot" else 1  # Yot's meta is (t, i, n, k, c), Lc's and Bc's (t, n, k, c)
        nn, kk, cc = (np.asarray(meta[m])[mine] for m in (first, first + 1, first + 2))
        base = slot_pos[tt[mine]] * per_slot_rows
        j = position[off + mine]
        rows += [base + (nn * K + kk) * S + coef.step_of[cc], base + N * K * S + (nn * K + kk) * F + coef.freq_of[cc]]
        cols += [j, j]
        vals += [np.ones(mine.size)] * 2
    n_, k_, s_ = (x.ravel() for x in np.meshgrid(np.arange(N), np.arange(K), np.arange(S), indexing="ij"))
    n2, k2, f2 = (x.ravel() for x in np.meshgrid(np.arange(N), np.arange(K), np.arange(F), indexing="ij"))
    for q, t in enumerate(slots):
        base_r, base_c = q * per_slot_rows, num_cont + q * per_slot_bin
        big_m = arrivals[t].sum(0)  # [K] jobs of class k over all origins: no more can be at any n
        z_s = base_c + (n_ * K + k_) * S + s_
        z_f = base_c + N * K * S + n2 * F + f2
        rows += [base_r + np.arange(N * K * S), base_r + N * K * S + np.arange(N * K * F)]
        cols += [z_s, z_f]
        vals += [-big_m[k_], -big_m[k2]]
        one = base_r + N * K * (S + F)
        rows += [one + (n_ * K + k_), one + N * K + np.repeat(np.arange(N), F)]
        cols += [z_s, base_c + N * K * S + np.arange(N * F)]
        vals += [np.ones(z_s.size), np.ones(N * F)]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(per_slot_rows * len(slots), num_cont + n_bin))
    one_row = np.zeros(per_slot_rows, dtype=bool)
    one_row[N * K * (S + F):] = True
    one_row = np.tile(one_row, len(slots))
    return A, np.where(one_row, 1.0, -np.inf), np.where(one_row, 1.0, 0.0), n_bin


def slot_problem(split: SlotSplit, coef: Coefficients, arrivals: np.ndarray, t: int, num_dcs: int,
                 num_classes: int) -> SlotProblem:
    """Step 4 of the module docstring for slot ``t``; ``arrivals`` [H, N, K] of the window."""
    S, F = int(coef.step_of.max()) + 1, int(coef.freq_of.max()) + 1
    cols = np.nonzero(split.var_slot == t)[0]
    r_eq = np.nonzero(split.eq_slot == t)[0]
    r_ub = np.nonzero(split.ub_slot == t)[0]
    position = np.full(split.var_slot.size, -1)
    position[cols] = np.arange(len(cols))
    A_level, lo, hi, _ = level_rows(split.model, coef, arrivals, np.array([t]), position, len(cols),
                                    num_dcs, num_classes)
    return SlotProblem(cols, split.model.A_eq[r_eq][:, cols], split.model.b_eq[r_eq],
                       split.model.A_ub[r_ub][:, cols], split.model.b_ub[r_ub],
                       split.model.lb[cols], split.model.ub[cols], A_level, lo, hi, (num_dcs, num_classes, S, F))


def _milp(c_max: np.ndarray, A_eq, b_eq, A_ub, b_ub, lb, ub, A_level, level_lo, level_hi, n_bin: int,
          time_limit_s: float, mip_rel_gap: float):
    """HiGHS MILP: maximise c_max . x over the continuous x and ``n_bin`` binaries after it."""
    pad = lambda A: sp.hstack([A, sp.csr_matrix((A.shape[0], n_bin))]).tocsr()  # noqa: E731
    return milp(-np.concatenate([c_max, np.zeros(n_bin)]),
                constraints=[LinearConstraint(pad(A_eq), b_eq, b_eq), LinearConstraint(pad(A_ub), -np.inf, b_ub),
                             LinearConstraint(A_level, level_lo, level_hi)],
                integrality=np.concatenate([np.zeros(c_max.size), np.ones(n_bin)]),
                bounds=Bounds(np.concatenate([lb, np.zeros(n_bin)]), np.concatenate([ub, np.ones(n_bin)])),
                options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False})


def solve_window_integer(p: SimParams, w: Window, what: str, coef: Coefficients | None = None,
                         time_limit_s: float = 60.0, mip_rel_gap: float = 1e-4):
    """The window's LP with the env's level choice in every slot (a MILP, no decomposition): the
    exact planning problem of a policy that plans in the env's own action space (the greedy and
    MPC planners with ``levels=milp``). Returns an LPResult whose ``x`` (the LP's variables, the
    binaries dropped) is the best integer solution found; ``value_usd`` is its objective."""
    t0 = time.perf_counter()
    coef = coef or level_coefficients(p)
    model = build_lp(p, w, coef)
    H, n = w.arrivals.shape[0], model.c.size
    A_level, lo, hi, n_bin = level_rows(model, coef, w.arrivals, np.arange(H), np.arange(n), n,
                                        p.num_dcs, p.num_classes)
    t1 = time.perf_counter()
    out = _milp(model.c, model.A_eq, model.b_eq, model.A_ub, model.b_ub, model.lb, model.ub, A_level, lo, hi, n_bin,
                time_limit_s, mip_rel_gap)
    if out.x is None:
        raise LPSolveError(f"MILP for {what} found no solution: {out.message}")
    return LPResult(-float(out.fun), out.x[:n], model, t1 - t0, time.perf_counter() - t1, n + n_bin,
                    int(model.A_eq.shape[0] + model.A_ub.shape[0] + A_level.shape[0]))


def integer_level_bound(p: SimParams, w: Window, coef: Coefficients | None = None, time_limit_s: float = 60.0,
                        mip_rel_gap: float = 1e-4, check_tol: float = 1e-6, mix_tol_jobs: float = 1e-7
                        ) -> IntegerBoundResult:
    """The integer-level bound of one window (the module docstring). Each slot's LP is solved
    first: if its solution already uses one level per (DC, class) and one frequency per DC (at most
    ``mix_tol_jobs`` jobs elsewhere), its value is the slot's bound (always valid: the LP is a
    relaxation of the MILP); otherwise the MILP's dual bound (``time_limit_s``, ``mip_rel_gap``).
    ``check_tol``: relative tolerance of step 3 (the LP slots' sum = the LP bound)."""
    t0 = time.perf_counter()
    coef = coef or level_coefficients(p)
    split = split_by_slot(build_lp(p, w, coef), p.num_dcs)
    res = _solve_lp(split.model)
    lp_value = float(-res.fun)
    coupling = np.nonzero(split.eq_slot < 0)[0]
    y = np.asarray(res.eqlin.marginals)[coupling]  # duals of the coupling rows (of the min problem)
    priced = split.model.c + split.model.A_eq[coupling].T @ y  # the slots' objectives (step 3)
    lagr_lp = bound = primal = 0.0
    open_slots = 0
    for t in range(w.arrivals.shape[0]):
        sp_ = slot_problem(split, coef, w.arrivals, t, p.num_dcs, p.num_classes)
        ct = priced[sp_.cols]
        relaxed = linprog(-ct, A_ub=sp_.A_ub, b_ub=sp_.b_ub, A_eq=sp_.A_eq, b_eq=sp_.b_eq, method="highs",
                          bounds=highs_bounds(sp_.lb, sp_.ub))
        if relaxed.status != 0:
            raise LPSolveError(f"slot {t}'s LP was not solved: {relaxed.message}")
        lagr_lp += -relaxed.fun
        per_step, per_freq = sp_.jobs_per_level(relaxed.x)
        if not (((per_step > mix_tol_jobs).sum(-1) > 1).any() or ((per_freq > mix_tol_jobs).sum(-1) > 1).any()):
            bound += -relaxed.fun
            primal += -relaxed.fun
            continue
        out = _milp(ct, sp_.A_eq, sp_.b_eq, sp_.A_ub, sp_.b_ub, sp_.lb, sp_.ub, sp_.A_level, sp_.level_lo,
                    sp_.level_hi, sp_.num_binaries, time_limit_s, mip_rel_gap)
        if out.status not in (0, 1) or out.get("mip_dual_bound") is None:
            raise LPSolveError(f"slot {t}'s MILP gave no bound: {out.message}")
        open_slots += int(out.status == 1)
        bound += min(-float(out.mip_dual_bound), -relaxed.fun)
        primal += -float(out.fun) if out.x is not None else float("nan")
    if abs(lagr_lp - lp_value) > check_tol * max(1.0, abs(lp_value)):
        raise LPSolveError(f"the slot decomposition does not reproduce the LP bound: {lagr_lp} != {lp_value}")
    return IntegerBoundResult(bound, lp_value, lagr_lp, primal, open_slots, time.perf_counter() - t0)
