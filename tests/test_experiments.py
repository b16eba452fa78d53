"""The experiment layer: declarations, expansion, resume, reuse, aggregation and reports."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from dcsched.config import load_recipe
from dcsched.errors import ConfigError
from dcsched.experiments import run_experiment
from dcsched.experiments.spec import available_experiments, expand, load_experiment
from dcsched.stats import band_over_seeds, bootstrap_ci, iqm

TINY = """
name: tiny
description: two seeds of a very short SAC against local_only on one test day
kind: {kind}
seeds: [0, 1]
max_days: 1
overrides: [trainer.total_frames=2048, agent.warmup_frames=1024, trainer.checkpoint_every_batches=1,
            "network.hidden_sizes=[32,32]", replay_buffer.batch_size=64, env.num_envs=8]
methods:
  - {{label: local_only, policy: local_only}}
  - {{label: SAC, recipe: sac}}
settings: {settings}
"""


def tiny_yaml(tmp_path: Path, kind: str = "table", settings: str = "[{label: default}]", name: str = "tiny") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(kind=kind, settings=settings).replace("name: tiny", f"name: {name}"))
    return str(path)


def results_of(exp_dir: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["spec"]["key"]: json.loads(p.read_text()) for p in exp_dir.glob("runs/*/result.json")}


# --------------------------------------------------------------------------- declarations
def test_every_section_10_experiment_is_declared():
    expected = {"convergence", "testday_table", "eta_sweep", "denoise_steps_sweep", "latent_sweep", "no_conditioning", "shaping_controls",
                "component_ablations", "price_sensitivity", "heterogeneity", "behaviour", "training_time"}
    assert expected <= set(available_experiments())


@pytest.mark.parametrize("name", available_experiments())
def test_declared_experiments_expand_in_both_tiers(name):
    full, quick = (expand(load_experiment(name, [f"tier={t}"])) for t in ("full", "quick"))
    cfg = load_experiment(name)
    learned = [m for m in cfg.methods if m.recipe]
    method_scenarios = sum(len(m.scenarios) if m.scenarios else len(cfg.scenarios) for m in learned)
    assert sum(s.kind == "train" for s in full) == method_scenarios * len(cfg.seeds) * len(cfg.settings)
    assert len(cfg.seeds) >= 5 or name in ("behaviour", "sac_structured_val")  # a selection on validation days: 2 seeds
    quick_seeds, full_seeds = ({s.seed for s in specs if s.kind == "train"} for specs in (quick, full))
    if learned:
        assert quick_seeds < full_seeds or (name == "behaviour" and quick_seeds == full_seeds)
    else:  # baselines only (stress): the quick tier evaluates fewer days
        assert all(0 < q.max_days < (f.max_days or 10**6) for q, f in zip(quick, full))
    assert len({s.key for s in full}) == len(full)  # keys are unique
    recipe_budget = functools.cache(lambda recipe: int(load_recipe(recipe).trainer.total_frames))

    def frames(spec):  # the last override wins; without one, the recipe's own budget
        given = [o for o in spec.overrides if o.startswith("trainer.total_frames=")]
        return int(given[-1].split("=")[1]) if given else recipe_budget(spec.recipe)

    # the paper's budget, except the massively parallel experiments, whose recipes keep their own (7,372,800 frames),
    # and SAC over the structured action space (recipes/sac_hybrid.yaml: 300,000 frames, as recipes/sac.yaml)
    budget = 7_372_800 if name in ("parallel_learning", "decentralisation", "per_agent_shaping", "hybrid_stochastic",
                                  "selection_val") else 300_000 if name in ("paper_table", "sac_structured_val") else \
        100_000 if name == "positive_control" else 163840  # positive_control: recipes/tasks/mountaincar_sac.yaml
    assert all(frames(s) == budget for s in full if s.kind == "train")
    assert all(frames(s) < 163840 for s in quick if s.kind == "train")


def test_settings_that_keep_the_scenario_share_bound_and_baselines():
    specs = expand(load_experiment("eta_sweep", ["tier=quick"]))
    bounds = [s for s in specs if s.kind == "bound"]
    assert len(bounds) == 1 and len(bounds[0].covers) == 6
    ablation = expand(load_experiment("component_ablations", ["tier=quick"]))
    assert len([s for s in ablation if s.kind == "bound"]) == 12  # 6 systems x 2 regimes, each its own bound
    assert len({s.config_hash for s in ablation if s.kind == "bound"}) == 12


def test_models_from_moves_model_and_hardware_not_the_site():
    specs = expand(load_experiment("heterogeneity", ["tier=quick", "scenarios=[paper3]"]))
    rotated = next(s for s in specs if s.kind == "bound" and s.setting == "sd35/sd15/sdxl")
    ovr = dict(o.split("=", 1) for o in rotated.scenario_overrides)
    assert ovr["dcs.0.model"] == '"sd35"' and ovr["dcs.1.model"] == '"sd15"' and ovr["dcs.2.model"] == '"sdxl"'
    assert ovr["dcs.0.num_gpus"] == "70" and ovr["dcs.0.price_usd_per_image"] == "0.035"
    assert not any(k.endswith(("region", "arrival_weight")) for k in ovr)


@pytest.mark.parametrize("overrides, key", [
    (["tier=fast"], "tier"), (["launcher=slurm"], "launcher"), (["seedz=[1]"], "seedz"), (["days=vall"], "days"),
])
def test_bad_experiment_overrides_name_key_and_allowed_values(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_experiment("eta_sweep", overrides)
    assert err.value.key == key and err.value.allowed


def test_an_experiment_on_the_validation_days_evaluates_there():
    """days=val: every cell (learned, baseline, bound) is evaluated on the 52 validation days and is
    hashed apart from its test-day twin."""
    val = load_experiment("eta_sweep", ["tier=quick", "days=val", "scenarios=[paper3]"])
    test = load_experiment("eta_sweep", ["tier=quick", "scenarios=[paper3]"])
    val_specs, test_specs = expand(val), expand(test)
    assert {s.days for s in val_specs} == {"val"}
    assert not {s.config_hash for s in val_specs} & {s.config_hash for s in test_specs}


def test_unknown_experiment_lists_the_declared_ones():
    with pytest.raises(ConfigError, match="did you mean 'eta_sweep'") as err:
        load_experiment("eta_swep")
    assert "latent_sweep" in err.value.allowed


def test_method_must_be_recipe_or_policy(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmethods:\n  - {label: x, recipe: sac, policy: local_only}\n")
    with pytest.raises(ConfigError, match="exactly one of recipe, policy") as err:
        load_experiment(str(bad))
    assert err.value.source == str(bad) and err.value.key == "methods.0"


def test_models_from_must_be_a_permutation(tmp_path):
    path = tiny_yaml(tmp_path, settings="[{label: bad, models_from: [0, 0, 1]}]")
    with pytest.raises(ConfigError, match="permutation"):
        expand(load_experiment(path))


# --------------------------------------------------------------------------- statistics
def test_bootstrap_interval_and_iqm():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 2.0, size=5)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo < x.max() - x.min()
    lo20, hi20 = bootstrap_ci(rng.normal(10.0, 2.0, size=200))
    assert hi20 - lo20 < hi - lo  # more seeds, narrower interval
    assert np.isnan(bootstrap_ci([3.0])[0])
    assert iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx(3.0)  # the outlier is cut
    mean, blo, bhi = band_over_seeds(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    assert np.allclose(mean, [2.0, 3.0]) and (blo <= mean).all() and (bhi >= mean).all()


def test_test_day_table_shows_bootstrap_and_t_intervals_and_the_iqm():
    """Five seeds with an outlier: the utility cell holds the mean, the bootstrap interval and the
    wider t interval (mean ± t(0.975, 4) s / sqrt(5)); the IQM column the mean of the middle three;
    a baseline row has neither."""
    from dcsched.experiments.aggregate import METRICS, markdown_table, summarize

    utility = [1.0, 2.0, 3.0, 4.0, 100.0]
    rows = [{"scenario": "s", "setting": "default", "method": "learner", "kind": "train", "x": None, "seed": i,
             **{m: np.nan for m in METRICS}, "utility_usd": u} for i, u in enumerate(utility)]
    rows.append({"scenario": "s", "setting": "default", "method": "rule", "kind": "policy", "x": None, "seed": 0,
                 **{m: np.nan for m in METRICS}, "utility_usd": 50.0})
    import pandas as pd

    summary = summarize(pd.DataFrame(rows))
    half = 2.7764451051977987 * np.std(utility, ddof=1) / np.sqrt(5)  # scipy.stats.t.ppf(0.975, 4)
    learner = summary[summary["method"] == "learner"].iloc[0]
    assert learner["utility_usd_t_lo"] == pytest.approx(22.0 - half) and learner["utility_usd_t_hi"] == pytest.approx(22.0 + half)
    assert learner["utility_usd_lo"] > learner["utility_usd_t_lo"]  # the bootstrap cannot leave the seeds' range
    table = markdown_table(summary, ["utility_usd", "violation_rate"], by_setting=False).splitlines()
    assert table[0] == "| method | seeds | utility $/day | IQM utility $/day | late+dropped |"
    cells = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table[2:]}
    assert cells["rule"][2:4] == ["50.00", ""]
    assert cells["learner"][2].startswith("22.00 [") and f"(t: {22.0 - half:,.2f}, {22.0 + half:,.2f})" in cells["learner"][2]
    assert cells["learner"][3] == "3.00"


# --------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny experiment run in two invocations (max_runs=3, then the rest) and in one."""
    root = tmp_path_factory.mktemp("exp")
    path = tiny_yaml(root)
    base = ["wandb_mode=disabled", "threads_per_run=1", "reuse=false"]
    split_dir = root / "split"
    run_experiment(path, [*base, f"out_dir={split_dir}", "max_runs=3"])
    partial = results_of(split_dir / "tiny")
    mtimes = {p: p.stat().st_mtime_ns for p in (split_dir / "tiny").glob("runs/*/result.json")}
    report, outcome = run_experiment(path, [*base, f"out_dir={split_dir}"])
    whole_dir = root / "whole"
    run_experiment(path, [*base, f"out_dir={whole_dir}"])
    return dict(root=root, path=path, partial=partial, mtimes=mtimes, report=report, outcome=outcome,
                split=split_dir / "tiny", whole=whole_dir / "tiny")


