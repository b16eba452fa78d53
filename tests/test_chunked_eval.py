"""Day-chunked evaluation (dcsched.eval.chunked) and the policy cells that resume by chunk: every
policy that declares itself day-separable gives, day by day, exactly the rows of one batched
evaluation, in chunks of any size and in worker processes; a non-separable one does not."""

from __future__ import annotations

import json

import pytest

from dcsched.baselines.planners import PlanPolicy
from dcsched.config import load_scenario
from dcsched.eval.chunked import evaluate_chunk, evaluate_day_rows
from dcsched.eval.day_pool import day_chunks, is_day_separable
from dcsched.eval.evaluate import evaluate_policies
from dcsched.registry import POLICIES

SEPARABLE = sorted(n for n in POLICIES.names() if is_day_separable(n))
RULES = [n for n in SEPARABLE if not issubclass(POLICIES.get(n), PlanPolicy)]
PLANNERS = [n for n in SEPARABLE if issubclass(POLICIES.get(n), PlanPolicy)]
BATCH_ONLY = {"defer_to_cheap_hours"}  # refuses a scenario without batch work


def batched_rows(cfg, policy: str, max_days: int) -> list[dict]:
    results = evaluate_policies(cfg, [policy], "test", None, max_days=max_days, plots=False)
    return next(iter(results.values()))["per_day"]


@pytest.fixture(scope="module")
def paper3():
    return load_scenario("paper3")


def test_which_policies_are_day_separable():
    assert {"local_only", "centre_action", "headroom_fill"} <= set(RULES)
    assert {"greedy_myopic", "mpc", "lp_oracle"} <= set(PLANNERS)
    assert not is_day_separable("random") and not is_day_separable("runs/x/train/checkpoints/last.ckpt")
    assert is_day_separable("greedy_myopic:levels=milp")


def test_day_chunks_cover_the_days_in_order():
    dates = [f"d{i}" for i in range(10)]
    assert day_chunks(dates, workers=1) == [dates[0:4], dates[4:8], dates[8:10]]  # at most 4 days a chunk
    assert day_chunks(dates, workers=5) == [dates[i : i + 2] for i in range(0, 10, 2)]  # every worker busy
    assert day_chunks(dates, chunk_days=3) == [dates[0:3], dates[3:6], dates[6:9], dates[9:]]
    with pytest.raises(ValueError):
        day_chunks(dates, workers=0)


@pytest.mark.parametrize("policy", RULES)
def test_a_rule_in_chunks_equals_one_batch(paper3, policy):
    batched = batched_rows(paper3, policy, 3)
    assert evaluate_day_rows(paper3, policy, "test", max_days=3, chunk_days=2) == batched  # chunks of 2 and 1


def test_the_equality_test_has_teeth(paper3):
    """``random`` draws every row from one generator: its day 2 played alone differs from day 2 in a
    batch of three, which is why it is not day-separable (and would fail the tests above)."""
    batched = batched_rows(paper3, "random", 3)
    alone = evaluate_chunk(paper3, "random", [batched[1]["day"]])
    assert alone[0]["utility_usd"] != batched[1]["utility_usd"]
    with pytest.raises(ValueError, match="not day-separable"):
        evaluate_day_rows(paper3, "random", "test", max_days=3)


def test_known_days_are_not_played_again(paper3):
    first, second = (row["day"] for row in batched_rows(paper3, "local_only", 2))
    sentinel = {"day": first, "utility_usd": 12345.0}
    finished = []
    rows = evaluate_day_rows(paper3, "local_only", "test", max_days=2, known={first: sentinel, "1999-01-01": {}},
                             on_chunk=finished.append)
    assert rows[0] is sentinel and rows[1]["day"] == second
    assert [[row["day"] for row in chunk] for chunk in finished] == [[second]]


@pytest.mark.slow
@pytest.mark.parametrize("policy", [*PLANNERS, "mpc:horizon=3,forecast=noisy_oracle", "mpc:horizon=3,forecast=seasonal_naive",
                                    "mpc:horizon=3,forecast=seasonal_naive@flex"])
