"""The LP solver primitives: one window's data from the exogenous tensors, HiGHS on an
:class:`~dcsched.baselines.lp_model.LPModel`, and the solved result. Below both bounds (the LP,
:mod:`dcsched.baselines.lp_bound`, and the integer-level one, :mod:`dcsched.baselines.integer_bound`)
and the planners."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from dcsched.baselines.lp_model import Coefficients, LPModel, Window, build_lp
from dcsched.errors import DcschedError
from dcsched.sim.params import SimParams


class LPSolveError(DcschedError):
    """An LP that is infeasible or unbounded (names the day and scenario)."""


@dataclass
class LPResult:
    value_usd: float
    x: np.ndarray
    model: LPModel
    build_s: float
    solve_s: float
    num_variables: int = 0
    num_constraints: int = 0
    integer: object = None  # integer_bound.IntegerBoundResult when solved with integer_levels (value_usd is its bound)


def window_from_exo(p: SimParams, exo, day: int, start: int = 0, horizon: int | None = None,
                    arrivals: np.ndarray | None = None, ignore_batch: bool = False,
                    batch_queue0: np.ndarray | None = None) -> Window:
    """Window of ``horizon`` slots from slot ``start`` of day index ``day`` of an Exogenous.
    ``ignore_batch``: leave a scenario's batch work out (a forecaster's view of the series only).
    ``batch_queue0`` [N, N, A]: the batch queue entering a window that starts after the day's first
    slot (required there: the env's ``batch_queue`` of that slot)."""
    T = exo.price_usd_per_mwh.shape[1]
    end = T if horizon is None else min(T, start + horizon)
    sl = slice(start, end)

    def g(name):
        return getattr(exo, name)[day, sl].detach().double().cpu().numpy()

    pv = g("pv_kw_per_kwp") * p.pv_kwp.double().cpu().numpy()
    wind = g("wind_kw_per_kw") * p.wind_kw.double().cpu().numpy()
    arr = g("arrival_rate") if arrivals is None else arrivals
    faults = {}
    if getattr(exo, "capacity_frac", None) is not None:
        faults = {"capacity_frac": g("capacity_frac"), "link_up": g("link_up")}
    if ignore_batch:
        faults["batch_ignored"] = True
    elif getattr(exo, "batch_arrival_rate", None) is not None:
        if start > 0 and batch_queue0 is None:
            raise ValueError("a window of a scenario with batch work that starts after the day's first slot "
                             "needs the batch queue entering it (batch_queue0)")
        faults.update(batch_arrivals=g("batch_arrival_rate"), batch_settles=end == T, batch_queue0=batch_queue0)
    return Window(arrivals=arr, price_usd_per_mwh=g("price_usd_per_mwh"), temp_c=g("temp_c"), pv_kw=pv, wind_kw=wind,
                  carbon_g_per_kwh=g("carbon_g_per_kwh"), price_low_usd_per_mwh=g("price_low_usd_per_mwh"),
                  price_high_usd_per_mwh=g("price_high_usd_per_mwh"),
                  **faults)


def highs_bounds(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """[n, 2] variable bounds for ``linprog`` (an infinite upper bound as None)."""
    return np.column_stack([lb, np.where(np.isinf(ub), None, ub)])


def solve_model_result(model: LPModel):
    """HiGHS on the LP (maximised); scipy's result, with the duals (``eqlin``/``ineqlin`` marginals).
    A window with batch work goes to HiGHS's interior-point solver (with crossover to a vertex): its
    queue rows make the dual simplex about 3x slower there (benchmarks/lp_batch_day.py)."""
    method = "highs-ipm" if "Rb" in model.blocks else "highs"
    return linprog(-model.c, A_ub=model.A_ub, b_ub=model.b_ub, A_eq=model.A_eq, b_eq=model.b_eq,
                   bounds=highs_bounds(model.lb, model.ub), method=method)


def solve_model(model: LPModel, what: str) -> tuple[np.ndarray, float]:
    res = solve_model_result(model)
    if res.status != 0:
        kind = {2: "infeasible", 3: "unbounded"}.get(res.status, f"not solved (status {res.status})")
        raise LPSolveError(f"LP for {what} is {kind}: {res.message}")
    return res.x, float(-res.fun)


def solve_window(p: SimParams, w: Window, what: str, coef: Coefficients | None = None,
                 battery_rule: bool = False) -> LPResult:
    """Solve the LP of one window; ``battery_rule``: the dispatch-only bound (:func:`build_lp`)."""
    t0 = time.perf_counter()
    model = build_lp(p, w, coef, battery_rule=battery_rule)
    t1 = time.perf_counter()
    x, value = solve_model(model, what)
    return LPResult(value, x, model, t1 - t0, time.perf_counter() - t1, int(model.c.size),
                    int(model.A_eq.shape[0] + model.A_ub.shape[0]))


def block(result: LPResult, name: str) -> tuple[np.ndarray, tuple]:
    off, count, meta = result.model.blocks[name]
    return result.x[off : off + count], meta
