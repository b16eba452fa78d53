"""Quality-vs-steps curve families and the quality artifact format (schema version 1).

An artifact is a JSON file (``checkpoints/quality/<name>.json``)::

    {"schema_version": 1, "name": ..., "model": {"id": ..., "family": ...},
     "calibrated": false, "curve": {"family": "sigmoid", "params": {...}},
     "measurements": [...], "hardware": ..., "date": ..., "command": ..., "note": ...}

The simulator only needs ``curve``; the rest is provenance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from dcsched.paths import CHECKPOINTS_DIR
from dcsched.errors import ConfigError

SCHEMA_VERSION = 1
QUALITY_DIR = CHECKPOINTS_DIR / "quality"


def sigmoid(steps: np.ndarray, A: float, kappa: float, s0: float, B: float) -> np.ndarray:
    """The paper's curve: Q(s) = B + A / (1 + exp(-kappa (s - s0)))."""
    return B + A / (1.0 + np.exp(-kappa * (np.asarray(steps, dtype=np.float64) - s0)))


def hill(steps: np.ndarray, top: float, s50: float, n: float, bottom: float) -> np.ndarray:
    """Q(s) = bottom + (top - bottom) s^n / (s^n + s50^n)."""
    s = np.asarray(steps, dtype=np.float64)
    return bottom + (top - bottom) * s**n / (s**n + s50**n)


def saturating_exp(steps: np.ndarray, top: float, rate: float, s_min: float, bottom: float) -> np.ndarray:
    """Q(s) = bottom + (top - bottom) (1 - exp(-rate (s - s_min)))."""
    s = np.asarray(steps, dtype=np.float64)
    return bottom + (top - bottom) * (1.0 - np.exp(-rate * (s - s_min)))


CURVE_FAMILIES: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    "sigmoid": (sigmoid, ("A", "kappa", "s0", "B")),
    "hill": (hill, ("top", "s50", "n", "bottom")),
    "saturating_exp": (saturating_exp, ("top", "rate", "s_min", "bottom")),
}


def default_artifact_path(model: str) -> Path:
    return QUALITY_DIR / f"{model}_default.json"


def load_curve(path: Path | str) -> tuple[str, dict[str, float], dict]:
    """Read and check a quality artifact. Returns (family, params, whole artifact)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(str(path), "quality_artifact", "quality artifact not found")
    try:
        art = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(str(path), "<file>", f"not valid JSON: {err}") from err
    if art.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(str(path), "schema_version", f"unsupported {art.get('schema_version')!r}", str(SCHEMA_VERSION))
    curve = art.get("curve") or {}
    family = curve.get("family")
    if family not in CURVE_FAMILIES:
        raise ConfigError(str(path), "curve.family", f"unknown family {family!r}", ", ".join(CURVE_FAMILIES))
    names = CURVE_FAMILIES[family][1]
    params = curve.get("params") or {}
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(str(path), f"curve.params.{missing[0]}", "missing parameter", ", ".join(names))
    return family, {n: float(params[n]) for n in names}, art


def quality_on_grid(path: Path | str, steps_grid: list[int]) -> np.ndarray:
    """Q evaluated on the step grid, checked to lie in [0, 1]. Shape [len(steps_grid)]."""
    family, params, _ = load_curve(path)
    fn = CURVE_FAMILIES[family][0]
    q = fn(np.asarray(steps_grid, dtype=np.float64), **params)
    if not np.isfinite(q).all() or q.min() < 0 or q.max() > 1:
        raise ConfigError(str(path), "curve.params", f"curve leaves [0, 1] on the step grid {list(steps_grid)}: {q.round(3).tolist()}")
    return q