def test_a_planner_in_chunks_equals_one_batch(paper3, policy):
    # mpc: the code path of H = 12 with a quarter of the LP; levels=milp changes the solver, not the loop over rows.
    # A policy that schedules batch work (and "...@flex") plays a scenario with batch work (its queue per row).
    policy, _, flex = policy.partition("@")
    policy = "mpc:horizon=3" if policy == "mpc" else policy
    cfg = load_scenario("paper3_energy_flex") if flex or policy in BATCH_ONLY else paper3
    batched = batched_rows(cfg, policy, 2)
    assert evaluate_day_rows(cfg, policy, "test", max_days=2, chunk_days=1) == batched


@pytest.mark.slow
def test_chunks_in_worker_processes_equal_one_process(paper3, tmp_path):
    """Rows in worker processes (the experiment cell's path), and ``evaluate_policies(workers=2)``
    (``dcsched evaluate --workers 2``): the same trace.csv and summaries as one batch, for a
    separable policy beside one that is not (it plays one batch)."""
    assert (evaluate_day_rows(paper3, "headroom_fill", "test", max_days=3, workers=2)
            == batched_rows(paper3, "headroom_fill", 3))
    policies = ["headroom_fill", "random"]
    one, two = (evaluate_policies(paper3, policies, "test", tmp_path / f"w{w}", max_days=5, workers=w, plots=False)
                for w in (1, 2))
    for name in policies:
        traces = [(tmp_path / f"w{w}" / name / "trace.csv").read_bytes() for w in (1, 2)]
        assert traces[0] == traces[1]
        assert one[name]["per_day"] == two[name]["per_day"] and one[name]["mean"] == two[name]["mean"]


def test_workers_need_deterministic_arrivals(tmp_path, capsys):
    from dcsched.cli import main

    rc = main(["evaluate", "--policy", "local_only", "--stochastic", "--workers", "2", "--max-days", "1",
               "--out", str(tmp_path / "o"), "--no-plots"])
    assert rc == 2 and "--workers" in capsys.readouterr().err and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="workers"):
        evaluate_policies(load_scenario("paper3"), ["local_only"], "test", None, deterministic=False, max_days=1,
                          workers=2)


# --------------------------------------------------------------------------- the experiment cell
def test_a_policy_cell_keeps_each_chunk_and_resumes_with_the_rest(tmp_path):
    """A day-separable policy cell saves each finished chunk's rows (with the cell's hash); a rerun
    plays only the days missing (a sentinel row left for one day survives into result.json), a file
    of another hash is ignored, the file is gone once the cell has finished, and the summary is the
    mean of the rows."""
    from test_experiments import tiny_yaml

    from dcsched.errors import ConfigError
    from dcsched.experiments.runner import EVAL_PROGRESS, RunOptions, execute, run_dir
    from dcsched.experiments.spec import expand, load_experiment

    cfg = load_experiment(tiny_yaml(tmp_path), ["max_days=2", f"out_dir={tmp_path / 'out'}"])
    cell = next(s for s in expand(cfg) if s.kind == "policy" and s.policy == "local_only")
    exp_dir = tmp_path / "out" / "tiny"
    folder = run_dir(exp_dir, cell)
    folder.mkdir(parents=True)
    truth = batched_rows(load_scenario(cell.scenario), "local_only", 2)
    first = truth[0]["day"]
    sentinel = {**truth[0], "utility_usd": 12345.0}
    for hash_, expect_sentinel in ((cell.config_hash, True), ("another", False)):
        (folder / EVAL_PROGRESS).write_text(json.dumps({"config_hash": hash_, "rows": {first: sentinel}}))
        got = execute(cell, exp_dir, RunOptions(wandb_mode="disabled"))
        assert got["days"] == [row["day"] for row in truth] and not (folder / EVAL_PROGRESS).exists()
        assert got["per_day"][1] == truth[1]
        assert got["per_day"][0] == (sentinel if expect_sentinel else truth[0])
        mean_usd = (got["per_day"][0]["utility_usd"] + truth[1]["utility_usd"]) / 2
        assert got["summary"]["utility_usd"] == pytest.approx(mean_usd)
        (folder / "result.json").unlink()
    with pytest.raises(ConfigError, match="eval_workers"):
        load_experiment(tiny_yaml(tmp_path), ["eval_workers=0"])


