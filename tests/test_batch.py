"""Deferrable batch work (MODEL.md section 11, docs/model.md "Deferrable batch work"): the kernels
against the independent scalar reference, conservation of batch jobs, earliest-deadline-first
service, the day's settlement, the LP bound, and bad input."""

import pytest
import torch

from dcsched.config import load_scenario
from dcsched.data.exogenous import load_exogenous
from dcsched.sim import kernels
from dcsched.sim.params import build_params
from dcsched.sim.reference import reference_params, reference_step
from tests.helpers import exo_slot, random_decision

FLEX = ["batch.share=0.3", "batch.deadline_slots=24", "batch.horizon_slots=48"]


def _random_batch_fields(p, d, gen):
    """``d`` with random batch routing, step levels and serve shares (some exactly 0 or 1)."""
    N = p.num_dcs
    transfer = torch.softmax(torch.randn(1, N, N, generator=gen, dtype=torch.float64) * 2, dim=-1)
    serve = torch.rand(1, N, generator=gen, dtype=torch.float64)
    serve = torch.where(serve < 0.2, torch.zeros_like(serve), torch.where(serve > 0.8, torch.ones_like(serve), serve))
    steps = torch.randint(0, len(p.steps_grid), (1, N), generator=gen)
    return kernels.Decision(d.transfer, d.steps_idx, d.freq_idx, d.battery_frac, transfer, steps, serve)


def _day(overrides, day=124):
    cfg = load_scenario("paper3", overrides)
    return cfg, build_params(cfg, dtype=torch.float64), load_exogenous(cfg, [day], dtype=torch.float64)


def _batch_exo(exo, t, T):
    ex = exo_slot(exo, torch.tensor([0]), torch.tensor([t]))
    ex["batch_arrivals"] = exo.batch_arrival_rate[0:1, t]
    ex["last_slot"] = torch.tensor([t == T - 1])
    return ex


@pytest.mark.parametrize("extra", [[], ["batch.horizon_slots=24", "batch.deadline_slots=24"], ["stress=[link_down]"]])
def test_kernels_equal_the_reference_over_a_day_with_batch_work(extra):
    """288 slots chained with random decisions (load x 1.3, so capacity binds and work ages, is
    late and dropped); the reference derives its own parameters from the scenario."""
    cfg, p, exo = _day(FLEX + extra)
    P = reference_params(cfg)
    assert p.has_batch and P["batch"]
    g = torch.Generator().manual_seed(3)
    T = p.slots_per_day
    state = kernels.initial_state(p, (1,))
    N, A = p.num_dcs, p.batch_horizon_slots
    ref_state = {"soc": [P["soc_init"]] * N, "backlog_work_gpu_s": [0.0] * N, "backlog_energy_j": [0.0] * N,
                 "backlog_jobs": [0.0] * N, "batch_queue": [[[0.0] * A for _ in range(N)] for _ in range(N)]}
    seen = {"late": 0.0, "dropped": 0.0}
    for t in range(T):
        d = _random_batch_fields(p, random_decision(p, 1, g), g)
        ex = _batch_exo(exo, t, T)
        ex.update(exo.faults_at(torch.tensor([0]), torch.tensor([t])))
        arrivals = exo.arrival_rate[0, t].unsqueeze(0) * 1.3
        state, out = kernels.step(p, state, arrivals, d, ex)
        dec = {"transfer": d.transfer[0].tolist(), "steps_idx": d.steps_idx[0].tolist(),
               "freq_idx": d.freq_idx[0].tolist(), "battery_frac": None,
               "batch_transfer": d.batch_transfer[0].tolist(), "batch_steps_idx": d.batch_steps_idx[0].tolist(),
               "batch_serve_frac": d.batch_serve_frac[0].tolist()}
        ref_ex = {k: (v[0].tolist() if isinstance(v, torch.Tensor) else v) for k, v in ex.items()}
        ref_ex["last_slot"] = t == T - 1
        ref_state, ref = reference_step(P, ref_state, arrivals[0].tolist(), dec, ref_ex)
        for key, val in ref.items():
            torch.testing.assert_close(out[key][0], torch.tensor(val, dtype=torch.float64), rtol=1e-6, atol=1e-6,
                                       msg=lambda m, key=key, t=t: f"slot {t}, {key}: {m}")
        torch.testing.assert_close(state.batch_queue[0], torch.tensor(ref_state["batch_queue"], dtype=torch.float64),
                                   rtol=1e-6, atol=1e-6)
        seen["late"] += float(out["batch_late"].sum())
        seen["dropped"] += float(out["batch_dropped"].sum())
    assert seen["dropped"] > 1.0, f"the day never dropped batch work: {seen}"
    if p.batch_horizon_slots > p.batch_deadline_slots:
        assert seen["late"] > 1.0, f"the day never served batch work late: {seen}"
    else:
        assert seen["late"] == 0.0  # no age between the deadline and the horizon


