"""Plausible wrong numbers are refused: bounds of another scenario or day, ignored overrides,
out-of-range values, a checkpoint evaluated in other env settings than it was trained with."""

import json

import warnings

import pytest
import torch

from dcsched.baselines.lp_bound import bound_scenario_hash, load_bounds
from dcsched.cli import main
from dcsched.config import load_recipe, load_scenario
from dcsched.errors import ConfigError
from dcsched.eval.evaluate import checkpoint_env_config, format_value, table_markdown

from test_agents import TINY, fit


def write_bounds(path, cfg, days):
    path.write_text(json.dumps({"scenario": cfg.name, "scenario_hash": bound_scenario_hash(cfg), "days": days,
                                "per_day": [{"day": d, "lp_bound_usd": 1000.0} for d in days]}))
    return path


def test_bounds_of_another_scenario_config_or_day_are_refused(tmp_path):
    paper3, energy = load_scenario("paper3"), load_scenario("paper3_energy")
    f = write_bounds(tmp_path / "b.json", paper3, ["2023-01-06"])
    assert load_bounds(f, paper3, ["2023-01-06"]) == {"2023-01-06": 1000.0}
    with pytest.raises(ConfigError, match="bounds of scenario 'paper3', evaluating 'paper3_energy'"):
        load_bounds(f, energy, ["2023-01-06"])
    with pytest.raises(ConfigError, match="another configuration"):
        load_bounds(f, load_scenario("paper3", ["energy.price_scale=2"]), ["2023-01-06"])
    with pytest.raises(ConfigError, match="no bound for 1 evaluated day"):
        load_bounds(f, paper3, ["2023-01-06", "2023-01-13"])
    # the arrival draws do not change the bound: a stochastic evaluation may use it
    assert load_bounds(f, load_scenario("paper3", ["arrivals.stochastic=false"]), ["2023-01-06"])


def test_evaluate_cli_refuses_foreign_bounds(tmp_path, capsys):
    f = write_bounds(tmp_path / "b.json", load_scenario("paper3"), ["2023-01-06"])
    rc = main(["evaluate", "--policy", "local_only", "--scenario", "paper3_energy", "--days", "2023-01-06",
               "--bounds", str(f), "--out", str(tmp_path / "out"), "--no-plots"])
    assert rc == 2 and "paper3_energy" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override,key", [
    ("env.num_envs=0", "env.num_envs"), ("trainer.frames_per_batch=0", "trainer.frames_per_batch"),
    ("trainer.total_frames=-1", "trainer.total_frames"), ("shaper.eta=5", "shaper.eta"),
    ("eval.max_days=-1", "eval.max_days"),
])
def test_out_of_range_values_name_the_key_and_range(override, key):
    with pytest.raises(ConfigError, match=rf"key '{key}': .* out of range \(allowed: "):
        load_recipe("recipes/dress_sac.yaml", [override])


def test_empty_recipe_and_bad_policy_options_are_refused(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_recipe(str(empty))
    rc = main(["evaluate", "--policy", "mpc:horizon=abc", "--scenario", "paper3", "--days", "2023-01-06",
               "--out", str(tmp_path / "o"), "--no-plots"])
    assert rc == 2 and "'abc' is not a number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--policy", "local_only", "--max-days", "-1"])
    assert exit_info.value.code == 2


def test_quick_tier_honours_seeds_and_max_days_overrides():
    from dcsched.experiments.spec import expand, load_experiment

    cfg = load_experiment("no_conditioning", ["tier=quick", "seeds=[7]", "max_days=3"])
    specs = expand(cfg)
    learned = [s for s in specs if s.kind == "train"]
    assert learned and {s.seed for s in learned} == {7}
    assert {s.max_days for s in specs} == {3}  # the tier's default is 1


def test_a_checkpoint_is_evaluated_in_its_own_env_settings(tmp_path):
    from dcsched.config import EnvConfig

    fit("recipes/sac.yaml", ["env.normalize_obs=false", "env.split=fit"], tmp_path, epochs=1)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    own = checkpoint_env_config(str(ckpt), EnvConfig())
    assert own.normalize_obs is False and own.num_envs == EnvConfig().num_envs
    from dcsched.eval.evaluate import evaluate_policies

    cfg = load_scenario("paper3")
    with pytest.warns(UserWarning, match=r"1 of the 1 evaluated days \(e.g. 2023-01-03\) are days .* trained on "
                                         r"\(env.split=fit\): not a held-out score"):
        res = evaluate_policies(cfg, [str(ckpt)], "2023-01-03", None, max_days=1, plots=False)
    assert len(res) == 1
    with warnings.catch_warnings():  # 2023-01-02 is a validation day: held out from the fit split
        warnings.simplefilter("error")
        evaluate_policies(cfg, [str(ckpt)], "val", None, max_days=1, plots=False)


