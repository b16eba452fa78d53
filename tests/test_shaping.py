"""The reward agent as MODEL.md section 8 (v2) means it: shaping start, no-conditioning, temperature,
state-only potential, controls, and the policy agent's critic target computed by hand."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from dcsched.shaping.base import (LOG_STD_MAX, LOG_STD_MIN, R_AUX_KEY, SHAPED_REWARD, potential_shaping,
                                  squash_log_std)
from dcsched.shaping.reward_agent import DiffusionRewardActor, PlaceboShaper, RewardAgentShaper

OBS, ACT, B = 6, 3, 32
SMALL = dict(latent_dim=8, num_steps=3, hidden=[16, 16], cond_hidden=16)


def random_actor():
    """A stand-in policy agent actor: a' uniform in [-1, 1] from the global RNG."""
    return TensorDictModule(lambda obs: torch.rand(obs.shape[0], ACT) * 2 - 1, ["observation"], ["action"])


def sample(seed=0, n=B):
    g = torch.Generator().manual_seed(seed)
    return TensorDict({
        "observation": torch.randn(n, OBS, generator=g), "action": torch.rand(n, ACT, generator=g) * 2 - 1,
        R_AUX_KEY: torch.rand(n, 1, generator=g) * 2 - 1,
        "next": {"observation": torch.randn(n, OBS, generator=g), "reward": torch.randn(n, 1, generator=g),
                 "terminated": torch.rand(n, 1, generator=g) < 0.2}}, [n])


def shaper(**kw):
    return RewardAgentShaper(OBS, ACT, **{**SMALL, "seed": 3, "eta": 0.4, "rs_learning_starts": 0, **kw})


def test_shaping_starts_only_after_the_reward_agent_has_trained_for_rs_learning_starts_frames():
    sh = shaper(rs_learning_starts=100)
    actor = random_actor()
    first = 5000  # the run's warm-up ended here: the RA's first update
    for frames, active in ((first, False), (first + 99, False), (first + 100, True), (first + 500, True)):
        td = sample(frames)
        metrics = sh.shape(td, actor, frames)
        assert metrics["rs/active"] == float(active), frames
        same = torch.equal(td["next", SHAPED_REWARD], td["next", "reward"])
        assert same != active, f"at frame {frames}: r^A {'must' if active else 'must not'} enter the target"
    assert int(sh.first_update_frame) == first


def test_no_conditioning_blinds_the_generator_only():
    blind, seeing = shaper(generator_input="zeros"), shaper()
    td_a, td_b = sample(1), sample(1)
    td_b["observation"] = td_b["observation"] + 1.0
    td_b["action"] = -td_b["action"]
    # the generator: the same draws whatever (s, a) is
    state = blind.gen.get_state()
    r_a, _ = blind.propose(td_a["observation"], td_a["action"])
    blind.gen.set_state(state)
    r_b, _ = blind.propose(td_b["observation"], td_b["action"])
    assert torch.equal(r_a, r_b)
    state = seeing.gen.get_state()
    r_a, _ = seeing.propose(td_a["observation"], td_a["action"])
    seeing.gen.set_state(state)
    assert not torch.equal(r_a, seeing.propose(td_b["observation"], td_b["action"])[0])
    # the critic still sees (s, a, r^A): its loss changes with (s, a)
    losses = []
    for td in (td_a, td_b):
        sh = shaper(generator_input="zeros")
        torch.manual_seed(0)
        losses.append(sh.shape(td, random_actor(), 0)["rs/loss_critic"])
    assert losses[0] != losses[1]


def test_reward_agent_critic_consumes_the_proposal_stored_at_collection():
    losses = []
    for shift in (0.0, 0.5):
        td = sample(2)
        td[R_AUX_KEY] = (td[R_AUX_KEY] + shift).clamp(-1, 1)
        torch.manual_seed(0)
        losses.append(shaper().shape(td, random_actor(), 0)["rs/loss_critic"])
    assert losses[0] != losses[1]


def test_reward_agent_temperature_starts_at_one_and_is_tuned():
    sh = shaper()
    assert float(sh.alpha) == 1.0
    for k in range(5):
        sh.shape(sample(k), random_actor(), k)
    assert float(sh.alpha) != 1.0
    fixed = shaper(fixed_alpha=True, alpha_init=0.3)
    for k in range(3):
        fixed.shape(sample(k), random_actor(), k)
    assert float(fixed.alpha) == pytest.approx(0.3)


def test_policy_agent_temperature_starts_at_one_with_learning_rate_1e4():
    from dcsched.config import load_recipe

    cfg = load_recipe("recipes/sac.yaml")
    assert cfg.agent.alpha_init == 1.0 and cfg.optim.lr_alpha == 1e-4 and not cfg.agent.fixed_alpha
    assert cfg.shaper.alpha_init == 1.0 and cfg.shaper.lr_alpha == 1e-4 and cfg.agent.critic_loss == "l2"