@pytest.mark.parametrize("serve", [0.0, 0.02, 1.0])
def test_every_batch_job_ends_once_on_time_late_or_dropped(serve):
    """Over a day (deterministic arrivals) batch arrivals = on time + late + dropped to 1e-6, the
    queue is empty after the day's last slot, and work served never exceeds the capacity."""
    _, p, exo = _day(FLEX)
    T, N = p.slots_per_day, p.num_dcs
    state = kernels.initial_state(p, (1,))
    totals = dict(arrivals=0.0, on_time=0.0, late=0.0, dropped=0.0)
    for t in range(T):
        d = kernels.Decision(torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(1, N, N, p.num_classes).clone(),
                             torch.full((1, N, p.num_classes), 5), torch.full((1, N), 4),
                             batch_serve_frac=torch.full((1, N), serve, dtype=torch.float64))
        state, out = kernels.step(p, state, exo.arrival_rate[0:1, t], d, _batch_exo(exo, t, T))
        for key in totals:
            totals[key] += float(out[f"batch_{key}"].sum())
        assert (out["busy_gpu_s"] <= p.capacity_gpu_s * (1 + 1e-9)).all()
        assert (state.batch_queue >= 0).all() and (state.batch_queue[..., 0] == 0).all()
    assert float(state.batch_queue.abs().sum()) == 0.0
    ended = totals["on_time"] + totals["late"] + totals["dropped"]
    assert ended == pytest.approx(totals["arrivals"], rel=1e-9, abs=1e-6)
    if serve == 0.0:
        assert totals["dropped"] == pytest.approx(totals["arrivals"], rel=1e-9)
    if serve == 1.0:
        assert totals["on_time"] > 0.9 * totals["arrivals"]  # capacity binds at the peak: not all


def test_the_queue_is_served_oldest_first():
    """With capacity short, no DC serves work of an age while older work of its queue waits."""
    _, p, exo = _day(FLEX)
    N, A = p.num_dcs, p.batch_horizon_slots
    queue = torch.zeros(1, N, N, A, dtype=torch.float64)
    queue[0, 0, 0, 5] = 100.0
    queue[0, 1, 0, 20] = 50.0
    queue[0, 0, 0, 30] = 40.0  # late work: the oldest
    state = kernels.initial_state(p, (1,))
    state.batch_queue = queue
    d = kernels.default_batch_decision(p, kernels.Decision(
        torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(1, N, N, p.num_classes).clone(),
        torch.full((1, N, p.num_classes), 9), torch.full((1, N), 4)))
    steps = p.steps_grid[d.batch_steps_idx].unsqueeze(-1)  # [1, N, 1]
    job_s = float(kernels.job_time_and_energy(p, steps, p.freq_levels[d.freq_idx])[0][0, 0, 0])
    room = torch.tensor([[60.0 * job_s, 1e9, 1e9]], dtype=torch.float64)  # 60 jobs fit at DC 0
    out = kernels.serve_batch(p, queue, d, p.freq_levels[d.freq_idx], room, torch.zeros(1, N, dtype=torch.float64),
                              torch.tensor([False]))
    assert float(out["late"][0, 0, 0]) == pytest.approx(40.0)  # all of the oldest cohort
    assert float(out["on_time"][0, 1, 0]) == pytest.approx(20.0)  # then the age-20 cohort, in part
    assert float(out["on_time"][0, 0, 0]) == pytest.approx(0.0)  # the youngest waits
    assert float(out["queue"][0, 0, 0, 6]) == pytest.approx(100.0)  # and ages by one slot


