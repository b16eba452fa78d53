"""Registries and the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from dcsched.cli import main
from dcsched.errors import UnknownComponentError
from dcsched.registry import ALL_REGISTRIES, POLICIES, SCENARIOS


def test_every_kind_has_a_registry():
    assert set(ALL_REGISTRIES) == {"scenario", "agent", "shaper", "policy", "quality_metric", "logger", "forecaster", "stress"}
    assert {"paper3", "paper3_energy", "global8"} <= set(SCENARIOS.names())
    assert {"local_only", "random"} <= set(POLICIES.names())


def test_unknown_name_lists_allowed_and_closest():
    with pytest.raises(UnknownComponentError) as err:
        POLICIES.get("local_onyl")
    assert "did you mean 'local_only'" in str(err.value) and "random" in str(err.value)


def test_cli_list_prints_components(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("paper3", "local_only", "wandb", "policy", "scenario"):
        assert name in out
    assert main(["list", "agent"]) == 0
    assert "mappo" in capsys.readouterr().out
    assert main(["list", "agents"]) == 2  # a misspelt kind is an error naming the closest kind, not an empty list
    assert "did you mean 'agent'" in capsys.readouterr().err


def test_every_recipe_key_has_a_default_and_a_meaning(capsys):
    from dcsched.config import describe_keys, load_recipe

    rows = describe_keys(load_recipe("quick/dress_sac"))
    assert [key for key, _, _, meaning in rows if not meaning] == [], "document each key next to its default"
    values = {key: value for key, value, _, _ in rows}
    assert values["shaper.latent_dim"] == 64 and values["scenario.dcs.2.model"] == "sd35"
    assert main(["list", "--keys", "quick/dress_sac", "agent."]) == 0
    out = capsys.readouterr().out
    assert "agent.alpha_init" in out and "shaper.eta" not in out


def test_cli_bad_key_exits_2_naming_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("scenario: paper3\nagent:\n  lr_actr: 0.1\n")
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "agent.lr_actr" in err and "'agent.lr_actor' moved to 'optim.lr_actor'" in err
    recipe.write_text("scenario: paper3\nagent:\n  gamme: 0.9\n")
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "agent.gamme" in err and "closest: 'gamma'" in err and "moved" not in err


def test_cli_unknown_policy_exits_2(capsys):
    assert main(["evaluate", "--policy", "nope", "--max-days", "1", "--no-plots"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err


def test_cli_evaluate_writes_summary_and_trace(tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", "--policy", "local_only", "--days", "2023-01-06", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == ["2023-01-06"] and summary["mean"]["jobs_arrived"] > 0
    assert (out / "trace.csv").exists() and (out / "behaviour.png").stat().st_size > 1000
    assert "US-CAL-CISO" in (out / "scenario.yaml").read_text()  # the resolved scenario beside the outputs
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_help_of_every_subcommand_runs():
    for cmd in ("train", "evaluate", "solve", "calibrate", "experiment", "bench", "list"):
        res = subprocess.run([sys.executable, "-m", "dcsched.cli", cmd, "--help"], capture_output=True, text=True)
        assert res.returncode == 0 and "usage" in res.stdout.lower(), cmd


def test_trace_format_matches_summary(tmp_path):
    import pandas as pd

    out = tmp_path / "ev"
    assert main(["evaluate", "--policy", "random", "--days", "2023-01-06,2023-01-13", "--out", str(out), "--no-plots"]) == 0
    trace = pd.read_csv(out / "trace.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert len(trace) == 2 * 288 * 3
    for col in ("day", "slot", "dc", "arrivals_short", "served_long", "on_time_short", "late_long", "dropped",
                "backlog_jobs", "steps_short", "freq", "x_to_2_long", "it_kw", "cooling_kw", "charge_kw", "discharge_kw",
                "pv_kw", "wind_kw", "curtail_kw", "grid_buy_kw", "grid_sell_kw", "soc", "revenue_usd",
                "energy_cost_usd", "transfer_cost_usd", "penalty_usd", "degradation_usd", "utility_usd", "carbon_kg",
                "price_usd_per_mwh", "temp_c"):
        assert col in trace.columns, col
    for day_summary, (day, rows) in zip(summary["per_day"], trace.groupby("day", sort=True)):
        assert day_summary["day"] == day
        assert rows["utility_usd"].sum() == pytest.approx(day_summary["utility_usd"], rel=1e-6)
        arrived = rows[["arrivals_short", "arrivals_long"]].sum().sum()
        ended = rows[["on_time_short", "on_time_long", "late_short", "late_long", "dropped"]].sum().sum()
        assert ended == pytest.approx(arrived, rel=1e-6)
    shares = trace[[f"x_to_{n}_short" for n in range(3)]].sum(axis=1)
    assert np.allclose(shares, 1.0, atol=1e-5)


def test_registered_scenarios_and_loggers_are_what_the_code_looks_up(tmp_path, monkeypatch):
    """A scenario registered by a user's code is found by name; loggers are built by their entries."""
    import shutil

    from dcsched.config import load_recipe, load_scenario
    from dcsched.paths import SCENARIO_DIR
    from dcsched.registry import LOGGERS
    from dcsched.tracking import make_loggers

    mine = tmp_path / "my_site.yaml"
    shutil.copy(SCENARIO_DIR / "paper3.yaml", mine)
    monkeypatch.setitem(SCENARIOS._entries, "my_site", type(SCENARIOS.entries()[0])("my_site", mine, "mine"))
    assert load_scenario("my_site").dcs[0].region == load_scenario("paper3").dcs[0].region
    built = []
    monkeypatch.setitem(LOGGERS._entries, "csv", type(LOGGERS.entries()[0])(
        "csv", lambda run_dir, name, **_: built.append(name) or "a-logger", "test"))
    cfg = load_recipe("recipes/sac.yaml", ["logger.wandb_mode=disabled", "name=logged"])
    assert make_loggers(cfg, tmp_path) == ["a-logger"] and built == ["logged"]
