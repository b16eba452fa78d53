"""Interval estimates over seeds: percentile bootstrap of the mean, Student's t interval of the
mean and the interquartile mean.

With 3-5 seeds a bootstrap interval is optimistic (it cannot be wider than the seeds' range); the
report states the number of seeds next to every interval, and gives the t interval (the paired t
test's, wider at few seeds, exact for normal errors) beside it for paired differences. One seed
gives no interval (NaN).
"""

from __future__ import annotations

import numpy as np

N_BOOT = 10_000
CONFIDENCE = 0.95


def bootstrap_ci(values, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0,
                 stat=np.mean) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``stat`` over ``values`` (1-D); (nan, nan) below 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    stats = stat(x[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def t_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval of the mean of ``values`` (1-D): mean ± t(1 − α/2, n − 1) · s / √n, with
    s the sample standard deviation; (nan, nan) below 2 values. For paired differences over seeds
    this is the paired t test's interval: it excludes 0 exactly when that test rejects at 1 − confidence."""
    from scipy.stats import t as student_t

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    half = float(student_t.ppf(0.5 + confidence / 2.0, x.size - 1)) * float(x.std(ddof=1)) / np.sqrt(x.size)
    return float(x.mean()) - half, float(x.mean()) + half


def paired_t_p(differences) -> float:
    """Two-sided p of the one-sample t test of ``differences`` (1-D) against 0 (the paired t test);
    NaN below 2 values or when every difference is the same."""
    from scipy.stats import ttest_1samp

    x = np.asarray(differences, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2 or np.all(x == x[0]):
        return float("nan")
    return float(ttest_1samp(x, 0.0).pvalue)


def holm_adjusted(p_values, family: int | None = None) -> list[float]:
    """Holm's step-down adjusted p of each of ``p_values`` (1-D, in their order), over a family of
    ``family`` tests (default: as many as given; more when some declared tests have no p yet, which
    count as p = 1, sorted last). The i-th smallest p (1-based) becomes
    max over j <= i of min(1, (family - j + 1) * p_(j)). Rejecting where the adjusted p < α controls
    the family-wise error rate at α like Bonferroni's family * p, never rejecting less. NaN stays NaN
    (and counts as p = 1)."""
    p = np.asarray(p_values, dtype=float)
    k = p.size if family is None else int(family)
    if k < p.size:
        raise ValueError(f"holm_adjusted: family={k} is smaller than the {p.size} p values given")
    filled = np.where(np.isnan(p), 1.0, p)
    order = np.argsort(filled, kind="stable")
    adjusted = np.empty_like(filled)
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(p.size)) * filled[order]))
    adjusted[np.isnan(p)] = np.nan
    return [float(x) for x in adjusted]


def iqm(values) -> float:
    """Interquartile mean (rliable's IQM): the mean after cutting floor(25 %) of the values at each
    end (scipy.stats.trim_mean(x, 0.25); with 5 seeds, the mean of the middle 3)."""
    from scipy.stats import trim_mean

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return float(trim_mean(x, 0.25)) if x.size else float("nan")


def band_over_seeds(curves: np.ndarray, n_boot: int = 2000, confidence: float = CONFIDENCE, seed: int = 0):
    """Mean and bootstrap interval of the mean at every point of ``curves`` [seeds, points]."""
    curves = np.asarray(curves, dtype=float)
    mean = curves.mean(0)
    if curves.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, curves.shape[0], size=(n_boot, curves.shape[0]))
    boot = curves[idx].mean(1)  # [n_boot, points]
    alpha = (1.0 - confidence) / 2.0
    return mean, np.quantile(boot, alpha, axis=0), np.quantile(boot, 1.0 - alpha, axis=0)
