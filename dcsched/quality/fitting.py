"""Fit the quality-vs-steps curve families and report parameters, R² and residuals."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import curve_fit

from dcsched.quality.curves import CURVE_FAMILIES


def _initial_and_bounds(family: str, s: np.ndarray, q: np.ndarray):
    lo_q, hi_q = float(q.min()), float(q.max())
    smax = float(s.max())
    if family == "sigmoid":  # B + A / (1 + exp(-kappa (s - s0)))
        return [max(hi_q - lo_q, 1e-3), 1.0, float(np.median(s)), lo_q], ([0, 1e-4, -smax, -1], [2, 20, 2 * smax, 1])
    if family == "hill":  # bottom + (top - bottom) s^n / (s^n + s50^n)
        return [hi_q, float(np.median(s)), 2.0, lo_q], ([0, 1e-3, 0.05, -1], [2, 2 * smax, 30, 1])
    if family == "saturating_exp":  # bottom + (top - bottom)(1 - exp(-rate (s - s_min)))
        return [hi_q, 0.5, float(s.min()), lo_q], ([0, 1e-4, 0, -1], [2, 20, float(s.min()), 1])
    raise ValueError(family)


def fit_family(family: str, steps: np.ndarray, quality: np.ndarray) -> dict:
    """Least-squares fit of one family. Returns params, r2 and residuals (quality - fit)."""
    fn, names = CURVE_FAMILIES[family]
    s, q = np.asarray(steps, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    p0, bounds = _initial_and_bounds(family, s, q)
    p0 = np.clip(p0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            popt, _ = curve_fit(lambda x, *a: fn(x, *a), s, q, p0=p0, bounds=bounds, maxfev=20000)
        except RuntimeError:
            popt = p0
    pred = fn(s, *popt)
    ss_res = float(((q - pred) ** 2).sum())
    ss_tot = float(((q - q.mean()) ** 2).sum())
    return {"params": {n: float(v) for n, v in zip(names, popt)},
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
            "residuals": (q - pred).tolist()}


def fit_all(steps, quality) -> dict[str, dict]:
    return {family: fit_family(family, steps, quality) for family in CURVE_FAMILIES}
