"""Shared test helpers: random decisions, exogenous slices, kernel <-> reference adapters."""

import torch

from dcsched.sim.kernels import Decision

EXO_KEYS = ("price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
            "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw")


def random_decision(p, batch, gen, with_battery=False):
    N, K = p.num_dcs, p.num_classes
    S, F = len(p.steps_grid), len(p.freq_levels)
    logits = torch.randn(batch, N, N, K, generator=gen, dtype=torch.float64) * 2
    transfer = torch.softmax(logits, dim=-2)
    # some rows exactly local to exercise one-hot paths
    local = torch.rand(batch, N, 1, K, generator=gen) < 0.3
    eye = torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(N, N, K)
    transfer = torch.where(local, eye.expand(batch, N, N, K), transfer)
    return Decision(
        transfer=transfer,
        steps_idx=torch.randint(0, S, (batch, N, K), generator=gen),
        freq_idx=torch.randint(0, F, (batch, N), generator=gen),
        battery_frac=(torch.rand(batch, N, generator=gen, dtype=torch.float64) * 2 - 1) if with_battery else None,
    )


def exo_slot(exo, day, t):
    """[B, N] exogenous tensors for (day[b], t[b])."""
    return {k: getattr(exo, k)[day, t] for k in EXO_KEYS}


def to_list(x):
    return x.tolist()


def assert_lp_contains(model, slots, num_freq, rhs=None):
    """The LP's variable vector of a replayed env trajectory (``lp_replay.replay_day``) has the env's
    utility as objective and violates no constraint by more than 1e-6 of ``rhs`` (default the
    equality right-hand sides) at its largest."""
    import numpy as np
    import pytest

    from dcsched.baselines.lp_replay import max_violation, trajectory_vector

    x = trajectory_vector(model, slots, num_freq)
    assert float(model.c @ x) == pytest.approx(sum(float(s["utility_usd"].sum()) for s in slots), rel=1e-6)
    rhs = model.b_eq if rhs is None else rhs
    assert max_violation(model, x) < 1e-6 * max(1.0, np.abs(rhs).max())