def test_a_checkpoint_trained_on_the_train_split_has_seen_the_validation_days():
    """env.split=train (every non-test day) includes the val days, fit does not; test days are
    held out from both."""
    from dcsched.data.exogenous import parse_days
    from dcsched.eval.evaluate import _warn_if_checkpoints_see_training_days

    cfg = load_scenario("paper3")
    val, test = parse_days(cfg, "val"), parse_days(cfg, "test")
    with pytest.warns(UserWarning, match=r"52 of the 52 evaluated days .* are days a.ckpt trained on \(env.split=train\)"):
        _warn_if_checkpoints_see_training_days(cfg, {"a.ckpt": {"env": {"split": "train"}}}, val, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_checkpoints_see_training_days(cfg, {"b.ckpt": {"env": {"split": "fit"}}}, val, None)
        _warn_if_checkpoints_see_training_days(cfg, {"a.ckpt": {"env": {"split": "train"}}}, test, None)


def test_tables_use_fixed_notation_and_percentages():
    import pandas as pd

    assert format_value("utility_usd", 10061.4) == "10,061"
    assert format_value("share_of_bound", 0.8452) == "84.52 %"
    df = pd.DataFrame({"utility_usd": [10061.4], "share_of_bound": [0.8452]}, index=["sac"])
    text = table_markdown(df)
    assert "e+" not in text and "10,061" in text and "% of LP bound" in text


def test_the_console_table_fits_its_width_and_says_what_it_left_out():
    from rich.console import Console

    from dcsched.eval.evaluate import COLUMN_LABELS, TABLE_COLUMNS, print_table

    mean = {c: 12345.6 for c in TABLE_COLUMNS} | {"violation_rate": 0.0123, "batch_violation_rate": 0.0456, "share_of_bound": 0.9876,
                                                  "share_of_dispatch_bound": 0.9912, "share_of_integer_bound": 0.9901}
    results = {"a-long-run-name-s0-20261127-015753": {"mean": mean}, "local_only": {"mean": mean}}
    for width in (80, 100):
        console = Console(width=width, record=True)
        print_table(results, console)
        lines = console.export_text().splitlines()
        assert max(map(len, lines)) <= width
        assert "…" not in "".join(lines), "no cell is truncated"
        assert "left out to fit" in " ".join(line.strip() for line in lines[-2:])  # the note may wrap
        header = next(line for line in lines if "policy" in line)
        assert all(COLUMN_LABELS[c] in header for c in ("utility_usd", "violation_rate", "share_of_bound"))
    wide = Console(width=250, record=True)
    print_table(results, wide)
    text = wide.export_text()
    assert "left out" not in text and all(label in text for label in COLUMN_LABELS.values())


def test_the_behaviour_plot_names_the_policy_and_draws_its_decisions(tmp_path, monkeypatch):
    import numpy as np

    import dcsched.eval.plots as plots

    T, N, K = 12, 3, 2
    rng = np.random.default_rng(0)
    transfer = rng.dirichlet(np.ones(N), size=(1, T, N, K)).transpose(0, 1, 2, 4, 3)  # [D, T, i, n, K]
    out = {"soc": rng.random((1, T, N)), "price_usd_per_mwh": rng.random((1, T, N)), "transfer": transfer,
           "arrivals": np.full((1, T, N, K), 10.0), "served": rng.random((1, T, N, K)),
           "steps": rng.integers(10, 50, (1, T, N, K)).astype(float), "freq": rng.random((1, T, N)),
           "it_kw": rng.random((1, T, N)), "cooling_kw": rng.random((1, T, N)), "grid_buy_kw": rng.random((1, T, N)),
           "violation_share": rng.random((1, T))}
    seen = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.setdefault("fig", fig) and path)
    plots.plot_day_behaviour(out, ["a", "b", "c"], "2023-01-06", 2.0, tmp_path / "b.png", policy="DRESS-SAC s0")
    fig = seen["fig"]
    assert fig._suptitle.get_text() == "DRESS-SAC s0: decisions on 2023-01-06"
    labels = " ".join(ax.get_ylabel() for ax in fig.axes)
    for decision in ("SoC", "sent away", "denoising steps", "GPU frequency", "grid buy"):
        assert decision in labels
    sent = fig.axes[1].lines[0].get_ydata()  # DC a: jobs sent away = arrivals x shares to b and c
    expected = (transfer[0, :, 0, 1:, :] * 10.0).sum((-1, -2))
    np.testing.assert_allclose(sent, expected, rtol=1e-12)
    colours = {ax_line.get_color() for ax in fig.axes[:4] for ax_line in ax.lines}
    assert colours == {"C0", "C1", "C2"}, "one colour per DC in every panel"