def test_without_a_batch_share_nothing_changes():
    """share 0 (the default): no batch state, no batch outcome, the same arrivals."""
    cfg = load_scenario("paper3")
    p = build_params(cfg)
    assert not p.has_batch and kernels.initial_state(p, (2,)).batch_queue is None
    exo = load_exogenous(cfg, [5])
    assert exo.batch_arrival_rate is None


def test_interactive_arrivals_carry_one_minus_the_batch_share():
    base = load_exogenous(load_scenario("paper3"), [5])
    flex = load_exogenous(load_scenario("paper3", FLEX), [5])
    torch.testing.assert_close(flex.arrival_rate, base.arrival_rate * 0.7)
    torch.testing.assert_close(flex.batch_arrival_rate, base.arrival_rate.sum(-1) * 0.3)


@pytest.mark.parametrize("override, key", [
    ("batch.share=1.5", "batch.share"), ("batch.share=-0.1", "batch.share"),
    ("batch.deadline_slots=0", "batch.deadline_slots"), ("batch.horizon_slots=10", "batch.horizon_slots"),
    ("batch.obs_buckets=0", "batch.obs_buckets"),
])
def test_bad_batch_keys_name_the_key_and_the_allowed_range(override, key):
    from dcsched.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"scenario\.{key}.*allowed"):
        load_scenario("paper3", FLEX + [override])


def _replayed_day(extra, seed=11):
    from dcsched.baselines.lp_replay import replay_day

    _, p, exo = _day(FLEX + extra)
    g = torch.Generator().manual_seed(seed)
    slots = replay_day(p, exo, 0, lambda t, s: _random_batch_fields(p, random_decision(p, 1, g), g))
    assert sum(float(s["batch_dropped"].sum()) for s in slots) > 0
    return p, exo, slots


@pytest.mark.parametrize("extra", [[], ["batch.deadline_slots=24", "batch.horizon_slots=24"], ["stress=[link_down]"]])
def test_the_lp_at_the_envs_trajectory_equals_its_utility(extra):
    """A replayed day with random decisions (late and dropped batch work included) is a feasible
    point of the LP (queues, deadlines, horizon, settlement) with the env's utility as its value."""
    from dcsched.baselines.lp_model import build_lp
    from dcsched.baselines.lp_solve import window_from_exo
    from tests.helpers import assert_lp_contains

    p, exo, slots = _replayed_day(extra)
    assert_lp_contains(build_lp(p, window_from_exo(p, exo, 0)), slots, len(p.freq_levels))


@pytest.mark.slow
def test_the_lp_optimum_bounds_the_replayed_day():
    """The LP's optimum of a flex day is above the utility of the env's trajectory (about a
    minute on 2 cores: benchmarks/lp_batch_day.py times it)."""
    from dcsched.baselines.lp_solve import solve_window, window_from_exo

    p, exo, slots = _replayed_day([])
    res = solve_window(p, window_from_exo(p, exo, 0), "a paper3 flex day")
    assert res.value_usd >= sum(float(s["utility_usd"].sum()) for s in slots) - 1e-6