def test_interrupted_experiment_resumes_without_redoing_finished_runs(tiny_run):
    assert len(tiny_run["partial"]) == 3
    for path, mtime in tiny_run["mtimes"].items():
        assert path.stat().st_mtime_ns == mtime  # finished runs were not redone
    assert len(results_of(tiny_run["split"])) == 4  # bound, local_only, SAC x 2 seeds
    assert len(tiny_run["outcome"]) == 1  # the second invocation ran only what was left


def test_resumed_experiment_equals_one_uninterrupted_invocation(tiny_run):
    split, whole = results_of(tiny_run["split"]), results_of(tiny_run["whole"])
    assert split.keys() == whole.keys()
    for key in split:
        assert split[key]["summary"]["utility_usd"] == pytest.approx(whole[key]["summary"]["utility_usd"], rel=1e-9), key


def test_report_tables_and_bound_dominate(tiny_run):
    exp_dir = tiny_run["split"]
    text = tiny_run["report"].read_text()
    for item in ("tier: **full**", "## Command", "dcsched experiment", "table_paper3.md", "share_of_bound.png",
                 "config hash", "dcsched train sac"):
        assert item in text, item
    import pandas as pd

    summary = pd.read_csv(exp_dir / "summary.csv")
    sac = summary[summary["method"] == "SAC"].iloc[0]
    assert sac["n_seeds"] == 2 and sac["utility_usd_lo"] <= sac["utility_usd"] <= sac["utility_usd_hi"]
    runs = pd.read_csv(exp_dir / "runs.csv")
    bound = runs.loc[runs["method"] == "LP bound", "utility_usd"].iloc[0]
    assert (runs.loc[runs["kind"] != "bound", "utility_usd"] <= bound + 1e-6).all()  # the LP bounds every policy
    others = runs[runs["kind"] != "bound"]
    assert len(others) >= 3 and (others["share_of_bound"] <= 1.0 + 1e-9).all()
    # each share is the run's utility over the bound, both read from runs.csv (6 significant digits)
    assert others["share_of_bound"].to_numpy() == pytest.approx((others["utility_usd"] / bound).to_numpy(), rel=2e-5)
    assert (exp_dir / "share_of_bound.png").stat().st_size > 5000