@pytest.mark.parametrize("stochastic", [False, True])
def test_evaluate_writes_the_scenario_exactly_as_run(tmp_path, stochastic):
    import json

    from omegaconf import OmegaConf

    from dcsched.cli import main

    flags = ["--stochastic", "--seed", "3"] if stochastic else []
    base = ["evaluate", "--policy", "random", "--days", "2023-01-06", "--no-plots", *flags]
    assert main([*base, "--scenario", "paper3", "--out", str(tmp_path / "a")]) == 0
    written = tmp_path / "a" / "scenario.yaml"
    assert OmegaConf.load(written).arrivals.stochastic is stochastic
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["deterministic"] is (not stochastic) and summary["reward_mode"] == "sparse"
    # re-running from the written file reproduces the trace
    assert main([*base, "--scenario", str(written), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "trace.csv").read_text() == (tmp_path / "b" / "trace.csv").read_text()


def test_the_capacity_table_in_the_docs_is_what_the_command_prints():
    from pathlib import Path

    from dcsched.config import load_scenario
    from dcsched.data.exogenous import split_days
    from dcsched.eval.capacity import capacity_markdown

    cfg = load_scenario("paper3")
    table = capacity_markdown(cfg, split_days(cfg, "test"))
    docs = (Path(__file__).resolve().parent.parent / "docs" / "scenarios.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| US-")]
    assert len(rows) == 3 and all(row in docs for row in rows), "regenerate: python -m dcsched.eval.capacity paper3"


def test_loading_a_checkpoint_builds_the_policy_only_and_acts_like_the_trained_actor(tmp_path):
    """No training env, no reseeding: the global RNG stream is untouched by loading; the loaded
    actor's mean actions equal the training module's; another scenario's env is refused."""
    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.config import EnvConfig
    from dcsched.data.exogenous import split_days
    from dcsched.envs import make_env

    module = fit("recipes/sac.yaml", [], tmp_path, epochs=1)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    cfg = load_scenario("paper3")
    env = make_env(cfg, EnvConfig(num_envs=2), days=split_days(cfg, "test")[:1])
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    policy = load_checkpoint_policy(ckpt, env)
    assert torch.equal(torch.rand(3), expected_draw), "loading a checkpoint must not reseed the process"
    td = env.reset()
    torch.testing.assert_close(policy.act(td), module.act(td))
    other = load_scenario("global8")
    with pytest.raises(ConfigError, match="trained on 'paper3'.*3 data centres, this env has 8: evaluate it with "
                                          "--scenario paper3"):
        load_checkpoint_policy(ckpt, make_env(other, EnvConfig(num_envs=2), days=split_days(other, "test")[:1]))


def test_another_worlds_checkpoint_is_refused_naming_the_keys_or_noted(tmp_path):
    """A checkpoint trained in a scenario of other sizes (the learned battery adds actions) is refused
    naming the differing key and the override that plays its world; one whose sizes fit plays, with
    a console note naming the keys that differ (a transfer evaluation)."""
    import io

    from rich.console import Console

    from dcsched.agents.checkpoint_policy import load_checkpoint_policy
    from dcsched.config import EnvConfig
    from dcsched.data.exogenous import split_days
    from dcsched.envs import make_env
    from dcsched.eval.evaluate import evaluate_policies

    fit("recipes/sac.yaml", ["scenario=paper3_energy", "scenario.energy.control=learned"], tmp_path, epochs=1)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    plain = load_scenario("paper3_energy")
    with pytest.raises(ConfigError, match=r"differ in scenario.energy.control \(checkpoint: learned, this env: "
                                          r"heuristic\); to play the checkpoint's world add: scenario.energy.control=learned"):
        load_checkpoint_policy(ckpt, make_env(plain, EnvConfig(num_envs=2), days=split_days(plain, "test")[:1]))
    learned = load_scenario("paper3_energy", ["energy.control=learned"])
    load_checkpoint_policy(ckpt, make_env(learned, EnvConfig(num_envs=2), days=split_days(learned, "test")[:1]))

    out = io.StringIO()
    transfer = load_scenario("paper3_energy", ["energy.control=learned", "revenue_scale=2.0"])
    evaluate_policies(transfer, [str(ckpt)], "test", None, max_days=1, plots=False,
                      console=Console(file=out, width=300))
    assert f"note: {ckpt} was trained on 'paper3_energy', a scenario that differs from the evaluated one in " \
           "scenario.revenue_scale (a transfer evaluation)" in out.getvalue()
    out = io.StringIO()
    evaluate_policies(learned, [str(ckpt)], "test", None, max_days=1, plots=False, console=Console(file=out, width=300))
    assert "note:" not in out.getvalue()


def test_stochastic_evaluation_uses_common_random_numbers():
    """Every policy of one stochastic evaluation sees the same arrival draws (common random
    numbers): the same rule twice gives the same day, and a different rule the same arrivals.
    (Before, the second policy drew from where the first had left the env's generator.)"""
    from dcsched.eval.evaluate import evaluate_policies

    cfg = load_scenario("paper3")
    res = evaluate_policies(cfg, ["local_only", "random", "local_only:freq=1.0"], "2023-01-06", None,
                            deterministic=False, seed=3, max_days=1, plots=False)
    first, rand, again = (res[k]["per_day"][0] for k in res)
    assert first == again
    assert rand["jobs_arrived"] == first["jobs_arrived"] and rand["utility_usd"] != first["utility_usd"]
    assert first["jobs_arrived"] == round(first["jobs_arrived"])  # Poisson draws (expectations are fractional)