def test_log_std_squashing_is_smooth_and_bounded():
    raw = torch.tensor([-100.0, -3.0, 0.0, 3.0, 100.0, 6.0], requires_grad=True)
    out = squash_log_std(raw)
    assert (out >= LOG_STD_MIN).all() and (out <= LOG_STD_MAX).all()
    assert out[2].item() == pytest.approx((LOG_STD_MIN + LOG_STD_MAX) / 2)
    out.sum().backward()
    assert (raw.grad[1:4] > 0).all() and raw.grad[5] > 0, "beyond a clamp's bounds the gradient must not vanish"


def test_split_first_layer_chain_equals_the_reference_noise_net():
    """latent() computes the noise net's first layer in parts; a chain built from noise_prediction
    (the plain MLP on [x, t_emb, cond]) with the same draws gives the same x_0."""
    torch.manual_seed(0)
    net = DiffusionRewardActor(cond_dim=9, latent_dim=8, num_steps=4, hidden=16, cond_hidden=12)
    c = torch.randn(5, 9)
    g = torch.Generator().manual_seed(1)
    fast = net.latent(c, g)
    g = torch.Generator().manual_seed(1)
    s, cond = net.schedule, net.cond_encoder(c)
    x = torch.randn(5, 8, generator=g)
    for i in reversed(range(s.num_steps)):
        x0 = (s.sqrt_recip_abar[i] * x - s.sqrt_recipm1_abar[i] * net.noise_prediction(x, i, cond)).clamp(-1, 1)
        mean = s.post_mean_coef_x0[i] * x0 + s.post_mean_coef_xt[i] * x
        x = mean + torch.exp(0.5 * s.post_log_var[i]) * torch.randn(x.shape, generator=g) if i > 0 else mean
    torch.testing.assert_close(fast, x, rtol=1e-5, atol=1e-6)
    # the mean path is deterministic
    torch.testing.assert_close(net.latent(c, None, mean_path=True), net.latent(c, None, mean_path=True))


def optimal_policy(P, R, gamma, terminal, shaping=None):
    """Value iteration on a finite MDP. P [S, A, S'] transition probabilities, R [S, A, S'] rewards,
    terminal [S'] bool (entering it ends the episode), shaping [S, A, S'] added to R. Returns argmax_a Q."""
    R = R + (shaping if shaping is not None else 0.0)
    cont = (~terminal).double()
    V = torch.zeros(P.shape[0], dtype=torch.float64)
    for _ in range(3000):
        Q = (P * (R + gamma * cont * V)).sum(-1)
        V = Q.max(-1).values
    return Q.argmax(-1), Q


def test_potential_based_shaping_keeps_the_optimal_policy_and_other_shaping_need_not():
    gamma, S, A = 0.9, 7, 3
    changed = 0
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        P = torch.rand(S, A, S, generator=g, dtype=torch.float64) ** 4
        P = P / P.sum(-1, keepdim=True)
        R = torch.randn(S, A, S, generator=g, dtype=torch.float64)
        terminal = torch.zeros(S, dtype=torch.bool)
        terminal[-1] = True
        pi, Q = optimal_policy(P, R, gamma, terminal)
        phi = torch.randn(S, generator=g, dtype=torch.float64) * 3
        F = potential_shaping(phi[:, None, None].expand(S, A, S), phi[None, None, :].expand(S, A, S),
                              terminal[None, None, :].expand(S, A, S), gamma)
        pi_f, Q_f = optimal_policy(P, R, gamma, terminal, F)
        assert torch.equal(pi[:-1], pi_f[:-1]), f"seed {seed}: a potential changed the optimal policy"
        torch.testing.assert_close(Q_f[:-1], Q[:-1] - phi[:-1, None])  # Q_F(s, a) = Q(s, a) - Phi(s)
        bonus = torch.randn(S, A, 1, generator=g, dtype=torch.float64).expand(S, A, S) * 3
        changed += int(not torch.equal(pi[:-1], optimal_policy(P, R, gamma, terminal, bonus)[0][:-1]))
    assert changed > 0, "a non-potential bonus of this size should change some optimal policy"


