"""The TorchRL environment: specs, reward modes, determinism, batching, encodings."""

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from dcsched.baselines.rules import LocalOnly, RandomPolicy
from dcsched.config import EnvConfig, load_scenario
from dcsched.data.exogenous import split_days
from dcsched.envs import make_env
from dcsched.envs.actions import (BATTERY_LEVELS, continuous_dim, decode_continuous, decode_discrete,
                                  discrete_nvec, encode_discrete, level_from_unit, quantise_shares)
from dcsched.eval.rollout import run_days
from dcsched.sim.kernels import Decision


def env64(cfg, **kw):
    env_kw = {k: kw.pop(k) for k in list(kw) if k in EnvConfig.__dataclass_fields__}
    return make_env(cfg, EnvConfig(dtype="float64", **env_kw), **kw)


@pytest.mark.parametrize("encoding", ["continuous", "discrete"])
@pytest.mark.parametrize("control", ["heuristic", "learned"])
def test_check_env_specs(encoding, control):
    cfg = load_scenario("paper3", [f"energy.control={control}"])
    env = make_env(cfg, EnvConfig(num_envs=4, action_encoding=encoding))
    check_env_specs(env)
    assert env.action_spec.shape[-1] == (continuous_dim(env.params) if encoding == "continuous" else len(discrete_nvec(env.params)))


def test_decoder_grid_edges(params64):
    p = params64
    D = continuous_dim(p)
    lo = decode_continuous(p, -torch.ones(1, D), 5.0)
    hi = decode_continuous(p, torch.ones(1, D), 5.0)
    assert (p.steps_grid[lo.steps_idx] == 6).all() and (p.steps_grid[hi.steps_idx] == 42).all()
    assert (p.freq_levels[lo.freq_idx] == 0.6).all() and (p.freq_levels[hi.freq_idx] == 1.0).all()
    torch.testing.assert_close(lo.transfer.sum(-2), torch.ones_like(lo.transfer.sum(-2)))
    assert level_from_unit(torch.tensor([-1.0, -0.11, 0.0, 0.11, 1.0]), 10).tolist() == [0, 4, 4, 5, 9]
    with pytest.raises(ValueError, match="outside"):
        decode_continuous(p, torch.full((1, D), 1.5), 5.0)
    nvec = torch.tensor(discrete_nvec(p))
    top = decode_discrete(p, (nvec - 1).unsqueeze(0))
    assert (top.transfer[0, :, -1, :] == 1).all() and (p.steps_grid[top.steps_idx] == 42).all()
    with pytest.raises(ValueError):
        decode_discrete(p, nvec.unsqueeze(0))
    assert BATTERY_LEVELS[0] == -1.0 and BATTERY_LEVELS[-1] == 1.0


@pytest.mark.parametrize("chunks", [1, 3, 4])
def test_transfer_chunks_round_shares_to_multiples_of_one_over_q(params64, chunks):
    """Largest remainder: each row's chunk counts sum to Q and each is floor or ceil of Q * share;
    a discrete action encodes them and decodes back to counts / Q (exact for shares already on the
    grid); Q = 1 is the largest share's DC."""
    p = params64
    N, K = p.num_dcs, p.num_classes
    gen = torch.Generator().manual_seed(chunks)
    shares = torch.distributions.Dirichlet(torch.full((N,), 0.7)).sample((5, N, K)).movedim(-1, -2)  # [5, i, n, k]
    counts = quantise_shares(shares, chunks)
    assert torch.equal(counts.sum(-2), torch.full((5, N, K), chunks))
    assert ((counts - chunks * shares).abs() < 1).all()
    if chunks == 1:
        assert torch.equal(counts.argmax(-2), shares.argmax(-2))
    steps = torch.randint(len(p.steps_grid), (5, N, K), generator=gen)
    freq = torch.randint(len(p.freq_levels), (5, N), generator=gen)
    d = Decision(transfer=shares, steps_idx=steps, freq_idx=freq, battery_frac=None)
    action = encode_discrete(p, d, chunks)
    assert action.shape == (5, len(discrete_nvec(p, chunks))) == (5, N * K * chunks + N * K + N)
    back = decode_discrete(p, action, chunks)
    torch.testing.assert_close(back.transfer, counts.double() / chunks)
    assert torch.equal(back.steps_idx, steps) and torch.equal(back.freq_idx, freq)
    again = decode_discrete(p, encode_discrete(p, back, chunks), chunks)
    assert torch.equal(again.transfer, back.transfer), "shares on the 1/Q grid must round-trip exactly"
    with pytest.raises(ValueError, match="integer >= 1"):
        discrete_nvec(p, 0)


def test_local_only_keeps_jobs_exactly_local(paper3):
    env = env64(paper3, days=split_days(paper3, "test")[:2], sequential_days=True, stochastic=False)
    out = run_days(env, LocalOnly().bind(env))
    N = env.params.num_dcs
    eye = torch.eye(N, dtype=torch.float64).unsqueeze(-1).expand(N, N, 2)
    assert (torch.as_tensor(out["transfer"]) == eye).all()
    assert (out["transfer_cost_usd"] == 0).all() and (out["steps"] == 30).all() and (out["freq"] == 1.0).all()


def test_peak_hours_violate_for_local_only(paper3):
    """MODEL.md section 2 property of the tuned G_n, in the simulator itself."""
    env = env64(paper3, days=split_days(paper3, "test")[:4], sequential_days=True, stochastic=False)
    out = run_days(env, LocalOnly().bind(env))
    arrived = out["arrivals"].sum(-1)  # [D, T, N] by origin == serving DC for local_only
    bad = out["late"].sum(-1) + out["dropped"]
    peak = arrived.argmax(axis=1)  # the peak slot of each day and DC
    share = torch.as_tensor(bad).gather(1, torch.as_tensor(peak)[:, None]) / torch.as_tensor(arrived).gather(1, torch.as_tensor(peak)[:, None])
    assert (share[:, 0, :2] >= 0.2).all(), share
    assert (share[:, 0, 2] < 0.05).all()