def test_identical_runs_are_reused_across_experiments(tiny_run):
    root = tiny_run["root"]
    other = tiny_yaml(root, name="tiny_copy")
    out = tiny_run["split"].parent
    _, outcome = run_experiment(other, ["wandb_mode=disabled", f"out_dir={out}", "reuse=true"])
    assert outcome and all(r.get("reused_from") for r in outcome.values())
    a, b = results_of(tiny_run["split"]), results_of(out / "tiny_copy")
    for key in a:
        assert b[key]["summary"]["utility_usd"] == a[key]["summary"]["utility_usd"]
    assert (out / "tiny_copy" / "report.md").exists()


def test_recorded_cells_are_adopted_by_hash_in_a_fresh_output_folder(tiny_run, tmp_path):
    """record=true copies result.json + spec.json of every finished cell into records_dir; another
    output folder (a fresh checkout) then adopts them instead of running them; a record whose hash no
    longer matches is not adopted; reuse=false ignores the records; the quick tier is never recorded."""
    import shutil

    from dcsched.experiments.spec import expand, load_experiment

    records = tmp_path / "records"
    out = tmp_path / "src"
    shutil.copytree(tiny_run["whole"], out / "tiny")
    base = ["wandb_mode=disabled", "reuse=true", f"records_dir={records}"]
    _, outcome = run_experiment(tiny_run["path"], [*base, f"out_dir={out}", "record=true"])
    assert outcome == {}  # everything was finished: recording runs nothing
    recorded = sorted(p.parent.name for p in records.glob("tiny/runs/*/result.json"))
    assert len(recorded) == 4 and all((records / "tiny" / "runs" / r / "spec.json").exists() for r in recorded)
    specs = {s.dirname: s for s in expand(load_experiment(tiny_run["path"]))}
    stale = specs["paper3__default__SAC__s1"]
    path = records / "tiny" / "runs" / stale.dirname / "result.json"
    doctored = json.loads(path.read_text())
    doctored["spec"]["config_hash"] = "0" * 12  # a record of another config
    path.write_text(json.dumps(doctored))
    fresh = tmp_path / "fresh"
    report, outcome = run_experiment(tiny_run["path"], [*base, f"out_dir={fresh}", "only=^nothing$"])
    assert outcome == {}
    adopted = results_of(fresh / "tiny")
    original = results_of(tiny_run["whole"])
    assert set(adopted) == set(original) - {stale.key}
    for key, result in adopted.items():
        assert Path(result["recorded_from"]).parent.parent.name == "tiny"
        assert result["summary"] == original[key]["summary"]
    assert "recorded (" in report.read_text() and "| pending |" in report.read_text()
    _, outcome = run_experiment(tiny_run["path"], ["wandb_mode=disabled", "reuse=false", f"records_dir={records}",
                                                   f"out_dir={tmp_path / 'ignored'}", "only=^nothing$"])
    assert results_of(tmp_path / "ignored" / "tiny") == {}
    with pytest.raises(ConfigError, match="record"):
        run_experiment(tiny_run["path"], [*base, f"out_dir={out}", "record=true", "tier=quick"])


def test_two_invocations_adopting_one_cell_at_once_both_succeed(tmp_path, monkeypatch):
    """Two invocations on one output folder adopt the same recorded cell: whichever places it second
    keeps the first's copy (same config hash) instead of failing on the rename; a folder of another
    config there is replaced; another invocation's copy in flight is never a source to adopt."""
    from dcsched.experiments import runner
    from dcsched.experiments.spec import expand, load_experiment

    spec = next(s for s in expand(load_experiment(tiny_yaml(tmp_path))) if s.kind == "policy")
    exp_dir = tmp_path / "out" / "tiny"

    def result_of(config_hash: str, utility: float) -> dict:
        return {"spec": {**spec.to_dict(), "config_hash": config_hash}, "summary": {"utility_usd": utility}}

    def filled(name: str, config_hash: str, utility: float) -> Path:
        folder = exp_dir / "runs" / name
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(result_of(config_hash, utility)))
        return folder

    # the other invocation placed the cell between this one's rmtree and its rename
    ours = filled("ours.copying-1", spec.config_hash, 2.0)
    real_rmtree = runner.shutil.rmtree

    def rmtree_then_other_places(path, *args, **kwargs):
        real_rmtree(path, *args, **kwargs)
        if Path(path) == runner.run_dir(exp_dir, spec) and not Path(path).exists():
            filled(spec.dirname, spec.config_hash, 1.0)

    monkeypatch.setattr(runner.shutil, "rmtree", rmtree_then_other_places)
    assert runner.place_copy(ours, exp_dir, spec, result_of(spec.config_hash, 2.0))["summary"]["utility_usd"] == 1.0
    monkeypatch.setattr(runner.shutil, "rmtree", real_rmtree)
    # already placed before this one looked: kept as it is, without a rename
    assert runner.place_copy(ours, exp_dir, spec, result_of(spec.config_hash, 2.0))["summary"]["utility_usd"] == 1.0
    assert runner.read_result(exp_dir, spec)["summary"]["utility_usd"] == 1.0
    # a folder of another config is replaced by the copy
    real_rmtree(runner.run_dir(exp_dir, spec))
    filled(spec.dirname, "0" * 12, 3.0)
    assert runner.place_copy(ours, exp_dir, spec, result_of(spec.config_hash, 2.0))["summary"]["utility_usd"] == 2.0 and not ours.exists()
    assert runner.read_result(exp_dir, spec)["summary"]["utility_usd"] == 2.0
    # a copy in flight in another experiment's folder is not a record to adopt
    flight = tmp_path / "records" / "other" / "runs" / f"{spec.dirname}.copying-x"
    flight.mkdir(parents=True)
    (flight / "result.json").write_text(json.dumps({"spec": spec.to_dict(), "summary": {}}))
    assert runner.find_finished(tmp_path / "records", exp_dir, spec) is None


