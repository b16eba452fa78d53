"""`dcsched evaluate --stochastic --seeds N`: one common-random-numbers evaluation per seed, and
each policy's mean with its interval (and its paired difference to the first policy)."""

import json

import numpy as np

from dcsched.cli import main


def test_seeds_are_evaluated_aggregated_and_paired(tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", "--policy", "local_only", "--policy", "centre_action", "--days", "2023-01-06",
                 "--stochastic", "--seeds", "2", "--seed", "5", "--out", str(out), "--no-plots"]) == 0
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [5, 6] and summary["paired_to"] == "local_only"
    per_seed = {lab: [json.loads((out / f"seed-{s}" / lab / "summary.json").read_text())["mean"]["utility_usd"]
                      for s in (5, 6)] for lab in ("local_only", "centre_action")}
    assert len(set(per_seed["local_only"])) == 2, "each seed draws its own arrivals"
    entry = summary["policies"]["centre_action"]
    assert entry["utility_usd"]["values"] == per_seed["centre_action"]
    assert entry["utility_usd"]["mean"] == np.mean(per_seed["centre_action"])
    assert entry["utility_usd"]["lo"] <= entry["utility_usd"]["mean"] <= entry["utility_usd"]["hi"]
    np.testing.assert_allclose(entry["paired_difference"]["utility_usd"]["values"],
                               np.subtract(per_seed["centre_action"], per_seed["local_only"]))
    arrivals = {s: json.loads((out / f"seed-{s}" / "local_only" / "summary.json").read_text())["mean"]["jobs_arrived"]
                for s in (5, 6)}
    other = json.loads((out / "seed-5" / "centre_action" / "summary.json").read_text())["mean"]["jobs_arrived"]
    assert arrivals[5] == other != arrivals[6]  # common random numbers within a seed, new draws across seeds
    assert "paired utility" in (out / "seeds.md").read_text()


def test_several_seeds_of_the_deterministic_env_are_refused(tmp_path):
    assert main(["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--seeds", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