def test_a_policy_cell_keeps_each_poisson_seed_and_resumes_with_the_rest(tmp_path):
    """With stochastic seeds, a policy cell saves each finished Poisson seed (with the cell's hash):
    a rerun plays only the seeds missing (a sentinel left for seed 0 survives into result.json), a
    file of another hash is ignored, the seeds' mean is over the saved and played seeds, and the
    file is gone once the cell has finished."""
    from test_experiments import tiny_yaml

    from dcsched.experiments.runner import STOCHASTIC_PROGRESS, RunOptions, execute, run_dir
    from dcsched.experiments.spec import expand, load_experiment

    cfg = load_experiment(tiny_yaml(tmp_path), ["max_days=1", "stochastic_seeds=2", f"out_dir={tmp_path / 'out'}"])
    cell = next(s for s in expand(cfg) if s.kind == "policy" and s.policy == "local_only")
    exp_dir = tmp_path / "out" / "tiny"
    folder = run_dir(exp_dir, cell)
    folder.mkdir(parents=True)
    sentinel = {"utility_usd": 12345.0, "violation_rate": 0.5}
    got = {}
    for hash_ in (cell.config_hash, "another"):
        (folder / STOCHASTIC_PROGRESS).write_text(json.dumps({"config_hash": hash_, "per_seed": {"0": sentinel}}))
        got[hash_] = execute(cell, exp_dir, RunOptions(wandb_mode="disabled"))["stochastic"]
        assert not (folder / STOCHASTIC_PROGRESS).exists()
        (folder / "result.json").unlink()
    resumed, fresh = got[cell.config_hash], got["another"]
    assert resumed["per_seed"][0] == sentinel and fresh["per_seed"][0] != sentinel
    assert resumed["per_seed"][1] == fresh["per_seed"][1]  # seed 1 played in both runs, the same draws
    assert fresh["per_seed"][0]["utility_usd"] != fresh["per_seed"][1]["utility_usd"]  # two different draws
    assert resumed["utility_usd"] == pytest.approx((12345.0 + fresh["per_seed"][1]["utility_usd"]) / 2)


def test_status_counts_the_saved_poisson_seeds(tmp_path):
    """`--status` on an interrupted policy cell: its saved days and, once its Poisson seeds began,
    how many of them are saved (another config's seeds are not counted)."""
    from test_experiments import tiny_yaml

    from dcsched.experiments.runner import EVAL_PROGRESS, STOCHASTIC_PROGRESS, run_dir
    from dcsched.experiments.spec import expand, load_experiment
    from dcsched.experiments.status import _partial_detail

    cfg = load_experiment(tiny_yaml(tmp_path), ["max_days=1", "stochastic_seeds=3", f"out_dir={tmp_path / 'out'}"])
    cell = next(s for s in expand(cfg) if s.kind == "policy" and s.policy == "local_only")
    folder = run_dir(tmp_path / "out" / "tiny", cell)
    folder.mkdir(parents=True)
    (folder / EVAL_PROGRESS).write_text(json.dumps({"config_hash": cell.config_hash, "rows": {"2023-01-06": {}}}))
    assert _partial_detail(cell, folder) == "1 of 1 days played"
    for hash_, expected in ((cell.config_hash, "1 of 1 days played, 2 of 3 Poisson seeds"), ("another", "1 of 1 days played")):
        (folder / STOCHASTIC_PROGRESS).write_text(json.dumps({"config_hash": hash_, "per_seed": {"0": {}, "1": {}}}))
        assert _partial_detail(cell, folder) == expected