def test_record_true_records_each_cell_as_it_finishes(tmp_path, monkeypatch):
    """An invocation interrupted in its second cell has already recorded the first."""
    from dcsched.experiments import launchers

    calls = []
    real = launchers.execute

    def stop_at_second(spec, exp_dir, options):
        calls.append(spec.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec, exp_dir, options)

    monkeypatch.setattr(launchers, "execute", stop_at_second)
    records = tmp_path / "records"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_yaml(tmp_path), ["wandb_mode=disabled", f"out_dir={tmp_path / 'out'}", "reuse=false",
                                             f"records_dir={records}", "record=true", "only=(LP bound|local_only)"])
    recorded = [json.loads(p.read_text())["spec"]["key"] for p in records.glob("tiny/runs/*/result.json")]
    assert recorded == [calls[0]] and len(calls) == 2


def test_record_true_counts_the_cells_recorded_as_they_finished(tmp_path):
    """The closing line counts the cells this invocation recorded (each as it finished) as written."""
    lines = []

    class Console:
        def print(self, text):
            lines.append(str(text))

    run_experiment(tiny_yaml(tmp_path), ["wandb_mode=disabled", f"out_dir={tmp_path / 'out'}", "reuse=false",
                                         f"records_dir={tmp_path / 'records'}", "record=true",
                                         "only=(LP bound|local_only)"], console=Console())
    assert len(list((tmp_path / "records").glob("tiny/runs/*/result.json"))) == 2
    assert any(line.startswith("recorded: 2 cell(s) written, 0 unchanged") for line in lines), lines


def test_a_changed_config_reruns_the_cell(tiny_run, tmp_path):
    import shutil

    exp_dir = tmp_path / "out" / "tiny"
    shutil.copytree(tiny_run["whole"], exp_dir)
    changed = tmp_path / "tiny.yaml"
    changed.write_text(Path(tiny_run["path"]).read_text().replace("total_frames=2048", "total_frames=1024")
                       .replace("warmup_frames=1024", "warmup_frames=512"))
    _, outcome = run_experiment(str(changed), ["wandb_mode=disabled", f"out_dir={tmp_path / 'out'}", "reuse=false",
                                               "only=SAC/s0"])
    assert list(outcome) == ["paper3/default/SAC/s0"]  # bound and baseline unchanged, s1 filtered out
    assert outcome["paper3/default/SAC/s0"]["train"]["frames"] == 1024


def test_interrupted_learned_cell_resumes_from_its_checkpoint(tiny_run, tmp_path):
    """A cell whose training stopped half-way (here: after its first batch) continues from
    train/checkpoints/last.ckpt and ends exactly where an uninterrupted cell ends."""
    from dcsched.training.train import train_from_config
    from dcsched.config import load_recipe
    from dcsched.experiments.runner import RunOptions, execute, run_dir

    cfg = load_experiment(tiny_run["path"], ["wandb_mode=disabled"])
    spec = next(s for s in expand(cfg) if s.key.endswith("SAC/s0"))
    exp_dir = tmp_path / "tiny"
    folder = run_dir(exp_dir, spec)
    partial = load_recipe(spec.recipe, [*spec.overrides, "trainer.total_frames=1024", f"out_dir={folder}",
                                        "logger.wandb_mode=disabled", "trainer.progress=false", "eval.policies=null"])
    train_from_config(partial, run_dir=folder / "train")
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    result = execute(spec, exp_dir, RunOptions(wandb_mode="disabled", threads=1))
    assert result["train"]["resumed"] and result["train"]["frames"] == 2048
    whole = results_of(tiny_run["whole"])[spec.key]
    assert result["summary"]["utility_usd"] == pytest.approx(whole["summary"]["utility_usd"], rel=1e-9)
    assert result["checkpoint_mb"] < 5  # the finished cell's checkpoint lost its replay buffer


def test_paired_differences_pair_runs_by_seed():
    import pandas as pd

    from dcsched.experiments.aggregate import paired_differences, paired_markdown

    rows = []
    for seed, (a, b) in enumerate([(10.0, 7.0), (12.0, 8.0), (9.0, 9.0)]):
        rows += [{"scenario": "p", "setting": "default", "method": "A", "seed": seed, "kind": "train",
                  "utility_usd": a, "share_of_bound": a / 20},
                 {"scenario": "p", "setting": "default", "method": "B", "seed": seed, "kind": "train",
                  "utility_usd": b, "share_of_bound": b / 20}]
    rows.append({"scenario": "p", "setting": "default", "method": "A", "seed": 9, "kind": "train",
                 "utility_usd": 100.0, "share_of_bound": 5.0})  # no partner: left out
    out = paired_differences(pd.DataFrame(rows), [["A", "B"]])
    row = out.iloc[0]
    assert row["n_pairs"] == 3 and row["utility_usd"] == pytest.approx(7 / 3)
    assert row["utility_usd_lo"] <= 7 / 3 <= row["utility_usd_hi"] and row["utility_usd_lo"] >= 0.0
    # the paired t interval of the differences [3, 4, 0] by hand: s = sqrt(78 / 18), t(0.975, 2) = 4.302653
    half = 4.302653 * (78 / 18) ** 0.5 / 3 ** 0.5
    assert (row["utility_usd_t_lo"], row["utility_usd_t_hi"]) == pytest.approx((7 / 3 - half, 7 / 3 + half), abs=1e-5)
    assert row["utility_usd_t_lo"] < 0.0 <= row["utility_usd_lo"], "at 3 pairs the bootstrap is the optimistic one"
    assert "A − B" in paired_markdown(out) and f"(t: {7 / 3 - half:+,.2f}, {7 / 3 + half:+,.2f})" in paired_markdown(out)
    # the paired t test: t = mean / (s / sqrt(3)) = 1.94145 on 2 degrees of freedom, two-sided p = 0.19171
    assert row["utility_usd_p"] == pytest.approx(0.19171, abs=1e-5)
    # two declared pairs: each interval at 1 - 0.05 / 2, t(0.9875, 2) = 6.205347, wider than the 95 % one
    two = paired_differences(pd.DataFrame(rows), [["A", "B"], ["B", "A"]])
    wide = 6.205347 * (78 / 18) ** 0.5 / 3 ** 0.5
    assert (two.iloc[0]["utility_usd_bonf_lo"], two.iloc[0]["utility_usd_bonf_hi"]) == pytest.approx(
        (7 / 3 - wide, 7 / 3 + wide), abs=1e-5)
    assert two.iloc[1]["utility_usd"] == pytest.approx(-7 / 3) and two.iloc[1]["utility_usd_p"] == pytest.approx(0.19171, abs=1e-5)
    # Holm over the two pairs: the smaller p (a tie: the first) times 2, the other max(that, itself)
    assert [two.iloc[i]["utility_usd_p_holm"] for i in (0, 1)] == pytest.approx([2 * 0.19171] * 2, abs=1e-5)
    assert row["utility_usd_p_holm"] == pytest.approx(row["utility_usd_p"])  # one pair: Holm is p
    text = paired_markdown(two)
    assert "Bonferroni t interval (×2)" in text and f"[{7 / 3 - wide:+,.2f}, {7 / 3 + wide:+,.2f}]" in text and "| 0.192 |" in text
    assert "p, Holm (×2)" in text and "| 0.192 | 0.383 |" in text