@pytest.mark.parametrize("encoding", ["continuous", "discrete"])
def test_the_env_with_batch_work_meets_its_specs_and_conserves_jobs(encoding):
    """Random actions over a whole day in both encodings: TorchRL's spec check passes, the
    observation carries the batch block, and every batch job ends once within the day."""
    from torchrl.envs.utils import check_env_specs

    from dcsched.config import EnvConfig
    from dcsched.envs.dc_env import make_env

    cfg = load_scenario("paper3", FLEX)
    env = make_env(cfg, EnvConfig(action_encoding=encoding), days=[5, 12], num_envs=2, seed=1)
    check_env_specs(env)
    N = env.params.num_dcs
    assert env.obs_dim == N * (2 + 2 + 7 + 2) + 2 + N * (1 + cfg.batch.obs_buckets)
    roll = env.rollout(env.T, break_when_any_done=False)
    out = roll["next", "outcome"]
    ended = sum(out[k].double().sum() for k in ("batch_on_time", "batch_late", "batch_dropped"))
    assert float(ended) == pytest.approx(float(out["batch_arrivals"].double().sum()), rel=1e-6)  # float32 env
    assert float(roll["next", "batch_queue"][:, -1].abs().sum()) == 0.0  # the day settled its queue


@pytest.mark.parametrize("encoding", ["continuous", "discrete"])
def test_batch_decisions_survive_encoding_and_unaware_policies_get_the_default(encoding):
    from dcsched.envs import actions

    _, p, _ = _day(FLEX)
    N, K = p.num_dcs, p.num_classes
    g = torch.Generator().manual_seed(2)
    d = random_decision(p, 4, g)
    enc = (lambda x: actions.encode_continuous(p, x, 5.0)) if encoding == "continuous" else (lambda x: actions.encode_discrete(p, x))
    dec = (lambda a: actions.decode_continuous(p, a, 5.0)) if encoding == "continuous" else (lambda a: actions.decode_discrete(p, a))
    default = dec(enc(d))  # a decision without batch fields
    torch.testing.assert_close(default.batch_transfer, torch.eye(N, dtype=torch.float64).expand(4, N, N))
    assert torch.equal(default.batch_steps_idx, d.steps_idx[..., K - 1])
    torch.testing.assert_close(default.batch_serve_frac, torch.ones(4, N, dtype=torch.float64))
    chosen = kernels.Decision(d.transfer, d.steps_idx, d.freq_idx, None,
                              torch.eye(N, dtype=torch.float64)[[2, 0, 1]].expand(4, N, N).clone(),
                              torch.tensor([[0, 3, 9]]).expand(4, N).clone(),
                              torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float64).expand(4, N).clone())
    back = dec(enc(chosen))
    torch.testing.assert_close(back.batch_transfer, chosen.batch_transfer)
    assert torch.equal(back.batch_steps_idx, chosen.batch_steps_idx)
    torch.testing.assert_close(back.batch_serve_frac, chosen.batch_serve_frac.to(back.batch_serve_frac.dtype))


def test_planners_that_cannot_plan_batch_work_are_refused_by_key():
    from dcsched.config import EnvConfig
    from dcsched.envs.dc_env import make_env
    from dcsched.envs.multi_agent import MultiAgentDCSchedEnv
    from dcsched.errors import ConfigError
    from dcsched.registry import POLICIES

    env = make_env(load_scenario("paper3", FLEX), EnvConfig(action_encoding="discrete"), days=[5], num_envs=1)
    with pytest.raises(ConfigError, match="mpc:levels"):
        POLICIES.get("mpc")(levels="milp").bind(env)
    with pytest.raises(ConfigError, match="scenario.batch.share"):
        MultiAgentDCSchedEnv(env)
    with pytest.raises(ConfigError, match="scenario.batch.share.*allowed"):
        POLICIES.get("defer_to_cheap_hours")().bind(make_env(load_scenario("paper3"), EnvConfig(), days=[5], num_envs=1))


