"""The reward agent (RA) of DRESS-style shaping (MODEL.md section 8) and its variants.

RA actor, ``diffusion`` kind: a conditional diffusion model over a latent x in R^M, W reverse
steps from x_W ~ N(0, I) with the VP schedule; noise net eps(x_i, i, c) is an MLP with Mish, a
sinusoidal step embedding and a condition encoder; x0_hat is clipped to [-1, 1] and the DDPM
posterior mean/variance give x_{i-1}. A Gaussian head on ReLU(x_0) gives u and r^A = tanh(u).
There is no denoising loss: the chain is trained end to end by the RA's SAC actor loss.
``mlp`` kind: the same Gaussian tanh head on an MLP of c (the paper's DNN-based shaping).

RA critic: twin Q on (c, r^A) with target networks; the RA's reward is the environment reward
r^E; its transitions are ((s, a), r^A proposed, (s', a'), r^E, done) with a' ~ pi_PA(s').
"""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type

from dcsched.registry import SHAPERS
from dcsched.shaping.base import Shaper, mlp, tanh_gaussian
from dcsched.shaping.vp_schedule import DiffusionSchedule, sinusoidal_embedding

R_AUX_KEY = ("shaper", "r_aux")


class DiffusionRewardActor(nn.Module):
    """c [B, C] -> (mu, log_std) [B, 1] through W reverse diffusion steps over x in R^M."""

    def __init__(self, cond_dim: int, latent_dim: int = 128, num_steps: int = 5, hidden: int = 256,
                 cond_hidden: int = 256, time_dim: int = 16, beta_min: float = 0.1, beta_max: float = 10.0):
        super().__init__()
        self.latent_dim, self.time_dim = latent_dim, time_dim
        self.schedule = DiffusionSchedule(num_steps, beta_min, beta_max)
        self.cond_encoder = nn.Sequential(nn.Linear(cond_dim, cond_hidden), nn.Mish())
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim * 2), nn.Mish(), nn.Linear(time_dim * 2, time_dim))
        self.noise_net = mlp(latent_dim + time_dim + cond_hidden, latent_dim, [hidden, hidden], nn.Mish)
        self.head = nn.Linear(latent_dim, 2)

    def latent(self, c: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Run the reverse chain; differentiable in the network parameters. Returns x_0 [B, M]."""
        B = c.shape[0]
        s = self.schedule
        cond = self.cond_encoder(c)
        x = torch.randn(B, self.latent_dim, generator=gen, device=c.device, dtype=c.dtype)
        for i in reversed(range(s.num_steps)):  # W reverse steps (a chain, not a batch loop)
            step = torch.full((B,), i, device=c.device, dtype=torch.long)
            t_emb = self.time_mlp(sinusoidal_embedding(step, self.time_dim))
            eps = self.noise_net(torch.cat([x, t_emb, cond], dim=-1))
            x0 = (s.sqrt_recip_abar[i] * x - s.sqrt_recipm1_abar[i] * eps).clamp(-1.0, 1.0)
            mean = s.post_mean_coef_x0[i] * x0 + s.post_mean_coef_xt[i] * x
            if i > 0:
                noise = torch.randn(x.shape, generator=gen, device=c.device, dtype=c.dtype)
                x = mean + torch.exp(0.5 * s.post_log_var[i]) * noise
            else:
                x = mean
        return x

    def forward(self, c: torch.Tensor, gen: torch.Generator | None = None):
        out = self.head(torch.relu(self.latent(c, gen)))
        return out[..., :1], out[..., 1:]


class MLPRewardActor(nn.Module):
    """c [B, C] -> (mu, log_std) [B, 1] by an MLP (the paper's DNN-based reward shaping)."""

    def __init__(self, cond_dim: int, hidden: list[int]):
        super().__init__()
        self.net = mlp(cond_dim, 2, hidden, nn.Mish)

    def forward(self, c: torch.Tensor, gen: torch.Generator | None = None):
        out = self.net(c)
        return out[..., :1], out[..., 1:]


class RewardAgentShaper(Shaper):
    """Reward agent trained as its own SAC on r^E; adds eta * r^A to the policy agent's reward.

    ``potential=True`` gives the policy-invariant look-ahead variant F = gamma Phi(s', a') - Phi(s, a)
    with Phi the RA's deterministic output tanh(mu(c)).
    """

    def __init__(self, obs_dim: int, act_dim: int, *, actor_kind: str = "diffusion", conditioning: bool = True,
                 potential: bool = False, eta: float = 0.4, latent_dim: int = 128, num_steps: int = 5,
                 beta_min: float = 0.1, beta_max: float = 10.0, hidden: list[int] = (256, 256),
                 cond_hidden: int = 256, time_dim: int = 16, gamma: float = 0.99, tau: float = 0.005,
                 lr_actor: float = 3e-4, lr_critic: float = 1e-3, alpha: float = 1e-4,
                 rs_learning_starts: int = 5000, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(eta, rs_learning_starts, seed, device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.conditioning, self.potential = conditioning, potential
        self.gamma, self.tau, self.alpha = gamma, tau, alpha
        cond_dim = obs_dim + act_dim
        # parameter init never touches the PA's streams: manual_seed reseeds every CUDA device, so
        # the training device's state is saved and restored too
        dev = torch.device(device)
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(int(seed) + 104729)
            if actor_kind == "diffusion":
                self.actor = DiffusionRewardActor(cond_dim, latent_dim, num_steps, hidden[0], cond_hidden, time_dim,
                                                  beta_min, beta_max)
            elif actor_kind == "mlp":
                self.actor = MLPRewardActor(cond_dim, list(hidden))
            else:
                raise ValueError(f"actor_kind '{actor_kind}' not in (diffusion, mlp)")
            self.q1 = mlp(cond_dim + 1, 1, list(hidden), nn.ReLU)
            self.q2 = mlp(cond_dim + 1, 1, list(hidden), nn.ReLU)
        self.to(device)
        self.q1_target = copy.deepcopy(self.q1).requires_grad_(False)
        self.q2_target = copy.deepcopy(self.q2).requires_grad_(False)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=lr_actor)
        self.opt_critic = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr_critic)

    # ------------------------------------------------------------------ helpers
    def condition(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        c = torch.cat([obs, action.to(obs.dtype)], dim=-1)
        return c if self.conditioning else torch.zeros_like(c)

    def propose(self, obs, action, deterministic: bool = False):
        mu, log_std = self.actor(self.condition(obs, action), self.gen)
        return tanh_gaussian(mu, log_std, self.gen, deterministic)

    def _next_action(self, next_obs: torch.Tensor, actor) -> torch.Tensor:
        with torch.no_grad(), self.own_rng(), set_exploration_type(ExplorationType.RANDOM):
            td = actor(TensorDict({"observation": next_obs}, batch_size=[next_obs.shape[0]]))
        return td["action"]

    # ------------------------------------------------------------------ interface
    @torch.no_grad()
    def annotate(self, batch) -> None:
        obs = batch["observation"].reshape(-1, self.obs_dim)
        act = batch["action"].reshape(-1, self.act_dim)
        r_aux, _ = self.propose(obs, act)
        batch.set(R_AUX_KEY, r_aux.reshape(*batch.shape, 1))

    def shaped_reward(self, sample, actor, frames: int) -> torch.Tensor:
        """r^E + eta * r^A(s, a) per sample, [B, 1]. The RA's forward pass on (s, a) is kept (with
        its graph) and reused by the RA's actor loss in :meth:`update` on the same sample, so the
        diffusion chain runs once per update for both uses."""
        self._cache = None
        r_env = sample["next", "reward"]
        if frames < self.rs_learning_starts or self.eta == 0.0:
            return r_env
        obs, act = sample["observation"], sample["action"]
        if self.potential:
            with torch.no_grad():
                phi, _ = self.propose(obs, act, deterministic=True)
                next_obs = sample["next", "observation"]
                phi_next, _ = self.propose(next_obs, self._next_action(next_obs, actor), deterministic=True)
                done = sample["next", "terminated"].to(phi.dtype)
                bonus = self.gamma * (1.0 - done) * phi_next - phi
        else:
            c = self.condition(obs, act)
            mu, log_std = self.actor(c, self.gen)
            r_new, logp = tanh_gaussian(mu, log_std, self.gen)  # per-sample r^A from the current RA
            self._cache = (id(sample), c, r_new, logp)
            bonus = r_new.detach()
        return r_env + self.eta * bonus.to(r_env.dtype)

    def update(self, sample, actor) -> dict[str, float]:
        obs, act = sample["observation"], sample["action"]
        next_obs = sample["next", "observation"]
        r_env = sample["next", "reward"].to(obs.dtype)
        done = sample["next", "terminated"].to(obs.dtype)
        r_prop = sample[R_AUX_KEY].to(obs.dtype)
        c = self.condition(obs, act)
        with torch.no_grad():
            c_next = self.condition(next_obs, self._next_action(next_obs, actor))
            mu, log_std = self.actor(c_next, self.gen)
            r_next, logp_next = tanh_gaussian(mu, log_std, self.gen)
            x_next = torch.cat([c_next, r_next], dim=-1)
            q_next = torch.minimum(self.q1_target(x_next), self.q2_target(x_next)) - self.alpha * logp_next
            target = r_env + self.gamma * (1.0 - done) * q_next
        x = torch.cat([c, r_prop], dim=-1)
        loss_q = 0.5 * ((self.q1(x) - target) ** 2).mean() + 0.5 * ((self.q2(x) - target) ** 2).mean()
        self.opt_critic.zero_grad()
        loss_q.backward()
        self.opt_critic.step()

        cache, self._cache = getattr(self, "_cache", None), None
        if cache is not None and cache[0] == id(sample):
            _, c, r_new, logp = cache
        else:
            mu, log_std = self.actor(c, self.gen)
            r_new, logp = tanh_gaussian(mu, log_std, self.gen)
        x_new = torch.cat([c, r_new], dim=-1)
        q_new = torch.minimum(self.q1(x_new), self.q2(x_new))
        loss_pi = (self.alpha * logp - q_new).mean()
        self.opt_actor.zero_grad()
        loss_pi.backward()
        self.opt_actor.step()
        self.q1.zero_grad(set_to_none=True)
        self.q2.zero_grad(set_to_none=True)
        with torch.no_grad():
            for net, tgt in ((self.q1, self.q1_target), (self.q2, self.q2_target)):
                for p, tp in zip(net.parameters(), tgt.parameters()):
                    tp.lerp_(p, self.tau)
        return {"rs/loss_critic": loss_q.item(), "rs/loss_actor": loss_pi.item(),
                "rs/r_aux_mean": r_new.mean().item(), "rs/r_aux_std": r_new.std().item()}

    def optimizer_state(self) -> dict:
        return {"actor": self.opt_actor.state_dict(), "critic": self.opt_critic.state_dict(),
                "gen": self.gen.get_state()}

    def load_optimizer_state(self, state: dict) -> None:
        self.opt_actor.load_state_dict(state["actor"])
        self.opt_critic.load_state_dict(state["critic"])
        self.gen.set_state(state["gen"])


def _factory(actor_kind: str, conditioning: bool = True, potential: bool = False):
    def build(obs_dim: int, act_dim: int, cfg, seed: int, device: torch.device | str = "cpu") -> RewardAgentShaper:
        return RewardAgentShaper(
            obs_dim, act_dim, actor_kind=actor_kind, conditioning=conditioning, potential=potential,
            eta=cfg.eta, latent_dim=cfg.latent_dim, num_steps=cfg.denoising_steps, beta_min=cfg.beta_min,
            beta_max=cfg.beta_max, hidden=list(cfg.hidden_sizes), cond_hidden=cfg.cond_hidden,
            time_dim=cfg.time_embedding_dim, gamma=cfg.gamma, tau=cfg.tau, lr_actor=cfg.lr_actor,
            lr_critic=cfg.lr_critic, alpha=cfg.alpha, rs_learning_starts=cfg.rs_learning_starts, seed=seed,
            device=device)

    return build


SHAPERS.add("dress", _factory("diffusion"), "DRESS-style diffusion reward agent conditioned on (s, a) (MODEL.md 8)")
SHAPERS.add("mlp_rs", _factory("mlp"), "MLP reward agent: the paper's DNN-based reward shaping")
SHAPERS.add("dress_nocond", _factory("diffusion", conditioning=False), "ablation: diffusion reward agent with zeros for (s, a)")
SHAPERS.add("dress_potential", _factory("diffusion", potential=True),
            "policy-invariant look-ahead advice F = gamma Phi(s', a') - Phi(s, a), Phi = RA output")
