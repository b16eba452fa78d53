"""The headroom step projection (env.steps_mode=headroom, the hybrid agent) and headroom_fill."""

import dataclasses

import pytest
import torch

from dcsched.eval.policies import make_policy
from dcsched.config import EnvConfig
from dcsched.data.exogenous import split_days
from dcsched.envs import make_env
from dcsched.envs.actions import discrete_nvec
from dcsched.envs.headroom import project_steps
from dcsched.errors import ConfigError
from dcsched.eval.rollout import run_days
from dcsched.sim import kernels
from dcsched.sim.kernels import Decision, route_over_links


def random_slot(p, B: int, seed: int, faults: bool):
    """A batch of random decisions and states, some DCs overloaded; optionally random faults."""
    g = torch.Generator().manual_seed(seed)
    N, K = p.num_dcs, p.num_classes
    S, F = len(p.steps_grid), len(p.freq_levels)
    shares = torch.distributions.Dirichlet(torch.full((N,), 0.5)).sample((B, N, K)).movedim(-1, -2)
    d = Decision(transfer=shares.to(p.capacity_gpu_s.dtype),
                 steps_idx=torch.zeros(B, N, K, dtype=torch.long),
                 freq_idx=torch.randint(0, F, (B, N), generator=g))
    # arrivals up to about 3x what level 0 serves, so some DCs cannot fill even level 0
    per_job_s = p.steps_grid[-1] * p.tau_step_s + p.tau_fixed_s  # [N] at f_max, the top level
    scale = (p.capacity_gpu_s / per_job_s).unsqueeze(-1) / K  # jobs per class that fill a DC at the top level
    arrivals = torch.rand(B, N, K, generator=g, dtype=scale.dtype) * scale * torch.rand(B, 1, 1, generator=g,
                                                                                       dtype=scale.dtype) * 12
    backlog = torch.rand(B, N, generator=g, dtype=scale.dtype) * p.capacity_gpu_s * 0.5
    exo = {}
    if faults:
        exo["capacity_frac"] = torch.where(torch.rand(B, N, generator=g) < 0.3,
                                           torch.rand(B, N, generator=g), torch.ones(B, N)).to(scale.dtype)
        link = (torch.rand(B, N, N, generator=g) > 0.3).to(scale.dtype)
        exo["link_up"] = torch.maximum(link, torch.eye(N, dtype=scale.dtype))
    return d, arrivals, backlog, exo, S


def work_gpu_s(p, jobs_n, steps_idx, freq_idx):
    """GPU-seconds of jobs_n [B, n, k] at the given levels, through the kernels' own job time."""
    exec_s, _ = kernels.job_time_and_energy(p, p.steps_grid[steps_idx], p.freq_levels[freq_idx])
    return (jobs_n * exec_s).sum(-1)


@pytest.mark.parametrize("faults", [False, True])
def test_margin_zero_fills_the_capacity_on_time_and_no_higher_level_fits(params64, faults):
    """Margin 0: every (n, k) level meets the deadline of its worst routed origin, the DC's work
    fits its free capacity (when level 0 fits at all), and one more level on every class that
    may still rise either breaks the capacity or breaks a deadline: the projection is maximal.
    Transfer delays are scaled up (seconds, not tens of ms) so that they move the deadline caps."""
    p = dataclasses.replace(params64, transfer_delay_s=params64.transfer_delay_s * 12)
    d, arrivals, backlog, exo, S = random_slot(p, 256, seed=3 + faults, faults=faults)
    out = project_steps(p, d, torch.zeros_like(d.steps_idx), arrivals, backlog, exo)
    transfer = route_over_links(d.transfer, exo.get("link_up"))
    jobs = transfer * arrivals.unsqueeze(-2)  # [B, i, n, k]
    jobs_n = jobs.sum(-3)
    capacity = p.capacity_gpu_s * exo.get("capacity_frac", torch.ones_like(backlog))
    free = capacity - backlog
    level = out.steps_idx
    exec_s, _ = kernels.job_time_and_energy(p, p.steps_grid[level], p.freq_levels[d.freq_idx])
    delay = p.transfer_delay_s.unsqueeze(-1)  # [i, n, 1]
    late_route = (jobs > 0) & (exec_s.unsqueeze(-3) + delay > p.deadline_s)  # [B, i, n, k]
    assert not (late_route & (level > 0).unsqueeze(-3)).any(), "a positive level breaks a deadline"
    base_fits = work_gpu_s(p, jobs_n, torch.zeros_like(level), d.freq_idx) <= free + 1e-9
    work = work_gpu_s(p, jobs_n, level, d.freq_idx)
    assert (work[base_fits] <= free[base_fits] + 1e-9).all(), "the projected work overflows the free capacity"
    assert (level[~base_fits] == 0).all(), "an overloaded DC must fall to the lowest level"
    up = (level + 1).clamp(max=S - 1)
    exec_up, _ = kernels.job_time_and_energy(p, p.steps_grid[up], p.freq_levels[d.freq_idx])
    up_on_time = ~((jobs > 0) & (exec_up.unsqueeze(-3) + delay > p.deadline_s)).any(-3)  # [B, n, k]
    raised = torch.where(up_on_time, up, level)
    can_rise = (raised > level).any(-1) & base_fits  # [B, n]
    work_up = work_gpu_s(p, jobs_n, raised, d.freq_idx)
    assert (work_up[can_rise] > free[can_rise] + 1e-9).all(), "a higher level still fits: not maximal"
    assert can_rise.any() and (~can_rise).any(), "the random slots must cover both cases"