def test_pbrs_signal_is_gamma_phi_next_minus_phi_of_the_state_only():
    sh = shaper(generator_input="state", signal="pbrs", eta=1.0)
    td = sample(4)
    metrics_td = td.clone()
    sh.shape(metrics_td, random_actor(), 0)
    td2 = td.clone()
    td2["action"] = -td2["action"]  # other actions, same states: the same F
    sh2 = shaper(generator_input="state", signal="pbrs", eta=1.0)
    sh2.shape(td2, random_actor(), 0)
    f1 = metrics_td["next", SHAPED_REWARD] - td["next", "reward"]
    f2 = td2["next", SHAPED_REWARD] - td["next", "reward"]
    torch.testing.assert_close(f1, f2)
    # and it is gamma (1 - terminated) Phi(s') - Phi(s) with Phi read before this update's target step
    fresh = shaper(generator_input="state", signal="pbrs", eta=1.0)
    phi, phi_next = fresh.potential(td["observation"]), fresh.potential(td["next", "observation"])
    expected = potential_shaping(phi, phi_next, td["next", "terminated"], fresh.gamma)
    torch.testing.assert_close(f1, expected, rtol=1e-5, atol=1e-6)
    term = td["next", "terminated"]
    torch.testing.assert_close(f1[term], -phi[term], rtol=1e-5, atol=1e-6)  # no Phi(s') after termination


def test_placebo_is_frozen_per_sample_and_in_range():
    pl = PlaceboShaper(OBS, ACT, hidden=[16, 16], eta=0.5, rs_learning_starts=0, seed=1)
    before = [p.clone() for p in pl.parameters()]
    td = sample(5)
    for k in range(3):
        pl.shape(td, random_actor(), k)
    assert all(torch.equal(a, b) for a, b in zip(before, pl.parameters()))
    bonus = (td["next", SHAPED_REWARD] - td["next", "reward"]) / 0.5
    assert bonus.std() > 0 and (bonus.abs() <= 1 + 1e-6).all()


def test_noise_signal_draws_with_the_running_moments_of_the_reward_agent():
    sh = shaper(signal="noise")
    sh.r_aux_moments.mean.fill_(0.3)
    sh.r_aux_moments.var.fill_(0.04)
    sh.r_aux_moments.count.fill_(1)
    td = sample(6, n=4096)
    draws = sh._signal(td, torch.zeros(4096, 1))
    assert draws.mean().item() == pytest.approx(0.3, abs=0.02)
    assert draws.std().item() == pytest.approx(0.2, rel=0.05)
    sh.r_aux_moments.var.fill_(0.0)
    assert torch.equal(sh._signal(td, torch.zeros(4096, 1)), torch.full((4096, 1), 0.3))


def test_policy_agent_critic_target_by_hand_equals_the_loss_module():
    """y = r^E + eta r^A + gamma (1 - terminated)(min_j Q'_j(s', a') - alpha log pi(a'|s')) on a 4-row
    batch, read from ("next", SHAPED_REWARD); the loss is the sum over the two Q-nets of their mean
    squared error."""
    from dcsched.training.harness import Agent
    from dcsched.config import load_recipe, to_container

    cfg = load_recipe("recipes/dress_sac.yaml", [
        "env.num_envs=2", "network.hidden_sizes=[16,16]", "shaper.latent_dim=8", "shaper.hidden_sizes=[16,16]",
        "shaper.cond_hidden=16", "logger.wandb_mode=disabled", "logger.csv=false", "agent.gamma=0.9"])
    agent = Agent(to_container(cfg))
    loss = agent.algorithm.loss
    obs, next_obs = torch.randn(4, agent.obs_dim), torch.randn(4, agent.obs_dim)
    act = torch.rand(4, agent.act_dim) * 2 - 1
    r_env = torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    r_aux = torch.tensor([[0.5], [-1.0], [0.25], [0.9]])
    terminated = torch.tensor([[False], [True], [False], [False]])
    shaped = r_env + 0.4 * r_aux
    td = TensorDict({"observation": obs, "action": act,
                     "next": {"observation": next_obs, "reward": r_env, SHAPED_REWARD: shaped,
                              "terminated": terminated, "done": terminated.clone()}}, [4])
    torch.manual_seed(11)
    got = loss(td.clone())["loss_qvalue"]

    torch.manual_seed(11)
    with torch.no_grad():
        dist = agent.algorithm.actor.get_dist(TensorDict({"observation": next_obs}, [4]))
        a_next = dist.rsample()
        logp = dist.log_prob(a_next).unsqueeze(-1)
        q_next = []
        for j in range(2):
            with loss.target_qvalue_network_params[j].to_module(loss.qvalue_network):
                q_next.append(loss.qvalue_network(TensorDict({"observation": next_obs, "action": a_next}, [4]))[
                    "state_action_value"])
        alpha = loss.log_alpha.exp()
        y = shaped + 0.9 * (~terminated).float() * (torch.minimum(*q_next) - alpha * logp)
    expected = 0.0
    for j in range(2):  # each Q-net on the whole batch, squared error (agent.critic_loss=l2), summed over nets
        with loss.qvalue_network_params[j].to_module(loss.qvalue_network):
            pred = loss.qvalue_network(TensorDict({"observation": obs, "action": act}, [4]))["state_action_value"]
        expected = expected + ((pred - y) ** 2).mean()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