def test_reward_modes(paper3):
    days = split_days(paper3, "test")[:2]
    outs = {}
    for mode in ("dense", "sparse", "episodic"):
        env = env64(paper3, days=days, sequential_days=True, stochastic=False, reward_mode=mode)
        outs[mode] = run_days(env, LocalOnly().bind(env))
    u_scale = env.params.u_scale_usd
    util = outs["dense"]["utility_usd"].sum(-1)
    torch.testing.assert_close(torch.as_tensor(outs["dense"]["reward"]), torch.as_tensor(util / u_scale).float())
    viol = torch.as_tensor(outs["sparse"]["violation_share"])
    sparse = torch.as_tensor(outs["sparse"]["reward"])
    assert (sparse[viol > 0.05] == -1).all() and (viol > 0.05).any() and (viol <= 0.05).any()
    torch.testing.assert_close(sparse[viol <= 0.05], torch.as_tensor(util / u_scale).float()[viol <= 0.05])
    ep = torch.as_tensor(outs["episodic"]["reward"])
    assert (ep[:, :-1] == 0).all()
    torch.testing.assert_close(ep[:, -1], torch.as_tensor(util.sum(1) / (288 * u_scale)).float())


def test_same_seed_same_rollout_and_different_seed_differs(paper3):
    def roll(seed):
        env = env64(paper3, num_envs=4, seed=seed)
        env.set_seed(seed)
        pol = RandomPolicy(seed=seed).bind(env)
        return env.rollout(50, policy=lambda td: td.set("action", pol.act(td)), break_when_any_done=False)

    a, b, c = roll(3), roll(3), roll(4)
    assert torch.equal(a["next", "outcome", "utility_usd"], b["next", "outcome", "utility_usd"])
    assert torch.equal(a["day_idx"], b["day_idx"])
    assert not torch.equal(a["next", "outcome", "utility_usd"], c["next", "outcome", "utility_usd"])


def test_batched_rollout_equals_single_rollouts(paper3):
    days = split_days(paper3, "test")[:3]
    env = env64(paper3, days=days, sequential_days=True, stochastic=False)
    batched = run_days(env, RandomPolicy(seed=0).bind(env))
    # replay each day alone with the same actions
    pol = RandomPolicy(seed=0).bind(env)
    td = env.reset()
    actions = []
    for _ in range(env.T):
        a = pol.act(td)
        actions.append(a)
        td = env.step_mdp(env.step(td.set("action", a)))
    for j, day in enumerate(days):
        single = env64(paper3, days=[day], sequential_days=True, stochastic=False)
        td = single.reset()
        total = 0.0
        for t in range(single.T):
            td = single.step(td.set("action", actions[t][j : j + 1]))
            total += td["next", "outcome", "utility_usd"].sum().item()
            td = single.step_mdp(td)
        assert total == pytest.approx(batched["utility_usd"][j].sum(), rel=1e-12)


@pytest.mark.parametrize("split", ["train", "fit"])
def test_random_start_days_come_from_split(paper3, split):
    env = env64(paper3, num_envs=256, split=split)
    td = env.reset()
    days = set(env.exo.days[td["day_idx"]].tolist())
    assert days <= set(split_days(paper3, split)) and len(days) > 50
    if split == "fit":  # a validated study's training never starts a validation day
        assert not days & set(split_days(paper3, "val"))


def test_episode_ends_after_one_day(paper3):
    env = env64(paper3, num_envs=2)
    td = env.rollout(400, policy=lambda td: td.set("action", torch.zeros(2, continuous_dim(env.params))))
    assert td.shape[-1] == 288 and td["next", "done"][:, -1].all() and not td["next", "done"][:, :-1].any()


def _hand_loop(env, policy):
    """The reference for run_days: reset once, act and step T times by hand, stack the outcome."""
    policy.reset()
    td = env.reset()
    rows = {}
    for _ in range(env.T):
        td = env.step(td.set("action", policy.act(td)))
        for key, value in td["next", "outcome"].items():
            rows.setdefault(key, []).append(value)
        rows.setdefault("reward", []).append(td["next", "reward"].squeeze(-1))
        td = env.step_mdp(td)
    return {k: torch.stack(v, dim=1).numpy() for k, v in rows.items()}


@pytest.mark.parametrize("stochastic", [False, True])
def test_run_days_through_env_rollout_equals_a_hand_loop_bit_for_bit(paper3, stochastic):
    """Evaluation steps through TorchRL's env.rollout: the same rows as stepping by hand, and (for
    common random numbers across policies) the arrival generator ends where the hand loop leaves it,
    i.e. rollout draws nothing extra (no reset after the last slot)."""
    import numpy as np

    from dcsched.eval.policies import make_policy

    days = split_days(paper3, "test")[:2]
    env = env64(paper3, days=days, sequential_days=True, stochastic=stochastic, seed=5)
    for name in ("random", "headroom_fill"):
        env.rng.manual_seed(5)
        got = run_days(env, make_policy(name, env, seed=1))
        after_rollout = env.rng.get_state()
        env.rng.manual_seed(5)
        want = _hand_loop(env, make_policy(name, env, seed=1))
        assert torch.equal(after_rollout, env.rng.get_state())
        assert set(want) <= set(got)
        for key, value in want.items():
            assert got[key].shape == value.shape and np.array_equal(got[key], value), key
    assert got["utility_usd"].shape[:2] == (2, env.T)