def test_defer_to_cheap_hours_serves_only_due_work_outside_its_cheap_slots():
    """Outside the slots it finds cheap, the rule serves no batch work younger than D_b - 1 slots:
    what it serves on time is at most the work due at the slot's start."""
    from dcsched.config import EnvConfig
    from dcsched.envs.dc_env import make_env
    from dcsched.registry import POLICIES

    cfg = load_scenario("paper3_energy_flex")
    env = make_env(cfg, EnvConfig(dtype="float64"), days=[5], num_envs=1, sequential_days=True, stochastic=False)
    policy = POLICIES.get("defer_to_cheap_hours")().bind(env)
    D = env.params.batch_deadline_slots
    td = env.reset()
    cheap_slots = quiet_slots = 0
    for t in range(96):
        cheap = policy.cheap_now(0, t)
        due = td["batch_queue"].sum(-3)[..., D - 1:].sum(-1)[0]  # [n]
        td["action"] = policy.act(td)
        td = env.step(td)
        served = (td["next", "outcome", "batch_on_time"] + td["next", "outcome", "batch_late"])[0]
        for n in range(env.params.num_dcs):
            if cheap[n]:
                cheap_slots += 1
            else:
                quiet_slots += 1
                assert float(served[n]) <= float(due[n]) * (1 + 1e-6) + 1e-6  # the share travels as a float32 action
        td = td["next"]
    assert cheap_slots > 0 and quiet_slots > 0


def test_the_default_batch_block_leaves_every_hash_as_before():
    """Cells recorded before the batch class hash as they did: a scenario whose batch block holds
    the defaults hashes without it, a flex scenario with it."""
    from dcsched.config import to_container
    from dcsched.config import scenario_identity

    assert "batch" not in scenario_identity(to_container(load_scenario("paper3")))
    assert scenario_identity(to_container(load_scenario("paper3_flex")))["batch"]["share"] == 0.3


@pytest.mark.parametrize("start, horizon", [(100, None), (150, 36)])
def test_a_window_starting_mid_day_holds_the_envs_trajectory(start, horizon):
    """The LP of a window that starts with the env's state of that slot (SoC, backlog, the batch
    queue by age) and ends at the day's end or before it (no settlement) holds the replayed
    trajectory of its slots with their utility: what a multi-slot planner plans on."""
    from dcsched.baselines.lp_model import build_lp
    from dcsched.baselines.lp_replay import max_violation, replay_day, trajectory_vector
    from dcsched.baselines.lp_solve import window_from_exo

    _, p, exo = _day(FLEX + ["stress=['link_down:hours=3,start_h=10']"])  # the link goes down mid-queue
    g = torch.Generator().manual_seed(13)
    seen = {}

    def decide(t, state):
        if t == start:
            seen["state"] = state
        d = _random_batch_fields(p, random_decision(p, 1, g), g)
        if start - 40 <= t < start:  # serve little for a while: late work enters the window
            d.batch_serve_frac = d.batch_serve_frac * 0.05
        return d

    slots = replay_day(p, exo, 0, decide)
    s0 = seen["state"]
    queue0 = s0.batch_queue[0].numpy()
    assert queue0[..., p.batch_deadline_slots:].sum() > 0  # late work enters the window
    w = window_from_exo(p, exo, 0, start, horizon, batch_queue0=queue0)
    w.soc0, w.backlog_work0_gpu_s, w.backlog_energy0_j = (s0.soc[0].numpy(), s0.backlog_work_gpu_s[0].numpy(),
                                                          s0.backlog_energy_j[0].numpy())
    assert w.batch_settles == (horizon is None)
    window_slots = slots[start : start + (horizon or p.slots_per_day)]
    model = build_lp(p, w)
    x = trajectory_vector(model, window_slots, len(p.freq_levels), batch_queue0=queue0)
    assert float(model.c @ x) == pytest.approx(sum(float(s["utility_usd"].sum()) for s in window_slots), rel=1e-6)
    assert max_violation(model, x) < 1e-6 * max(1.0, abs(model.b_eq).max())


