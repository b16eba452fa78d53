"""The multi-agent view (dcsched/envs/multi_agent.py): TorchRL specs, the per-agent action layout
against the central decoder, the team and own rewards, and privacy by construction."""

import dataclasses
import re

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from dcsched.config import EnvConfig, load_scenario
from dcsched.envs import make_env
from dcsched.envs.actions import BATTERY_LEVELS, decode_discrete, discrete_nvec
from dcsched.envs.dc_env import STATE_KEYS
from dcsched.envs.multi_agent import GROUP, PUBLIC_EXO_KEYS, MultiAgentDCSchedEnv, agent_feature_names

PRIVATE = ("arrivals", "backlog", "soc")  # per-provider state no other provider may see


def ma_env(scenario="paper3", B=4, chunks=1, learned=False, dtype="float32"):
    cfg = load_scenario(scenario, ["energy.control=learned"] if learned else [])
    central = make_env(cfg, EnvConfig(action_encoding="discrete", num_envs=B, reward_mode="dense",
                                      transfer_chunks=chunks, dtype=dtype), seed=0)
    return MultiAgentDCSchedEnv(central)


@pytest.mark.parametrize("scenario,learned", [("paper3", False), ("paper3_energy", True), ("global8", False)])
def test_specs_hold_and_every_agent_has_the_same_layout(scenario, learned):
    env = ma_env(scenario, learned=learned)
    check_env_specs(env)
    N, K = env.params.num_dcs, env.params.num_classes
    obs_spec = env.observation_spec[GROUP, "observation"]
    assert obs_spec.shape == (4, N, len(agent_feature_names(N, K)))
    assert env.action_spec[GROUP, "action"].shape == (4, N, K + K + 1 + int(learned))


@pytest.mark.parametrize("chunks,learned", [(1, False), (2, True)])
def test_agent_actions_land_on_their_own_dc_in_the_central_decoder(chunks, learned):
    """Each agent's levels decode, through the central decoder, to its own DC's row: its own
    arrivals' destinations, its step levels, its frequency and battery. The index is a permutation."""
    env = ma_env("paper3_energy" if learned else "paper3", chunks=chunks, learned=learned)
    p = env.params
    N, K, Q = p.num_dcs, p.num_classes, chunks
    assert sorted(env._action_index.reshape(-1).tolist()) == list(range(len(discrete_nvec(p, Q))))
    g = torch.Generator().manual_seed(0)
    nvec = torch.tensor(env.agent_nvec)
    a = (torch.rand(64, N, len(nvec), generator=g) * nvec).long()
    d = decode_discrete(p, env.central_action(a), Q)
    dest = a[..., : K * Q].reshape(64, N, K, Q)
    for n in range(N):
        for k in range(K):
            share = torch.zeros(64, N, dtype=d.transfer.dtype)
            for q in range(Q):
                share += torch.nn.functional.one_hot(dest[:, n, k, q], N).to(share.dtype) / Q
            assert torch.equal(d.transfer[:, n, :, k], share)
        assert torch.equal(d.steps_idx[:, n], a[:, n, K * Q : K * Q + K])
        assert torch.equal(d.freq_idx[:, n], a[:, n, K * Q + K])
        if learned:
            assert torch.equal(d.battery_frac[:, n], torch.tensor(BATTERY_LEVELS, dtype=d.battery_frac.dtype)[a[:, n, -1]])


def test_team_reward_is_shared_and_own_utilities_add_up_to_it():
    """Every agent gets the central reward; the DCs' own utilities sum to the slot's utility (1e-6),
    and a whole day stepped through the view equals the central env stepped with the mapped actions."""
    env = ma_env(B=3, dtype="float64")
    twin = make_env(load_scenario("paper3"), EnvConfig(action_encoding="discrete", num_envs=3, reward_mode="dense",
                                                        dtype="float64"), seed=0)
    td, td_c = env.reset(), twin.reset()
    g = torch.Generator().manual_seed(1)
    nvec = torch.tensor(env.agent_nvec)
    for _ in range(env.T):
        a = (torch.rand(3, env.n_agents, len(nvec), generator=g) * nvec).long()
        td[GROUP, "action"] = a
        td_c["action"] = env.central_action(a)
        out, out_c = env.step(td), twin.step(td_c)
        reward = out["next", GROUP, "reward"]
        assert torch.equal(reward, out_c["next", "reward"].unsqueeze(-2).expand_as(reward))
        own = out["next", GROUP, "own_utility_usd"].squeeze(-1).sum(-1)
        assert torch.allclose(own, out_c["next", "outcome", "utility_usd"].sum(-1), atol=1e-6, rtol=0)
        assert torch.allclose(own / env.params.u_scale_usd, reward[:, 0, 0].double(), atol=1e-6, rtol=0)
        td, td_c = env.step_mdp(out), twin.step_mdp(out_c)
    assert bool(td["t"].eq(env.T).all())
    assert torch.equal(td["episode_utility_usd"], td_c["episode_utility_usd"])