def test_margin_counts_levels_down_from_the_fill_level(params64):
    p = params64
    d, arrivals, backlog, exo, S = random_slot(p, 64, seed=5, faults=False)
    fill = project_steps(p, d, torch.zeros_like(d.steps_idx), arrivals, backlog, exo).steps_idx
    margin = torch.randint(0, S, d.steps_idx.shape, generator=torch.Generator().manual_seed(1))
    got = project_steps(p, d, margin, arrivals, backlog, exo)
    assert torch.equal(got.steps_idx, (fill - margin).clamp(min=0))
    assert torch.equal(got.transfer, d.transfer) and torch.equal(got.freq_idx, d.freq_idx)


def test_headroom_env_serves_every_job_on_time_with_random_routing_and_margin_zero(paper3):
    """Random destinations and frequencies, margin 0, on a deterministic test day: the projection
    never overfills (no job late or dropped), and the env reports the projected steps."""
    days = split_days(paper3, "test")[:1]
    env = make_env(paper3, EnvConfig(dtype="float64", action_encoding="discrete", steps_mode="headroom"),
                   days=days, sequential_days=True, stochastic=False)
    p = env.params
    N, K = p.num_dcs, p.num_classes
    nvec = torch.tensor(discrete_nvec(p))
    g = torch.Generator().manual_seed(0)
    td = env.reset()
    late = dropped = 0.0
    steps_seen = set()
    for _ in range(env.T):
        action = (torch.rand(1, len(nvec), generator=g) * nvec).floor().long()
        action[:, N * K: 2 * N * K] = 0  # margin 0
        d = env.decode(action)
        exo = env._exo_slot(td["day_idx"], td["t"].squeeze(-1))
        want = project_steps(p, d, d.steps_idx, td["arrivals"], td["backlog_work_gpu_s"], exo)
        td = env.step(td.set("action", action))
        out = td["next", "outcome"]
        torch.testing.assert_close(out["steps"], p.steps_grid[want.steps_idx])
        late += float(out["late"].sum())
        dropped += float(out["dropped"].sum())
        steps_seen.update(out["steps"].flatten().tolist())
        td = env.step_mdp(td)
    assert late == 0.0 and dropped == 0.0
    assert len(steps_seen) > 2, "the projection must vary the level with the load"


def test_headroom_fill_equals_the_headroom_env_with_local_routing_and_refuses_to_encode_there(paper3):
    """Two code paths: the rule in an absolute-steps env and the hybrid env fed local routing, full
    frequency and margin 0 give the same day, to the cent; a baseline cannot act in a headroom env."""
    days = split_days(paper3, "test")[:1]
    absolute = make_env(paper3, EnvConfig(dtype="float64", action_encoding="discrete"), days=days,
                        sequential_days=True, stochastic=False)
    rule = run_days(absolute, make_policy("headroom_fill", absolute))
    hybrid = make_env(paper3, EnvConfig(dtype="float64", action_encoding="discrete", steps_mode="headroom"),
                      days=days, sequential_days=True, stochastic=False)
    p = hybrid.params
    N, K = p.num_dcs, p.num_classes
    action = torch.cat([torch.arange(N).repeat_interleave(K), torch.zeros(N * K, dtype=torch.long),
                        torch.full((N,), len(p.freq_levels) - 1)]).unsqueeze(0)
    td = hybrid.reset()
    total = 0.0
    for _ in range(hybrid.T):
        td = hybrid.step(td.set("action", action))
        total += float(td["next", "outcome", "utility_usd"].sum())
        td = hybrid.step_mdp(td)
    assert total == pytest.approx(float(rule["utility_usd"].sum()), abs=1e-6)
    with pytest.raises(ConfigError, match="env.steps_mode"):
        make_policy("local_only", hybrid).act(hybrid.reset())
    with pytest.raises(ValueError, match="steps_mode"):
        make_env(paper3, EnvConfig(steps_mode="relative"), days=days, sequential_days=True)
