"""The per-DC breakdown of an evaluation (per_dc.csv / per_dc.md) adds up to the policy's summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcsched.config import load_scenario
from dcsched.eval.evaluate import evaluate_policies


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("per_dc")
    results = evaluate_policies(load_scenario("paper3"), ["local_only", "centre_action", "greedy_myopic"], "test", out,
                                max_days=1, plots=False)
    return out, results, pd.read_csv(out / "per_dc.csv")


def test_per_dc_money_and_violations_add_up_to_the_summary(evaluated):
    out, results, frame = evaluated
    for policy, summary in results.items():
        rows = frame[frame["policy"] == policy]
        assert len(rows) == 3 and list(rows["region"]) == [dc.region for dc in load_scenario("paper3").dcs]
        mean = summary["mean"]
        for key in ("revenue_usd", "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "utility_usd", "grid_buy_kwh"):
            assert rows[key].sum() == pytest.approx(mean[key], rel=1e-5, abs=1e-6), (policy, key)
        assert rows["arrivals_share"].sum() == pytest.approx(1.0) and rows["served_share"].sum() == pytest.approx(1.0)
        late_dropped = (rows["late_dropped_rate"] * rows["served_share"]).sum()  # as a share of all jobs served
        assert late_dropped == pytest.approx(mean["violation_rate"], abs=1e-6), policy
        steps = (rows["mean_steps"] * rows["served_share"]).sum()
        assert steps == pytest.approx(mean["mean_steps"], rel=1e-5), policy
        assert rows["arrivals_per_day"].sum() == pytest.approx(mean["jobs_arrived"], rel=1e-5)
    assert "### greedy_myopic" in (out / "per_dc.md").read_text()


def test_routing_shares_of_known_rules(evaluated):
    """local_only keeps every job at its origin; centre_action (a = 0: uniform transfer logits)
    sends two thirds of each DC's jobs to the two others and serves a third at each DC."""
    _, _, frame = evaluated
    local = frame[frame["policy"] == "local_only"]
    assert np.allclose(local["moved_share"], 0.0, atol=1e-9)
    assert np.allclose(local["served_share"], local["arrivals_share"], atol=1e-9)
    centre = frame[frame["policy"] == "centre_action"]
    assert np.allclose(centre["moved_share"], 2 / 3, atol=1e-6) and np.allclose(centre["served_share"], 1 / 3, atol=1e-6)