@pytest.mark.slow
def test_planners_plan_batch_work_within_the_bound_and_conserve_it():
    """MPC (a mid-day window each re-plan, with the env's queue) and the rounded oracle play a
    flex day: every batch job ends once, and no policy is above the LP bound of the day (two
    minutes: two whole-day LPs with batch work)."""
    from dcsched.baselines.lp_solve import solve_window, window_from_exo
    from dcsched.config import EnvConfig
    from dcsched.envs.dc_env import make_env
    from dcsched.eval.policies import make_policy
    from dcsched.eval.rollout import run_days

    cfg = load_scenario("paper3_energy_flex")
    env = make_env(cfg, EnvConfig(dtype="float64"), days=[5], sequential_days=True, stochastic=False)
    bound = solve_window(env.params, window_from_exo(env.params, env.exo, 0), "day 5").value_usd
    for name in ("mpc:every=12,forecast=seasonal_naive", "lp_oracle"):
        out = run_days(env, make_policy(name, env))
        ended = sum(out[k].sum() for k in ("batch_on_time", "batch_late", "batch_dropped"))
        assert ended == pytest.approx(out["batch_arrivals"].sum(), rel=1e-9)
        assert out["utility_usd"].sum() <= bound + 1e-6
        assert (out["batch_steps"] > 0).any()  # the planned step levels reach the env



def test_forecasters_forecast_batch_arrivals_too():
    """The present slot's batch arrivals are known; persistence holds them, seasonal_naive takes
    yesterday's same slots."""
    import numpy as np

    from dcsched.baselines.forecasters import make_forecaster
    from dcsched.baselines.lp_solve import window_from_exo
    from dcsched.config import EnvConfig
    from dcsched.envs.dc_env import make_env

    env = make_env(load_scenario("paper3", FLEX), EnvConfig(dtype="float64"), days=[40], num_envs=1)
    queue0 = np.zeros((3, 3, env.params.batch_horizon_slots))
    truth = lambda: window_from_exo(env.params, env.exo, 0, 100, 12, batch_queue0=queue0)  # noqa: E731
    held = make_forecaster("persistence", env).forecast(truth(), 0, 100).batch_arrivals
    np.testing.assert_array_equal(held, np.repeat(truth().batch_arrivals[:1], 12, axis=0))
    seasonal = make_forecaster("seasonal_naive", env).forecast(truth(), 0, 100).batch_arrivals
    yesterday = load_exogenous(load_scenario("paper3", FLEX), [39], dtype=torch.float64).batch_arrival_rate[0, 100:112]
    np.testing.assert_array_equal(seasonal[0], truth().batch_arrivals[0])
    np.testing.assert_array_equal(seasonal[1:], yesterday[1:].numpy())


def test_a_workload_file_may_carry_the_hours_batch_share(tmp_path):
    """A DC's workload file with a batch_share column sets that DC's share hour by hour (the others
    keep scenario.batch.share); without a batch class the column is refused by key; a share
    outside [0, 1] names the file and the row."""
    import pandas as pd

    from dcsched.data.user_files import hours_of_year
    from dcsched.errors import ConfigError, DataError

    hours = hours_of_year(2023)
    share = (hours.hour.to_numpy() < 12) * 0.6  # 0.6 before noon UTC, none after
    path = tmp_path / "load.csv"
    pd.DataFrame({"Datetime (UTC)": hours.strftime("%Y-%m-%d %H:%M:%S+00:00"), "relative_load": 1.0,
                  "batch_share": share}).to_csv(path, index=False)
    cfg = load_scenario("paper3", FLEX + [f"dcs.0.data.workload={path}"])
    exo = load_exogenous(cfg, [10])
    total = exo.arrival_rate.sum(-1) + exo.batch_arrival_rate  # [1, T, N]
    torch.testing.assert_close(exo.batch_arrival_rate[0, 0, 0], 0.6 * total[0, 0, 0])
    torch.testing.assert_close(exo.batch_arrival_rate[0, -1, 0], 0.0 * total[0, -1, 0])
    torch.testing.assert_close(exo.batch_arrival_rate[0, :, 1], 0.3 * total[0, :, 1])
    with pytest.raises(ConfigError, match="scenario.batch.share.*allowed"):
        load_exogenous(load_scenario("paper3", [f"dcs.0.data.workload={path}"]), [10])
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"Datetime (UTC)": hours.strftime("%Y-%m-%d %H:%M:%S+00:00"), "relative_load": 1.0,
                  "batch_share": 1.5}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="bad.csv.*batch_share"):
        load_exogenous(load_scenario("paper3", FLEX + [f"dcs.0.data.workload={bad}"]), [10])