def test_a_scenarios_family_is_the_pairs_that_run_on_it():
    """A pair whose methods run only on another scenario is not a test on this one: Holm and
    Bonferroni use the scenario's own pairs (hybrid_stochastic: 2 of its 4 on each scenario), so the
    one pair of scenario q is not corrected for p's; without ``families`` every declared pair counts.
    The table names each row's family when they differ."""
    import pandas as pd

    from dcsched.experiments.aggregate import paired_differences, paired_markdown
    from dcsched.experiments.spec import pairs_on

    cfg = load_experiment("hybrid_stochastic")
    assert {scen: pairs_on(cfg, scen) for scen in cfg.scenarios} == {"paper3": 2, "paper3_energy": 2}
    assert pairs_on(load_experiment("decentralisation"), "global8") == 4
    rows = []
    for seed, (a, b, c) in enumerate([(10.0, 7.0, 1.0), (12.0, 8.0, 14.0), (9.0, 9.0, 2.0)]):
        rows += [{"scenario": "p", "setting": "default", "method": m, "seed": seed, "kind": "train", "utility_usd": u}
                 for m, u in (("A", a), ("B", b), ("C", c))]
        rows += [{"scenario": "q", "setting": "default", "method": m, "seed": seed, "kind": "train", "utility_usd": u}
                 for m, u in (("D", a), ("E", b))]
    pairs = [["A", "B"], ["A", "C"], ["D", "E"]]
    own = paired_differences(pd.DataFrame(rows), pairs, families={"p": 2, "q": 1}).set_index("pair")
    every = paired_differences(pd.DataFrame(rows), pairs).set_index("pair")
    q, p_ab = own.loc["D − E"], own.loc["A − B"]
    assert q["family"] == 1 and q["utility_usd_p_holm"] == pytest.approx(q["utility_usd_p"])
    assert (q["utility_usd_bonf_lo"], q["utility_usd_bonf_hi"]) == pytest.approx((q["utility_usd_t_lo"], q["utility_usd_t_hi"]))
    assert every.loc["D − E", "utility_usd_p_holm"] == pytest.approx(min(1.0, 3 * q["utility_usd_p"]))
    assert p_ab["family"] == 2 and p_ab["utility_usd_p_holm"] == pytest.approx(2 * p_ab["utility_usd_p"])  # the smaller p of 2
    assert every.loc["A − B", "utility_usd_p_holm"] > p_ab["utility_usd_p_holm"]
    text = paired_markdown(own.reset_index())
    assert "p, Holm (×k)" in text and f"{q['utility_usd_p']:.3f} | {q['utility_usd_p_holm']:.3f} (×1)" in text


