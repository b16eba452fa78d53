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


def percentile_interval(samples, confidence: float = CONFIDENCE, axis=None):
    """The central ``confidence`` interval of bootstrap ``samples``: their (1 - c)/2 and (1 + c)/2
    quantiles (floats, or arrays along ``axis``)."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, alpha, axis=axis), np.quantile(samples, 1.0 - alpha, axis=axis)
    return (float(lo), float(hi)) if axis is None else (lo, hi)


def bootstrap_ci(values, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0,
                 stat=np.mean) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``stat`` over ``values`` (1-D); (nan, nan) below 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    return percentile_interval(stat(x[idx], axis=1), confidence)


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
    lo, hi = percentile_interval(boot, confidence, axis=0)
    return mean, lo, hi


# Aggregates over runs x tasks, as rliable defines them (Agarwal et al., "Deep RL at the Edge of the
# Statistical Precipice", NeurIPS 2021; google-research/rliable): ``scores`` is [runs, tasks] (here
# training seeds x (scenario, test day)), or [..., runs, tasks] for a batch of bootstrap samples.


def aggregate_iqm(scores) -> np.ndarray:
    """Interquartile mean over all runs and tasks together: scipy's trim_mean(0.25) of the flattened
    [runs, tasks] (rliable's ``aggregate_iqm``). [..., runs, tasks] -> [...]."""
    from scipy.stats import trim_mean

    x = np.asarray(scores, dtype=float)
    return trim_mean(x.reshape(*x.shape[:-2], -1), 0.25, axis=-1)


def aggregate_mean(scores) -> np.ndarray:
    """Mean over tasks of the per-task mean over runs. [..., runs, tasks] -> [...]."""
    return np.asarray(scores, dtype=float).mean(axis=(-2, -1))


def aggregate_median(scores) -> np.ndarray:
    """Median over tasks of the per-task mean over runs. [..., runs, tasks] -> [...]."""
    return np.median(np.asarray(scores, dtype=float).mean(axis=-2), axis=-1)


def optimality_gap(scores, gamma: float = 1.0) -> np.ndarray:
    """gamma minus the mean of the scores clipped above at gamma: how far below the target (1: the
    perfect-foresight bound on a normalised score) the runs stay. [..., runs, tasks] -> [...]."""
    x = np.asarray(scores, dtype=float)
    return gamma - np.minimum(x, gamma).mean(axis=(-2, -1))


def probability_of_improvement(scores_x, scores_y) -> float:
    """P(X > Y) averaged over tasks, ties counting one half: per task, the Mann-Whitney U of X's runs
    against Y's divided by n_x n_y (rliable's ``probability_of_improvement``). [n_x, tasks], [n_y, tasks]."""
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"both score matrices need the same tasks; got {x.shape} and {y.shape}")
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def performance_profile(scores, taus) -> np.ndarray:
    """The fraction of all runs x tasks whose score exceeds each threshold (rliable's run-score
    distribution). [runs, tasks], [K] -> [K]."""
    x = np.asarray(scores, dtype=float).reshape(-1)
    return (x[None, :] > np.asarray(taus, dtype=float)[:, None]).mean(axis=1)


def stratified_resample(scores, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap samples of [runs, tasks]: within each task (stratum) its runs are
    drawn with replacement, independently of the other tasks (rliable's StratifiedBootstrap), so every
    sample keeps the number of runs per task. -> [reps, runs, tasks]."""
    x = np.asarray(scores, dtype=float)
    runs, tasks = x.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    return x[idx, np.arange(tasks)[None, None, :]]


def stratified_bootstrap_ci(scores, aggregate=aggregate_iqm, reps: int = 2_000, confidence: float = CONFIDENCE,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``aggregate`` over stratified bootstrap samples of ``scores`` [runs,
    tasks]; (nan, nan) with one run (nothing to resample within a task)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        return float("nan"), float("nan")
    return percentile_interval(aggregate(stratified_resample(x, reps, np.random.default_rng(seed))), confidence)


def probability_of_improvement_ci(scores_x, scores_y, reps: int = 2_000, confidence: float = CONFIDENCE,
                                  seed: int = 0) -> tuple[float, float]:
    """Percentile interval of :func:`probability_of_improvement` with X's and Y's runs resampled
    independently within each task (rliable's StratifiedIndependentBootstrap); a one-run side is held
    fixed. (nan, nan) when both sides have one run."""
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    if x.shape[0] < 2 and y.shape[0] < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    xs = stratified_resample(x, reps, rng) if x.shape[0] > 1 else np.broadcast_to(x, (reps, *x.shape))
    ys = stratified_resample(y, reps, rng) if y.shape[0] > 1 else np.broadcast_to(y, (reps, *y.shape))
    return percentile_interval(np.array([probability_of_improvement(a, b) for a, b in zip(xs, ys)]), confidence)
