"""`dcsched results`: the docs' results tables come from the records under results/ alone, and a
table that differs from what the records give fails this test."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dcsched.cli import main
from dcsched.errors import ConfigError
from dcsched.experiments.results_tables import DOCS_WITH_TABLES as DOC_PAGES
from dcsched.experiments.results_tables import (blocks_in, method_summaries, read_records, render_tables,
                                                replace_blocks, write_or_check)

ROOT = Path(__file__).resolve().parent.parent
DOCS_WITH_TABLES = [ROOT / f for f in DOC_PAGES]
DAYS = ["2023-01-06", "2023-01-13"]


@pytest.mark.parametrize("path", DOCS_WITH_TABLES, ids=lambda p: p.name)
def test_the_docs_tables_are_what_the_records_give(path):
    assert blocks_in(path.read_text()), f"{path} has no generated results block"
    stale = write_or_check(ROOT / "results", [path], write=False)
    assert stale == [], f"regenerate with: dcsched results --write {path.relative_to(ROOT)}"


def test_a_changed_record_makes_the_check_fail_naming_the_block(tmp_path, capsys):
    records = tmp_path / "results"
    shutil.copytree(ROOT / "results", records)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    assert main(["results", "--records", str(records), "--check", str(readme)]) == 0
    cell = next(records.glob("hybrid_stochastic/runs/paper3__default__hybrid__s0/result.json"))
    result = json.loads(cell.read_text())
    result["summary"]["utility_usd"] -= 50.0
    cell.write_text(json.dumps(result))
    capsys.readouterr()
    assert main(["results", "--records", str(records), "--check", str(readme)]) == 1
    assert f"stale: {readme}: glance" in capsys.readouterr().out
    assert main(["results", "--records", str(records), "--write", str(readme)]) == 0
    assert main(["results", "--records", str(records), "--check", str(readme)]) == 0


def _cell(root: Path, experiment: str, name: str, spec: dict, result: dict) -> None:
    folder = root / experiment / "runs" / name
    folder.mkdir(parents=True)
    spec = {"scenario": "paper3", "setting": "default", "recipe": "", "policy": "", "overrides": [],
            "scenario_overrides": [], "days": "test", "max_days": 0, "seed": 0, **spec}
    (folder / "spec.json").write_text(json.dumps(spec))
    (folder / "result.json").write_text(json.dumps({"spec": spec, "days": DAYS, **result}))


def _summary(utility: float, violation: float = 0.0) -> dict:
    return {"summary": {"utility_usd": utility, "violation_rate": violation}}


@pytest.fixture
def records(tmp_path):
    """Two experiments: both record the bound, local_only and seeds 0-1 of a method (the same cells);
    one adds seed 2 (from a dirty checkout) and another configuration under the same name."""
    root = tmp_path / "results"
    bound = {"bounds_usd": dict(zip(DAYS, [1000.0, 1200.0]))}  # mean 1100
    for exp in ("exp_a", "exp_b"):
        _cell(root, exp, "bound", {"kind": "bound", "method": "LP bound", "config_hash": "b"}, bound)
        _cell(root, exp, "local", {"kind": "policy", "method": "local_only", "policy": "local_only", "config_hash": "l"},
              _summary(600.0, 0.25))
        for seed, utility in [(0, 900.0), (1, 950.0)]:
            _cell(root, exp, f"m{seed}", {"kind": "train", "method": "m", "recipe": "sac", "seed": seed,
                                           "overrides": [f"seed={seed}"], "config_hash": f"h{seed}"},
                  {**_summary(utility, 0.01), "train": {"wall_s": 600.0}, "torch_threads": 1, "git_commit": "abc"})
    _cell(root, "exp_b", "m2", {"kind": "train", "method": "m", "recipe": "sac", "seed": 2, "overrides": ["seed=2"],
                                "config_hash": "h2"},
          {**_summary(1000.0, 0.01), "train": {"wall_s": 900.0}, "torch_threads": 2, "git_commit": "abc-dirty"})
    _cell(root, "exp_b", "other", {"kind": "train", "method": "m", "recipe": "sac", "seed": 0,
                                   "overrides": ["seed=0", "optim.lr_actor=1e-3"], "config_hash": "o0"},
          {**_summary(500.0), "train": {"wall_s": 60.0}, "torch_threads": 1})
    return root


def test_shares_p_prime_and_intervals_follow_their_definitions(records):
    rows = {r["method"]: r for r in method_summaries(read_records(records))}
    assert set(rows) == {"local_only", "m (exp_a)", "m (exp_b)"}, "one configuration, one row; two share no name"
    m = rows["m (exp_a)"]
    assert m["seeds"] == [0, 1, 2], "a seed recorded by two experiments counts once"
    utilities = np.array([900.0, 950.0, 1000.0])
    share = utilities / 1100.0
    lo, hi = stats.t.interval(0.95, 2, loc=share.mean(), scale=stats.sem(share))
    np.testing.assert_allclose(m["share"], (share.mean(), lo, hi), rtol=1e-12)
    np.testing.assert_allclose(m["p_prime"][0], np.mean((utilities - 600.0) / (1100.0 - 600.0)), rtol=1e-12)
    assert rows["local_only"]["p_prime"][0] == 0.0 and rows["local_only"]["share"][0] == 600.0 / 1100.0
    assert m["dirty"] and not rows["local_only"]["dirty"], "the dirty seed marks its method only"
    assert m["threads"] == [1, 2] and m["train_min"] == pytest.approx(700.0 / 60.0)
    assert m["experiments"] == ["exp_a", "exp_b"]
    table = render_tables(records)["glance"]
    assert "| paper3 | m (exp_a) † | learned | 86.4 [" in table and "| 3 | 2 | 11.7 (1–2) | exp_a, exp_b |" in table
    assert "| paper3 | local_only | baseline | 54.5 | 0.000 | 25.00 % |" in table


def test_a_cell_without_a_bound_of_its_days_is_left_out(records):
    for bound in records.glob("*/runs/bound/result.json"):
        result = json.loads(bound.read_text())
        result["bounds_usd"].pop(DAYS[1])
        bound.write_text(json.dumps(result))
    assert method_summaries(read_records(records)) == []


def test_unknown_blocks_and_files_without_blocks_are_refused(tmp_path, records):
    with pytest.raises(ConfigError, match="no such generated table"):
        replace_blocks("<!-- results:nope -->\n<!-- /results:nope -->", {"glance": "x\n"}, "F.md")
    plain = tmp_path / "plain.md"
    plain.write_text("no blocks here\n")
    with pytest.raises(ConfigError, match="no generated block to fill"):
        write_or_check(records, [plain], write=True)
    assert main(["results", "--records", str(tmp_path / "missing")]) == 2


def test_rliable_aggregates_follow_their_definitions():
    """The aggregates of dcsched.stats on hand-checkable scores (rliable's definitions: IQM is the
    25 % trimmed mean of all runs x tasks; the optimality gap clips at 1; P(X > Y) counts ties half)."""
    from dcsched.stats import (aggregate_iqm, aggregate_median, optimality_gap, performance_profile,
                               probability_of_improvement)

    scores = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])  # 4 runs x 2 tasks
    assert aggregate_iqm(scores) == pytest.approx(3.5)  # the middle 4 of 0..7
    assert aggregate_median(scores) == pytest.approx(3.5)  # median of the task means 3 and 4
    assert optimality_gap(np.array([[0.5, 1.5], [1.0, 0.0]])) == pytest.approx(1 - (0.5 + 1 + 1 + 0) / 4)
    np.testing.assert_allclose(performance_profile(scores, [-1.0, 3.0, 7.0]), [1.0, 0.5, 0.0])
    x = np.array([[1.0, 0.0], [3.0, 0.0]])
    y = np.array([[2.0, 0.0]])
    assert probability_of_improvement(x, y) == pytest.approx((0.5 + 0.5) / 2)  # task 1: 1 of 2 above; task 2: ties
    assert probability_of_improvement(y, y) == 0.5
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(3, 7))
    expected = np.mean([mannwhitneyu(a[:, t], b[:, t], alternative="greater").statistic / 15 for t in range(7)])
    assert probability_of_improvement(a, b) == pytest.approx(expected)


def test_the_stratified_bootstrap_resamples_runs_within_each_task_and_covers():
    """Every stratified sample keeps each task's column drawn from that task's own runs; a task whose
    runs agree adds no spread; and the 95 % interval of the mean covers the true mean about 95 % of the
    time over simulated score matrices (a non-stratified or mis-indexed resample fails one of these)."""
    from dcsched.stats import aggregate_mean, stratified_bootstrap_ci, stratified_resample

    scores = np.arange(12.0).reshape(4, 3) * np.array([1.0, 100.0, 10_000.0])
    samples = stratified_resample(scores, 50, np.random.default_rng(0))
    assert samples.shape == (50, 4, 3)
    for task in range(3):
        assert set(np.unique(samples[:, :, task])) <= set(scores[:, task])
    assert stratified_bootstrap_ci(np.ones((5, 4)), aggregate_mean) == (1.0, 1.0)
    rng = np.random.default_rng(7)
    covered = 0
    trials = 300
    for trial in range(trials):
        data = rng.normal(0.0, 1.0, size=(10, 4))  # the true mean of every aggregate is 0
        lo, hi = stratified_bootstrap_ci(data, aggregate_mean, reps=400, seed=trial)
        covered += lo <= 0.0 <= hi
    assert 0.88 <= covered / trials <= 0.99, covered / trials


def test_the_export_writes_marl_eval_json_and_the_profiles(records, tmp_path):
    for exp in ("exp_a", "exp_b"):  # per-day rows for every non-bound cell
        for result_path in (records / exp / "runs").glob("*/result.json"):
            result = json.loads(result_path.read_text())
            if result["spec"]["kind"] != "bound":
                u = result["summary"]["utility_usd"]
                result["per_day"] = [{"day": d, "utility_usd": u + k} for k, d in enumerate(DAYS)]
                if result["spec"]["kind"] == "train":
                    result["train"]["frames"] = 1000
            result_path.write_text(json.dumps(result))
    assert main(["results", "--records", str(records), "--export", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "marl_eval.json").read_text())
    day2 = data["dcsched"]["paper3/2023-01-13"]["m (exp_a)"]
    assert sorted(day2) == ["run_0", "run_1", "run_2"]
    # seed 1 on day 2: utility 951 against local_only's 601 and a bound of 1200
    assert day2["run_1"]["absolute_metrics"]["normalised_score"] == [pytest.approx((951 - 601) / (1200 - 601))]
    assert day2["run_1"]["step_0"]["step_count"] == 1000
    assert (tmp_path / "out" / "performance_profiles.png").stat().st_size > 10_000
    robust = (tmp_path / "out" / "robust.md").read_text()
    assert "| paper3 | m (exp_a) | 3 x 2 |" in robust and "local_only" in robust


def _integer_bounds_file(root: Path, days: list[str], integer_usd: list[float], scenario_hash: str | None = None) -> None:
    from dcsched.baselines.lp_bound import bound_scenario_hash
    from dcsched.config import load_scenario

    (root / "bounds").mkdir(exist_ok=True)
    per_day = [{"day": d, "lp_bound_usd": 0.0, "integer_bound_usd": v} for d, v in zip(days, integer_usd)]
    data = {"scenario": "paper3", "scenario_hash": scenario_hash or bound_scenario_hash(load_scenario("paper3")),
            "days": days, "per_day": per_day}
    (root / "bounds" / f"paper3_{scenario_hash or 'shipped'}.json").write_text(json.dumps(data))


def test_first_days_cells_leave_the_headline_for_the_integer_table(records):
    """A policy evaluated on the first N test days is not a headline row (set beside 52-day ones it
    would mislead); the integer table sets it against the LP bound and the recorded integer-level
    bound of the same days, only from a bounds file of the shipped scenario."""
    summary = {"summary": {"utility_usd": 990.0, "violation_rate": 0.0, "mean_steps": 33.0}}
    _cell(records, "exp_c", "bound7", {"kind": "bound", "method": "LP bound", "config_hash": "b7", "max_days": 2},
          {"bounds_usd": dict(zip(DAYS, [1000.0, 1200.0]))})
    _cell(records, "exp_c", "milp7", {"kind": "policy", "method": "greedy_myopic levels=milp", "max_days": 2,
                                      "policy": "greedy_myopic:levels=milp", "config_hash": "g7"}, summary)
    tables = render_tables(records)
    assert "greedy_myopic levels=milp" not in tables["glance"] and "greedy_myopic levels=milp" not in tables["robust"]
    assert "levels=milp" not in tables["integer"], "no integer-level bound of these days recorded: no row"

    _integer_bounds_file(records, DAYS, [999.0, 1199.0], scenario_hash="another-configuration")
    assert "levels=milp" not in render_tables(records)["integer"], "a bounds file of another configuration is not used"
    _integer_bounds_file(records, DAYS, [990.0, 1166.0])  # mean 1078
    table = render_tables(records)["integer"]
    assert "| paper3 | **integer-level bound** | 2 | 1,078.00 | 98.00 % | 100 % |" in table
    assert f"| paper3 | greedy_myopic levels=milp | 2 | 990.00 | 90.00 % | {100 * 990 / 1078:.2f} % | 0.00 % | 33.0 | exp_c |" \
        in table


def test_the_ladder_takes_each_rungs_best_and_leaves_clairvoyant_policies_out(records):
    """Rungs come from each policy's own family, clairvoyance and levels: a rule, a rounding planner,
    a planner in the env's levels, a learned run; an oracle (MPC on perfect forecasts) is above every
    rung and must not stand on one."""
    from dcsched.experiments.results_tables import ladder_table

    for name, policy, utility in [("fill", "headroom_fill", 700.0), ("greedy", "greedy_myopic", 1000.0),
                                  ("mpc", "mpc:every=4", 990.0), ("milp", "greedy_myopic:levels=milp", 1060.0),
                                  ("oracle", "mpc:forecast=perfect", 1090.0), ("lp_oracle", "lp_oracle", 1095.0)]:
        _cell(records, "exp_d", name, {"kind": "policy", "method": policy, "policy": policy, "config_hash": name},
              _summary(utility))
    table = ladder_table(method_summaries(read_records(records)))
    assert "| paper3 | reference (p' = 0) | local_only | 54.5 | 0.000 |" in table
    assert "| paper3 | best rule | headroom_fill | 63.6 |" in table
    assert "| paper3 | best rounding planner | greedy_myopic | 90.9 |" in table
    assert "| paper3 | best exact-level planner | greedy_myopic:levels=milp | 96.4 |" in table
    assert "| paper3 | best learned policy | m (exp_a) † | 86.4 [" in table
    assert "forecast=perfect" not in table and "lp_oracle" not in table


def test_clairvoyance_and_levels_are_the_policies_own():
    from dcsched.eval.policies import construct_policy

    assert not construct_policy("greedy_myopic").clairvoyant, "one slot: only the observed present"
    assert not construct_policy("mpc:forecast=seasonal_naive").clairvoyant
    assert construct_policy("mpc:forecast=noisy_oracle").clairvoyant and construct_policy("lp_oracle").clairvoyant
    assert construct_policy("greedy_myopic:levels=milp").exact_levels and not construct_policy("mpc").exact_levels
    assert construct_policy("local_only").family == "rule" and construct_policy("mpc").family == "planner"
