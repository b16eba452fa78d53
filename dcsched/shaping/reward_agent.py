"""The reward agent (RA) of DRESS-style shaping (MODEL.md section 8), its variants and controls.

RA actor (the generator), ``diffusion`` kind: a conditional diffusion model over a latent x in
R^M, W reverse steps from x_W ~ N(0, I) with the VP schedule; noise net eps(x_i, i, c) is an MLP
with Mish, a sinusoidal step embedding and a condition encoder; x0_hat is clipped to [-1, 1] and
the DDPM posterior mean/variance give x_{i-1}. A Gaussian head on ReLU(x_0) gives u and
r^A = tanh(u). There is no denoising loss: the chain is trained end to end by the RA's SAC actor
loss. ``mlp`` kind: the same Gaussian tanh head on an MLP of c (the paper's DNN-based shaping).

RA critic: twin Q on (s, a, r^A) with target networks; the RA's reward is the environment reward
r^E; its transitions are ((s, a), r^A proposed, (s', a'), r^E, done) with a' ~ pi_PA(s'). Its
temperature alpha is auto-tuned from ``alpha_init`` (target entropy -1, the dimension of r^A).

What enters the policy agent's target (``signal``):
- ``agent``: r^A(s, a) drawn per sample from the current RA (DRESS);
- ``noise``: i.i.d. draws with the RA's running mean and std (control: the RA still trains);
- ``pbrs``: F = gamma (1 - terminated) Phi(s') - Phi(s) with Phi(s) = tanh(mu) of a slowly updated
  target copy of a state-conditioned generator, run along the chain's mean path (x_W = 0, no
  noise): a deterministic, state-only potential, so the optimal policy is unchanged.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type

from dcsched.registry import SHAPERS
from dcsched.shaping.base import (R_AUX_KEY, R_AUX_NOW_KEY, Shaper, correlation, mlp, potential_shaping,
                                  tanh_gaussian)
from dcsched.shaping.vp_schedule import DiffusionSchedule, sinusoidal_embedding

RUNNING_STATS_MOMENTUM = 0.01  # weight of each update's batch in the running mean/std of r^A
GENERATOR_INPUTS = ("state_action", "zeros", "state")
SIGNALS = ("agent", "noise", "pbrs")


class DiffusionRewardActor(nn.Module):
    """c [B, C] -> (mu, raw log-std) [B, 1] through W reverse diffusion steps over x in R^M."""

    def __init__(self, cond_dim: int, latent_dim: int = 128, num_steps: int = 5, hidden: int = 256,
                 cond_hidden: int = 256, time_dim: int = 16, beta_min: float = 0.1, beta_max: float = 10.0):
        super().__init__()
        self.latent_dim, self.time_dim, self.cond_hidden = latent_dim, time_dim, cond_hidden
        self.schedule = DiffusionSchedule(num_steps, beta_min, beta_max)
        self.cond_encoder = nn.Sequential(nn.Linear(cond_dim, cond_hidden), nn.Mish())
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim * 2), nn.Mish(), nn.Linear(time_dim * 2, time_dim))
        self.noise_net = mlp(latent_dim + time_dim + cond_hidden, latent_dim, [hidden, hidden], nn.Mish)
        self.head = nn.Linear(latent_dim, 2)

    def noise_prediction(self, x: torch.Tensor, step: int, cond: torch.Tensor) -> torch.Tensor:
        """eps(x_i, i, c) = noise_net([x, time_mlp(emb(i)), cond]) for one step i. x [B, M], cond [B, C'].
        The reference form of :meth:`latent`'s split first layer (tests compare them)."""
        t_emb = self.time_mlp(sinusoidal_embedding(torch.full((x.shape[0],), step, device=x.device), self.time_dim))
        return self.noise_net(torch.cat([x, t_emb, cond], dim=-1))

    def latent(self, c: torch.Tensor, gen: torch.Generator | None, mean_path: bool = False) -> torch.Tensor:
        """Run the reverse chain; differentiable in the network parameters. Returns x_0 [B, M].

        The noise net's first layer on [x, t_emb, cond] is computed as W_x x + W_t t_emb + (W_c cond + b):
        the same function with the same parameters, but the condition's part (the widest) once per
        chain and the step embedding once per step, not once per row. ``mean_path``: x_W = 0 and no
        posterior noise (a deterministic function of c)."""
        B = c.shape[0]
        s = self.schedule
        cond = self.cond_encoder(c)
        first = self.noise_net[0]
        w_x, w_t, w_c = first.weight.split([self.latent_dim, self.time_dim, self.cond_hidden], dim=1)
        cond_part = F.linear(cond, w_c, first.bias)  # [B, H]
        rest = self.noise_net[1:]
        steps = torch.arange(s.num_steps, device=c.device)
        time_part = F.linear(self.time_mlp(sinusoidal_embedding(steps, self.time_dim)), w_t)  # [W, H]
        if mean_path:
            x = torch.zeros(B, self.latent_dim, device=c.device, dtype=c.dtype)
        else:
            x = torch.randn(B, self.latent_dim, generator=gen, device=c.device, dtype=c.dtype)
        for i in reversed(range(s.num_steps)):  # W reverse steps (a chain, not a batch loop)
            eps = rest(F.linear(x, w_x) + time_part[i] + cond_part)
            x0 = (s.sqrt_recip_abar[i] * x - s.sqrt_recipm1_abar[i] * eps).clamp(-1.0, 1.0)
            mean = s.post_mean_coef_x0[i] * x0 + s.post_mean_coef_xt[i] * x
            if i > 0 and not mean_path:
                noise = torch.randn(x.shape, generator=gen, device=c.device, dtype=c.dtype)
                x = mean + torch.exp(0.5 * s.post_log_var[i]) * noise
            else:
                x = mean
        return x

    def forward(self, c: torch.Tensor, gen: torch.Generator | None = None, mean_path: bool = False):
        out = self.head(torch.relu(self.latent(c, gen, mean_path)))
        return out[..., :1], out[..., 1:]


class MLPRewardActor(nn.Module):
    """c [B, C] -> (mu, raw log-std) [B, 1] by an MLP (the paper's DNN-based reward shaping)."""

    def __init__(self, cond_dim: int, hidden: list[int]):
        super().__init__()
        self.net = mlp(cond_dim, 2, hidden, nn.Mish)

    def forward(self, c: torch.Tensor, gen: torch.Generator | None = None, mean_path: bool = False):
        out = self.net(c)
        return out[..., :1], out[..., 1:]


def _seeded_init(seed: int, device: torch.device, build):
    """Build modules under a private seed: parameter init never touches the policy agent's
    streams (manual_seed reseeds every CUDA device, so the training device's state is restored)."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        return build()


class RunningMoments(nn.Module):
    """Exponential running mean and variance of a scalar stream (buffers: in the checkpoint)."""

    def __init__(self, momentum: float = RUNNING_STATS_MOMENTUM):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        m, v = x.mean().to(self.mean.dtype), x.var(unbiased=False).to(self.var.dtype)
        if int(self.count) == 0:
            self.mean.copy_(m)
            self.var.copy_(v)
        else:
            self.mean.lerp_(m, self.momentum)
            self.var.lerp_(v, self.momentum)
        self.count += 1


class RewardAgentShaper(Shaper):
    """Reward agent trained as its own SAC on r^E; adds eta * (its signal) to the policy agent's reward.

    generator_input: what the RA actor sees: ``state_action`` (DRESS), ``zeros`` (the no-conditioning
    ablation: the critic still sees (s, a, r^A)) or ``state`` (for the state-only potential).
    signal: ``agent`` | ``noise`` | ``pbrs`` (module docstring).
    """

    def __init__(self, obs_dim: int, act_dim: int, *, actor_kind: str = "diffusion",
                 generator_input: str = "state_action", signal: str = "agent", eta: float = 0.4,
                 latent_dim: int = 128, num_steps: int = 5, beta_min: float = 0.1, beta_max: float = 10.0,
                 hidden: list[int] = (256, 256), cond_hidden: int = 256, time_dim: int = 16, gamma: float = 0.99,
                 tau: float = 0.005, lr_actor: float = 3e-4, lr_critic: float = 1e-3, alpha_init: float = 1.0,
                 lr_alpha: float = 1e-4, fixed_alpha: bool = False, rs_learning_starts: int = 5000, seed: int = 0,
                 device: torch.device | str = "cpu"):
        super().__init__(eta, rs_learning_starts, seed, device)
        if generator_input not in GENERATOR_INPUTS:
            raise ValueError(f"generator_input '{generator_input}' not in {GENERATOR_INPUTS}")
        if signal not in SIGNALS:
            raise ValueError(f"signal '{signal}' not in {SIGNALS}")
        if signal == "pbrs" and generator_input != "state":
            raise ValueError("signal 'pbrs' needs generator_input 'state' (a state-only potential)")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.generator_input, self.signal = generator_input, signal
        self.gamma, self.tau, self.fixed_alpha = gamma, tau, fixed_alpha
        self.target_entropy = -1.0  # -dim(r^A)
        critic_dim = obs_dim + act_dim
        gen_dim = obs_dim if generator_input == "state" else critic_dim
        dev = torch.device(device)

        def build():
            if actor_kind == "diffusion":
                actor = DiffusionRewardActor(gen_dim, latent_dim, num_steps, hidden[0], cond_hidden, time_dim,
                                             beta_min, beta_max)
            elif actor_kind == "mlp":
                actor = MLPRewardActor(gen_dim, list(hidden))
            else:
                raise ValueError(f"actor_kind '{actor_kind}' not in (diffusion, mlp)")
            return actor, mlp(critic_dim + 1, 1, list(hidden), nn.ReLU), mlp(critic_dim + 1, 1, list(hidden), nn.ReLU)

        self.actor, self.q1, self.q2 = _seeded_init(int(seed) + 104729, dev, build)
        self.log_alpha = nn.Parameter(torch.tensor(float(alpha_init)).log(), requires_grad=not fixed_alpha)
        self.r_aux_moments = RunningMoments()
        self.to(device)
        self.q1_target = copy.deepcopy(self.q1).requires_grad_(False)
        self.q2_target = copy.deepcopy(self.q2).requires_grad_(False)
        # the potential's slowly updated copy of the generator (only the pbrs signal reads it)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False) if signal == "pbrs" else None
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=lr_actor)
        self.opt_critic = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr_critic)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=lr_alpha)

    # ------------------------------------------------------------------ helpers
    def generator_condition(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """What the RA actor sees. obs [B, S], action [B, A] -> [B, S + A] (or [B, S] for ``state``)."""
        if self.generator_input == "state":
            return obs
        c = torch.cat([obs, action.to(obs.dtype)], dim=-1)
        return c if self.generator_input == "state_action" else torch.zeros_like(c)

    def propose(self, obs, action, deterministic: bool = False):
        mu, raw_log_std = self.actor(self.generator_condition(obs, action), self.gen)
        return tanh_gaussian(mu, raw_log_std, self.gen, deterministic)

    @torch.no_grad()
    def potential(self, obs: torch.Tensor) -> torch.Tensor:
        """Phi(s) = tanh(mu(s)) of the target generator along the chain's mean path. [B, S] -> [B, 1]."""
        mu, _ = self.actor_target(obs, None, mean_path=True)
        return torch.tanh(mu)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def _next_action(self, next_obs: torch.Tensor, actor) -> torch.Tensor:
        with torch.no_grad(), self.own_rng(), set_exploration_type(ExplorationType.RANDOM):
            td = actor(TensorDict({"observation": next_obs}, batch_size=[next_obs.shape[0]]))
        return td["action"]

    # ------------------------------------------------------------------ interface
    def shape(self, sample, actor, frames: int, diagnose: bool = False,
              next_action: torch.Tensor | None = None) -> dict[str, float]:
        """One SAC step of the RA on (s, a, r^A proposed, s', r^E) and the policy agent's shaped
        reward, written to ("next", SHAPED_REWARD). The RA's forward pass on (s, a) happens once and
        serves both: the signal is that pass's r^A (the current RA, before its step).
        ``next_action``: a' [B, A] given by the caller (else drawn from ``actor`` at s')."""
        active = self.active(frames)
        obs, act = sample["observation"], sample["action"]
        next_obs = sample["next", "observation"]
        r_env = sample["next", "reward"].to(obs.dtype)
        done = sample["next", "terminated"].to(obs.dtype)
        r_prop = sample[R_AUX_KEY].to(obs.dtype)
        c = torch.cat([obs, act.to(obs.dtype)], dim=-1)
        alpha = self.alpha
        with torch.no_grad():
            a_next = self._next_action(next_obs, actor) if next_action is None else next_action
            r_next, logp_next = self.propose(next_obs, a_next)
            x_next = torch.cat([next_obs, a_next.to(obs.dtype), r_next], dim=-1)
            q_next = torch.minimum(self.q1_target(x_next), self.q2_target(x_next)) - alpha * logp_next
            target = r_env + self.gamma * (1.0 - done) * q_next
        x = torch.cat([c, r_prop], dim=-1)
        loss_q = 0.5 * ((self.q1(x) - target) ** 2).mean() + 0.5 * ((self.q2(x) - target) ** 2).mean()
        self.opt_critic.zero_grad()
        loss_q.backward()
        self.opt_critic.step()

        r_new, logp = self.propose(obs, act)  # the one forward pass with a graph
        q_new = torch.minimum(self.q1(torch.cat([c, r_new], dim=-1)), self.q2(torch.cat([c, r_new], dim=-1)))
        loss_pi = (alpha * logp - q_new).mean()
        metrics: dict[str, float] = {}
        if diagnose:  # does the RA's critic depend on r^A at all?
            (dq_dr,) = torch.autograd.grad(q_new.sum(), r_new, retain_graph=True)
            metrics["diag/dq_ra_dr_aux_abs_mean"] = dq_dr.abs().mean().item()
        self.opt_actor.zero_grad()
        loss_pi.backward()
        self.opt_actor.step()
        self.q1.zero_grad(set_to_none=True)
        self.q2.zero_grad(set_to_none=True)
        if not self.fixed_alpha:
            loss_alpha = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.opt_alpha.zero_grad()
            loss_alpha.backward()
            self.opt_alpha.step()
        r_new = r_new.detach()
        self.r_aux_moments.update(r_new)
        bonus = None
        if active:
            bonus = self._signal(sample, r_new)
        with torch.no_grad():
            targets = [(self.q1, self.q1_target), (self.q2, self.q2_target)]
            if self.actor_target is not None:
                targets.append((self.actor, self.actor_target))
            for net, tgt in targets:
                for p, tp in zip(net.parameters(), tgt.parameters()):
                    tp.lerp_(p, self.tau)
        self.write_shaped(sample, bonus)
        sample.set(R_AUX_NOW_KEY, r_new)
        metrics.update({"rs/loss_critic": loss_q.item(), "rs/loss_actor": loss_pi.item(), "rs/alpha": float(alpha),
                        "rs/active": float(active), "rs/r_aux_mean": r_new.mean().item(),
                        "rs/r_aux_std": r_new.std().item()})
        if diagnose:
            metrics["diag/corr_r_aux_r_env"] = correlation(r_new, r_env)
            if bonus is not None:
                metrics["diag/bonus_mean"] = bonus.mean().item()
                metrics["diag/bonus_std"] = bonus.std().item()
        return metrics

    @torch.no_grad()
    def bonus(self, obs, action, next_obs, terminated) -> torch.Tensor:
        """The signal of :meth:`_signal` for rows outside an update (the current RA): [M, 1]."""
        if self.signal == "agent":
            return self.propose(obs, action)[0]
        if self.signal == "noise":
            z = torch.randn((obs.shape[0], 1), generator=self.gen, device=obs.device, dtype=obs.dtype)
            return self.r_aux_moments.mean + self.r_aux_moments.var.sqrt() * z
        phi, phi_next = self.potential(torch.cat([obs, next_obs], dim=0)).chunk(2, dim=0)
        return potential_shaping(phi, phi_next, terminated, self.gamma)

    def _signal(self, sample, r_new: torch.Tensor) -> torch.Tensor:
        """What eta multiplies in the policy agent's target, [B, 1]: this update's r^A, or :meth:`bonus`."""
        if self.signal == "agent":
            return r_new
        return self.bonus(sample["observation"], sample["action"], sample["next", "observation"],
                          sample["next", "terminated"])

    def optimizer_state(self) -> dict:
        return {"actor": self.opt_actor.state_dict(), "critic": self.opt_critic.state_dict(),
                "alpha": self.opt_alpha.state_dict(), "gen": self.gen.get_state()}

    def load_optimizer_state(self, state: dict) -> None:
        self.opt_actor.load_state_dict(state["actor"])
        self.opt_critic.load_state_dict(state["critic"])
        if "alpha" in state:
            self.opt_alpha.load_state_dict(state["alpha"])
        self.gen.set_state(state["gen"])


class PlaceboShaper(Shaper):
    """Control: a frozen, randomly initialised network of (s, a) with the RA's Gaussian tanh head
    (range [-1, 1]), never trained; its r^A is drawn per sample like the RA's."""

    def __init__(self, obs_dim: int, act_dim: int, *, eta: float = 0.4, hidden: list[int] = (256, 256),
                 rs_learning_starts: int = 5000, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(eta, rs_learning_starts, seed, device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = _seeded_init(int(seed) + 104729, torch.device(device),
                                  lambda: MLPRewardActor(obs_dim + act_dim, list(hidden))).requires_grad_(False)
        self.to(device)

    @torch.no_grad()
    def propose(self, obs, action):
        mu, raw_log_std = self.actor(torch.cat([obs, action.to(obs.dtype)], dim=-1))
        return tanh_gaussian(mu, raw_log_std, self.gen)

    @torch.no_grad()
    def shape(self, sample, actor, frames: int, diagnose: bool = False,
              next_action: torch.Tensor | None = None) -> dict[str, float]:
        active = self.active(frames)
        r_new, _ = self.propose(sample["observation"], sample["action"])
        self.write_shaped(sample, r_new if active else None)
        sample.set(R_AUX_NOW_KEY, r_new)
        metrics = {"rs/active": float(active), "rs/r_aux_mean": r_new.mean().item(), "rs/r_aux_std": r_new.std().item()}
        if diagnose:
            metrics["diag/corr_r_aux_r_env"] = correlation(r_new, sample["next", "reward"])
        return metrics


def _reward_agent(actor_kind: str, generator_input: str = "state_action", signal: str = "agent"):
    def build(obs_dim: int, act_dim: int, cfg, seed: int, device: torch.device | str = "cpu") -> RewardAgentShaper:
        return RewardAgentShaper(
            obs_dim, act_dim, actor_kind=actor_kind, generator_input=generator_input, signal=signal,
            eta=cfg.eta, latent_dim=cfg.latent_dim, num_steps=cfg.denoising_steps, beta_min=cfg.beta_min,
            beta_max=cfg.beta_max, hidden=list(cfg.hidden_sizes), cond_hidden=cfg.cond_hidden,
            time_dim=cfg.time_embedding_dim, gamma=cfg.gamma, tau=cfg.tau, lr_actor=cfg.lr_actor,
            lr_critic=cfg.lr_critic, alpha_init=cfg.alpha_init, lr_alpha=cfg.lr_alpha, fixed_alpha=cfg.fixed_alpha,
            rs_learning_starts=cfg.rs_learning_starts, seed=seed, device=device)

    return build


def _placebo(obs_dim: int, act_dim: int, cfg, seed: int, device: torch.device | str = "cpu") -> PlaceboShaper:
    return PlaceboShaper(obs_dim, act_dim, eta=cfg.eta, hidden=list(cfg.hidden_sizes),
                         rs_learning_starts=cfg.rs_learning_starts, seed=seed, device=device)


SHAPERS.add("dress", _reward_agent("diffusion"), "DRESS-style diffusion reward agent conditioned on (s, a) (MODEL.md 8)")
SHAPERS.add("mlp_rs", _reward_agent("mlp"), "MLP reward agent: the paper's DNN-based reward shaping")
SHAPERS.add("dress_nocond", _reward_agent("diffusion", generator_input="zeros"),
            "ablation: the diffusion generator sees zeros for (s, a); its critic still sees (s, a, r^A)")
SHAPERS.add("dress_pbrs", _reward_agent("diffusion", generator_input="state", signal="pbrs"),
            "policy-invariant: F = gamma (1 - terminated) Phi(s') - Phi(s), Phi(s) the mean path of a target RA of s")
SHAPERS.add("placebo_rs", _placebo, "control: a frozen random network of (s, a) with the RA's head, never trained")
SHAPERS.add("noise_rs", _reward_agent("diffusion", signal="noise"),
            "control: i.i.d. r^A with the diffusion RA's running mean and std (the RA still trains)")
