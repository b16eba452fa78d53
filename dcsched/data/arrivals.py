"""Hour-of-day arrival shape h (MODEL.md section 3)."""

from __future__ import annotations

import numpy as np

from dcsched.data.traces import load_alibaba_hour_counts


def normalise_shape(counts: np.ndarray, smooth_hours: int, floor: float) -> np.ndarray:
    """Circular moving average of width ``smooth_hours``, normalised to mean 1, floored, renormalised."""
    counts = np.asarray(counts, dtype=np.float64)
    if smooth_hours > 1:
        half = smooth_hours // 2
        stacked = np.stack([np.roll(counts, s) for s in range(-half, smooth_hours - half)])
        counts = stacked.mean(axis=0)
    shape = counts / counts.mean()
    shape = np.maximum(shape, floor)
    return shape / shape.mean()


def hour_of_day_shape(source: str, smooth_hours: int, floor: float, phase_shift_h: float) -> np.ndarray:
    """h[local hour], shape [24], mean 1.

    ``phase_shift_h`` moves the trace clock onto local time: h_local(hour) = h_trace(hour - shift).
    The default -8 h puts the Alibaba trace's quiet hours at about 01:00-07:00 local.
    """
    if source == "flat":
        return np.ones(24)
    shape = normalise_shape(load_alibaba_hour_counts(), smooth_hours, floor)
    hours = np.arange(24)
    trace_hour = (hours - phase_shift_h) % 24
    # linear interpolation for fractional shifts (circular)
    lo = np.floor(trace_hour).astype(int) % 24
    hi = (lo + 1) % 24
    frac = trace_hour - np.floor(trace_hour)
    return (1 - frac) * shape[lo] + frac * shape[hi]