def test_holm_adjusted_p_by_hand():
    from dcsched.stats import holm_adjusted

    # sorted 0.01, 0.03, 0.04: x3 = 0.03, x2 = 0.06, x1 = 0.04 -> running max 0.06; back in the given order
    assert holm_adjusted([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # four declared pairs, one without a p yet (counts as p = 1, sorted last, stays NaN):
    # x4 0.044, x3 0.045, x2 0.044 -> 0.045
    got = holm_adjusted([0.011, 0.015, 0.022, float("nan")], family=4)
    assert got[:3] == pytest.approx([0.044, 0.045, 0.045]) and np.isnan(got[3])
    # every adjusted p lies between p and Bonferroni's k p, and is capped at 1
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.uniform(0, 0.5, size=5)
        adj = np.array(holm_adjusted(p, family=7))
        assert np.all(adj >= p - 1e-15) and np.all(adj <= np.minimum(1.0, 7 * p) + 1e-15) and np.all(adj <= 1.0)
        # order preserved: a smaller p never gets a larger adjusted p
        assert np.all(np.diff(adj[np.argsort(p)]) >= -1e-15)
    with pytest.raises(ValueError, match="family=2"):
        holm_adjusted([0.1, 0.2, 0.3], family=2)


def test_paired_a_must_be_learned_and_b_a_method_of_the_experiment():
    from dcsched.errors import ConfigError

    load_experiment("shaping_controls", ["paired=[[DRESS-SAC,local_only]]"])  # B a baseline: allowed
    for bad in ("[[local_only,DRESS-SAC]]", "[[DRESS-SAC,nope]]", "[[DRESS-SAC]]"):
        with pytest.raises(ConfigError, match="paired.0"):
            load_experiment("shaping_controls", [f"paired={bad}"])


def test_paired_against_a_baseline_pairs_every_seed_with_its_one_run():
    """B a baseline: A's seed i − B's single run, per metric, the stochastic column on the same draws;
    a metric absent from both (here none) or from the experiment gets no column."""
    import pandas as pd

    from dcsched.experiments.aggregate import paired_differences, paired_markdown

    rows = [{"scenario": "p", "setting": "default", "method": "G", "seed": 0, "kind": "policy",
             "utility_usd": 8.0, "share_of_bound": 0.4, "stochastic_utility_usd": 7.0}]
    for seed, (det, sto) in enumerate([(10.0, 9.0), (12.0, 7.5), (9.0, 8.0)]):
        rows.append({"scenario": "p", "setting": "default", "method": "A", "seed": seed, "kind": "train",
                     "utility_usd": det, "share_of_bound": det / 20, "stochastic_utility_usd": sto})
    rows.append({"scenario": "q", "setting": "default", "method": "A", "seed": 0, "kind": "train",
                 "utility_usd": 1.0, "share_of_bound": 0.1, "stochastic_utility_usd": 1.0})  # no G on q: no row
    out = paired_differences(pd.DataFrame(rows), [["A", "G"]])
    assert len(out) == 1
    row = out.iloc[0]
    assert row["n_pairs"] == 3 and row["against"] == "baseline"
    assert row["utility_usd"] == pytest.approx((2 + 4 + 1) / 3)
    assert row["stochastic_utility_usd"] == pytest.approx((2 + 0.5 + 1) / 3)
    # the t interval of [2, 4, 1]: A's spread over its seeds (the baseline is one run)
    diffs = [2.0, 4.0, 1.0]
    mean, var = sum(diffs) / 3, sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2
    half = 4.302653 * var ** 0.5 / 3 ** 0.5
    assert (row["utility_usd_t_lo"], row["utility_usd_t_hi"]) == pytest.approx((mean - half, mean + half), abs=1e-5)
    text = paired_markdown(out)
    assert "A − G (B a baseline)" in text and "Δ stochastic utility $/day" in text
    # a deterministic experiment: no stochastic column at all
    det_only = pd.DataFrame(rows).drop(columns=["stochastic_utility_usd"])
    assert "stochastic" not in paired_markdown(paired_differences(det_only, [["A", "G"]]))


def test_a_method_may_be_limited_to_some_scenarios():
    """hybrid_stochastic trains the hybrid on paper3 only and its learned-energy variant on
    paper3_energy only; baselines run on both; a misspelt scenario is an error naming the key."""
    from dcsched.errors import ConfigError

    specs = expand(load_experiment("hybrid_stochastic"))
    trains = {(s.scenario, s.method) for s in specs if s.kind == "train"}
    assert trains == {("paper3", "hybrid"), ("paper3_energy", "hybrid learned energy")}
    assert {s.scenario for s in specs if s.method == "greedy_myopic"} == {"paper3", "paper3_energy"}
    assert all(s.stochastic_seeds == 3 for s in specs if s.kind != "bound")
    # dropping a scenario on the command line drops its methods, no error
    only_energy = expand(load_experiment("hybrid_stochastic", ["scenarios=[paper3_energy]"]))
    assert {s.method for s in only_energy if s.kind == "train"} == {"hybrid learned energy"}
    with pytest.raises(ConfigError, match=r"methods\.3\.scenarios.*papr3"):
        load_experiment("hybrid_stochastic", ["methods.3.scenarios=[papr3]"])


def test_stochastic_seeds_add_crn_columns_and_keep_older_hashes(tmp_path):
    """stochastic_seeds=2 evaluates every baseline also on Poisson arrivals (seeds 0 and 1, the same
    draws for every method), reported beside the deterministic columns; at 0 the cells hash as
    before the key existed."""
    import pandas as pd

    from dcsched.eval.evaluate import evaluate_policies
    from dcsched.config import load_scenario

    path = tmp_path / "crn.yaml"
    path.write_text("name: crn\nkind: table\nmax_days: 1\nmethods:\n  - {label: local_only, policy: local_only}\n"
                    "  - {label: centre_action, policy: centre_action}\n")
    plain = {s.key: s.config_hash for s in expand(load_experiment(str(path)))}
    assert plain == {s.key: s.config_hash for s in expand(load_experiment(str(path), ["stochastic_seeds=0"]))}
    stoch = {s.key: s.config_hash for s in expand(load_experiment(str(path), ["stochastic_seeds=2"]))}
    assert stoch["paper3/default/local_only"] != plain["paper3/default/local_only"]
    assert stoch["paper3/default/LP bound"] == plain["paper3/default/LP bound"]  # the bound does not change
    report, _ = run_experiment(str(path), [f"out_dir={tmp_path}", "stochastic_seeds=2", "wandb_mode=disabled"])
    runs = pd.read_csv(tmp_path / "crn" / "runs.csv").set_index("method")
    direct = [next(iter(evaluate_policies(load_scenario("paper3"), ["local_only"], "test", None, deterministic=False,
                                          seed=s, max_days=1, plots=False).values()))["mean"]["utility_usd"]
              for s in (0, 1)]
    assert runs.loc["local_only", "stochastic_utility_usd"] == pytest.approx(np.mean(direct), rel=1e-5)  # runs.csv keeps 6 digits
    assert runs.loc["local_only", "stochastic_utility_usd"] != runs.loc["local_only", "utility_usd"]
    assert runs.loc["local_only", "stochastic_share_of_bound"] == pytest.approx(
        runs.loc["local_only", "stochastic_utility_usd"] / runs.loc["local_only", "lp_bound_usd"], rel=1e-5)
    assert "stochastic % of LP bound" in (tmp_path / "crn" / "table_paper3.md").read_text()
    with pytest.raises(ConfigError, match="stochastic_seeds"):
        load_experiment(str(path), ["stochastic_seeds=-1"])


def test_finished_cells_keep_their_hash_when_a_key_with_a_default_is_added():
    """A run-config key added later (LATER_KEYS_DEFAULTS: env.transfer_chunks, env.observe_faults,
    env.steps_mode, agent.share_params) must not change the hash of a run that keeps its default,
    or every finished cell would silently re-run; nor may the move of keys to the TorchRL-named
    groups (MOVED_KEYS: the hybrid recipe's widths and learning rates now sit in network and optim). The literals are the hashes recorded by finished
    cells before those keys existed (parallel_learning, seed 1); a legitimate change of the recipe,
    the scenario data or the hashing updates them here on purpose."""
    from dcsched.experiments.spec import expand, load_experiment

    recorded = {"paper3/default/hybrid/s1": "2d577a0d9c01",
                "paper3_energy/default/hybrid learned energy/s1": "156495d90401"}
    for scenario in ("paper3", "paper3_energy"):
        cells = expand(load_experiment("parallel_learning", [f"scenarios=[{scenario}]", "seeds=[1]"]))
        for cell in cells:
            if cell.key in recorded:
                assert cell.config_hash == recorded.pop(cell.key), cell.key
    assert not recorded, f"cells not found: {recorded}"


# --------------------------------------------------------------------------- records kept in git
RECORDS = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/runs/*/result.json"))


@functools.lru_cache(maxsize=None)
def _cells_by_dirname(experiment: str) -> dict:
    return {s.dirname: s for s in expand(load_experiment(experiment))}


@pytest.mark.slow  # expanding an experiment loads every cell's recipe (about a minute on 2 cores); CI runs it
@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parents[2].name}/{p.parent.name}")
def test_every_record_is_a_cell_of_its_experiment_with_the_current_hash(path):
    """A record in results/ is adopted only by hash: a recipe or experiment change that alters a
    recorded cell's config would leave a record that nothing adopts any more. Fail here instead, so
    that the record is re-run or deleted in the same change."""
    experiment = path.parents[2].name
    result = json.loads(path.read_text())
    specs = _cells_by_dirname(experiment)
    assert path.parent.name in specs, f"{path}: no cell {path.parent.name} in experiment {experiment} any more"
    spec = specs[path.parent.name]
    assert result["spec"]["config_hash"] == spec.config_hash, (
        f"{path}: recorded with config hash {result['spec']['config_hash']}, the experiment now gives "
        f"{spec.config_hash}: re-run the cell (record=true) or delete the record")
    assert json.loads((path.parent / "spec.json").read_text())["config_hash"] == spec.config_hash
    assert "summary" in result and result["spec"]["key"] == spec.key


def test_a_cell_records_the_commit_its_process_started_from(tiny_run, tmp_path, monkeypatch):
    """git_commit is the checkout's commit when the process ran its first cell (the code it
    imported); a commit made while the cell ran is recorded beside it as git_commit_at_end."""
    import dcsched.experiments.runner as runner
    import dcsched.provenance as provenance
    from dcsched.experiments.runner import RunOptions, execute

    commits = iter(["aaaaaaa", "bbbbbbb", "bbbbbbb", "bbbbbbb"])
    monkeypatch.setattr(provenance, "git_commit", lambda: next(commits))
    monkeypatch.setattr(runner, "_PROCESS_COMMIT", [])
    cfg = load_experiment(tiny_run["path"], ["wandb_mode=disabled"])
    cells = [s for s in expand(cfg) if s.kind == "policy"]
    first = execute(cells[0], tmp_path / "a", RunOptions(wandb_mode="disabled", threads=1))
    assert first["git_commit"] == "aaaaaaa" and first["git_commit_at_end"] == "bbbbbbb"
    again = execute(cells[0], tmp_path / "b", RunOptions(wandb_mode="disabled", threads=1))
    assert again["git_commit"] == "aaaaaaa"  # the same process: the same imported code


def test_records_are_not_ignored_by_git():
    """results/<experiment>/runs/ is where records live; a broad `runs/` ignore rule once kept every
    record out of git while the docs said they were kept."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    probe = subprocess.run(["git", "check-ignore", "-q", "results/some_experiment/runs/some_cell/result.json"], cwd=root)
    assert probe.returncode == 1, "results/*/runs/ is git-ignored: records would never be committed"
    assert subprocess.run(["git", "check-ignore", "-q", "runs/experiments/x/result.json"], cwd=root).returncode == 0


def test_a_report_with_only_the_bound_finished_is_written_without_figures_of_methods(tmp_path):
    """Reading an experiment whose only finished cell is the LP bound (e.g. adopted from another
    experiment's records before any method ran) writes the report; it has no bar chart to draw."""
    report, _ = run_experiment(tiny_yaml(tmp_path), ["wandb_mode=disabled", f"out_dir={tmp_path / 'out'}",
                                                     "only=LP bound$"])
    text = Path(report).read_text()
    assert "LP bound" in text and "pending" in text
    assert not (Path(report).parent / "share_of_bound.png").exists()


def test_a_bound_cell_keeps_each_solved_day_and_resumes_with_the_rest(tmp_path):
    """A bound cell saves each solved day (with its hash) as it goes; a rerun solves only the days
    missing (a sentinel left for one day survives into result.json), a file of another hash is
    ignored, and the file is gone once the cell has finished."""
    from dcsched.data.exogenous import day_dates
    from dcsched.data.exogenous import parse_days
    from dcsched.experiments.runner import BOUND_PROGRESS, RunOptions, _scenario, execute, run_dir

    cfg = load_experiment(tiny_yaml(tmp_path), ["max_days=2", f"out_dir={tmp_path / 'out'}"])
    bound = next(s for s in expand(cfg) if s.kind == "bound")
    exp_dir = tmp_path / "out" / "tiny"
    scenario = _scenario(bound)
    first, second = day_dates(scenario, parse_days(scenario, bound.days)[:2])
    folder = run_dir(exp_dir, bound)
    folder.mkdir(parents=True)
    solved = {}
    for hash_, expect_sentinel in ((bound.config_hash, True), ("another", False)):
        (folder / BOUND_PROGRESS).write_text(json.dumps({"config_hash": hash_, "bounds_usd": {first: 12345.0}}))
        got = execute(bound, exp_dir, RunOptions(wandb_mode="disabled"))["bounds_usd"]
        assert list(got) == [first, second] and not (folder / BOUND_PROGRESS).exists()
        assert (got[first] == 12345.0) == expect_sentinel
        solved.setdefault(second, got[second])
        assert got[second] == solved[second] > 0
        (folder / "result.json").unlink()
    with pytest.raises(ConfigError, match="lp_workers"):
        load_experiment(tiny_yaml(tmp_path), ["lp_workers=0"])


def _tree(folder: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_status_reports_each_cells_state_and_writes_nothing(tiny_run, tmp_path):
    """`dcsched experiment NAME --status`: finished, recorded, partial training with its frames,
    a bound's saved days, another config's folder, a failed cell; which cells the same overrides
    would run; no file written or touched."""
    import shutil

    from dcsched.training.train import train_from_config
    from dcsched.experiments.runner import BOUND_PROGRESS, run_dir
    from dcsched.experiments.status import experiment_status, format_status

    out, records = tmp_path / "out", tmp_path / "records"
    exp_dir = out / "tiny"
    shutil.copytree(tiny_run["whole"], exp_dir)
    specs = {s.key.split("/", 2)[-1]: s for s in expand(load_experiment(tiny_run["path"]))}
    base = [f"out_dir={out}", f"records_dir={records}", "wandb_mode=disabled"]
    assert {c.state for c in experiment_status(tiny_run["path"], base)} == {"finished"}

    # SAC s0: moved to the records (the next invocation adopts it); SAC s1: interrupted at half its frames
    s0, s1 = specs["SAC/s0"], specs["SAC/s1"]
    shutil.copytree(run_dir(exp_dir, s0), records / "tiny" / "runs" / s0.dirname)
    shutil.rmtree(run_dir(exp_dir, s0))
    shutil.rmtree(run_dir(exp_dir, s1))
    folder = run_dir(exp_dir, s1)
    half = load_recipe(s1.recipe, [*s1.overrides, "trainer.total_frames=1024", f"out_dir={folder}",
                                   "logger.wandb_mode=disabled", "trainer.progress=false", "eval.policies=null"])
    train_from_config(half, run_dir=folder / "train")
    (folder / "train" / "config.yaml").write_text((folder / "train" / "config.yaml").read_text()
                                                  .replace("total_frames: 1024", "total_frames: 2048"))
    (folder / "spec.json").write_text(json.dumps(s1.to_dict()))
    # the bound: unfinished with one saved day; local_only: its folder holds another config's run
    bound, local = specs["LP bound"], specs["local_only"]
    day = json.loads((run_dir(exp_dir, bound) / "result.json").read_text())["bounds_usd"]
    (run_dir(exp_dir, bound) / "result.json").unlink()
    (run_dir(exp_dir, bound) / BOUND_PROGRESS).write_text(json.dumps({"config_hash": bound.config_hash,
                                                                       "bounds_usd": day}))
    started = {c.key: c for c in experiment_status(tiny_run["path"], base)}[bound.key]
    assert started.state == "partial" and "1 of 1 days solved" in started.detail
    (run_dir(exp_dir, bound) / BOUND_PROGRESS).unlink()  # started (spec.json written), nothing saved yet
    started = {c.key: c for c in experiment_status(tiny_run["path"], base)}[bound.key]
    assert started.state == "partial" and started.detail.startswith("started, no day solved yet")
    (run_dir(exp_dir, bound) / BOUND_PROGRESS).write_text(json.dumps({"config_hash": bound.config_hash,
                                                                       "bounds_usd": day}))
    stale = json.loads((run_dir(exp_dir, local) / "spec.json").read_text()) | {"config_hash": "0" * 12}
    (run_dir(exp_dir, local) / "spec.json").write_text(json.dumps(stale))
    (run_dir(exp_dir, local) / "result.json").write_text(json.dumps({"spec": stale}))

    before = _tree(tmp_path)
    cells = {c.key.split("/", 2)[-1]: c for c in experiment_status(tiny_run["path"], base)}
    assert _tree(tmp_path) == before  # nothing written, nothing moved
    assert cells["SAC/s0"].state == "recorded" and not cells["SAC/s0"].selected
    assert cells["SAC/s1"].state == "partial" and "1,024 of 2,048 frames (50 %)" in cells["SAC/s1"].detail
    assert cells["SAC/s1"].selected
    assert cells["LP bound"].state == "partial" and "1 of 1 days solved" in cells["LP bound"].detail
    assert cells["local_only"].state == "to run" and "another config" in cells["local_only"].detail
    text = format_status("tiny", list(cells.values()))
    assert "1 recorded, 2 partial, 1 to run" in text and "3 would run now" in text

    # only= and max_runs= choose as a real invocation would; a failed cell shows its error
    chosen = [c.key for c in experiment_status(tiny_run["path"], [*base, "only=SAC"]) if c.selected]
    assert chosen == [s1.key]
    assert sum(c.selected for c in experiment_status(tiny_run["path"], [*base, "max_runs=1"])) == 1
    (folder / "error.txt").write_text("Traceback ...\nRuntimeError: out of memory\n")
    failed = {c.key: c for c in experiment_status(tiny_run["path"], base)}[s1.key]
    assert failed.state == "failed" and failed.detail == "RuntimeError: out of memory"
    # without the records (reuse=false), the recorded cell is to run again
    assert {c.key: c.state for c in experiment_status(tiny_run["path"], [*base, "reuse=false"])}[s0.key] == "to run"


def test_overrides_may_follow_a_flag_on_the_command_line():
    from dcsched.cli import build_parser, parse_args

    parser = build_parser()
    args = parse_args(parser, ["experiment", "shaping_controls", "--status", "only=SAC", "seeds=[1]"])
    assert args.status and args.overrides == ["only=SAC", "seeds=[1]"]
    args = parse_args(parser, ["experiment", "shaping_controls", "tier=quick", "--status"])
    assert args.status and args.overrides == ["tier=quick"]
    with pytest.raises(SystemExit):
        parse_args(parser, ["experiment", "shaping_controls", "--status", "--bogus"])
    with pytest.raises(SystemExit):
        parse_args(parser, ["list", "agent", "seed=1"])  # a command without overrides


def test_record_into_the_shipped_results_is_refused_from_a_dirty_checkout(tmp_path, monkeypatch):
    """A record in the checkout's results/ names the code that made it: with uncommitted changes
    record=true is refused before anything runs; a scratch records_dir is allowed (the record carries
    the -dirty mark)."""
    import dcsched.provenance
    from dcsched.paths import REPO_ROOT

    monkeypatch.setattr(dcsched.provenance, "git_commit", lambda: "abc1234-dirty")
    before = sorted(p.name for p in (REPO_ROOT / "results").iterdir())
    with pytest.raises(ConfigError, match=r"uncommitted changes \(abc1234-dirty\)"):
        run_experiment("shaping_controls", ["wandb_mode=disabled", "record=true", f"records_dir={REPO_ROOT / 'results'}",
                                            f"out_dir={tmp_path}", "only=^nothing$"])
    assert sorted(p.name for p in (REPO_ROOT / "results").iterdir()) == before and list(tmp_path.iterdir()) == []
    run_experiment("shaping_controls", ["wandb_mode=disabled", "record=true", f"records_dir={tmp_path / 'scratch'}",
                                        f"out_dir={tmp_path / 'out'}", "only=^nothing$", "reuse=false"])