def test_observation_names_show_no_private_quantity_of_another_provider():
    """From the declared feature list: another provider's data appears only as a public price."""
    for N, K in ((3, 2), (8, 3)):
        names = agent_feature_names(N, K)
        for owner, feature in names:
            assert owner in ("self", "public") or re.fullmatch(r"dc\d+", owner)
            if owner.startswith("dc"):
                assert feature in PUBLIC_EXO_KEYS, f"{feature} of {owner} is not public"
            if any(feature.startswith(x) for x in PRIVATE):
                assert owner == "self"


@pytest.mark.parametrize("scenario", ["paper3", "global8"])
def test_changing_one_provider_changes_only_its_own_observation(scenario):
    """Values, not names: perturb DC j's arrivals, backlog, SoC, capacity, quality curve and energy
    per step; agent j's observation moves, every other agent's stays bit for bit."""
    env = ma_env(scenario, B=5)
    td = env.reset()
    g = torch.Generator().manual_seed(2)
    state = {k: td[k].clone() for k in STATE_KEYS}
    received = torch.rand(td["arrivals"].shape, generator=g, dtype=td["arrivals"].dtype) * 10.0
    base = env.agent_observation(td["arrivals"], state, td["day_idx"], td["t"], received)
    p0 = env.params
    for j in range(env.n_agents):
        arrivals = td["arrivals"].clone()
        arrivals[:, j] += 1.0 + torch.rand(arrivals[:, j].shape, generator=g)
        moved = {k: v.clone() for k, v in state.items()}
        moved["soc"][:, j] = torch.rand(5, generator=g)
        moved["backlog_work_gpu_s"][:, j] += 100.0
        scale = torch.ones(env.n_agents, dtype=p0.capacity_gpu_s.dtype)
        scale[j] = 1.7
        env.params = dataclasses.replace(p0, capacity_gpu_s=p0.capacity_gpu_s * scale,
                                         quality=p0.quality * scale.unsqueeze(-1),
                                         busy_power_w=p0.busy_power_w * scale)
        obs = env.agent_observation(arrivals, moved, td["day_idx"], td["t"], received)
        env.params = p0
        others = [i for i in range(env.n_agents) if i != j]
        assert torch.equal(obs[:, others], base[:, others])
        assert not torch.allclose(obs[:, j], base[:, j])


def test_each_agent_sees_the_jobs_the_others_sent_it_in_the_previous_slot():
    """Received offers: after a slot in which every provider sends all its arrivals to DC 0, agent
    0's received features equal the others' arrivals of that slot (in its arrivals' std) and the
    other agents' are zero; its own kept jobs never count. Zero at the first slot."""
    env = ma_env(B=2, dtype="float64")
    N, K = env.n_agents, env.params.num_classes
    names = [f for _, f in agent_feature_names(N, K)]
    cols = [names.index(f"received_last_slot_class{k}") for k in range(K)]
    td = env.reset()
    assert torch.equal(td[GROUP, "observation"][..., cols], torch.zeros(2, N, K))
    a = torch.zeros(2, N, len(env.agent_nvec), dtype=torch.int64)  # destination level 0 = DC 0 for every class
    td[GROUP, "action"] = a
    out = env.step(td)
    sent = td["arrivals"][:, 1:].sum(1)  # [B, K] what DCs 1..N-1 received in that slot, all sent to DC 0
    assert torch.equal(out["next", "outcome", "transfer"][:, :, 0], torch.ones(2, N, K, dtype=torch.float64))
    std = env.central._obs_std[: N * K].reshape(N, K)
    got = out["next", GROUP, "observation"][..., cols]
    torch.testing.assert_close(got[:, 0], (sent / std[0]).float(), rtol=1e-6, atol=1e-6)
    assert torch.equal(got[:, 1:], torch.zeros(2, N - 1, K))
    assert bool(sent.gt(0).any())


def test_the_view_refuses_a_continuous_env():
    central = make_env(load_scenario("paper3"), EnvConfig(num_envs=2))
    with pytest.raises(ValueError, match="action_encoding=discrete"):
        MultiAgentDCSchedEnv(central)
