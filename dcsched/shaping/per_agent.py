"""DRESS-style shaping for the per-provider agents of the multi-agent view (issue #15).

The reward agents are the off-policy shapers of :mod:`dcsched.shaping.reward_agent` (any name in
the ``SHAPERS`` registry), applied to each agent's own (o_n, a_n): a provider's reward agent sees
what that provider sees and does, never another provider's observation. ``shaper.per_agent``:

- ``shared``: one reward agent for every provider (its rows are every agent's transitions; the
  observation carries the provider's one-hot identity);
- ``per_provider``: one reward agent per provider, each trained on its own provider's rows only,
  with its own seed and its own random stream.

On an on-policy batch [B, T] of the view (PPO's whole-day batches), :meth:`PerAgentShaping.shape_batch`

1. draws a' ~ pi(o'_n) for every row with the acting policy, under the shaper's own random stream
   (the policy agent's stream is untouched, so eta = 0 trains exactly as without a shaper);
2. runs ``shaper.updates_per_batch`` SAC steps of each reward agent on minibatches of
   ``shaper.batch_size`` of its rows ((o_n, a_n), r^A proposed by the current reward agent, o'_n,
   a'_n, the team reward r^E, terminated), as the reward agent of the off-policy agents does on
   replayed samples;
3. returns the shaped reward per agent, r^E + eta * F_n [B, T, N, 1], with F_n the signal of the
   updated reward agent for every row (``agent``: r^A drawn for (o_n, a_n); ``noise`` and
   ``pbrs`` as their registry entries say), or exactly r^E until the reward agent has trained for
   ``rs_learning_starts`` environment frames.

The agent's action enters the reward agent's condition as its levels over (levels - 1), in [0, 1].
"""

from __future__ import annotations

from collections import defaultdict

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type

from dcsched.shaping.base import R_AUX_KEY, Shaper

PER_AGENT_MODES = ("shared", "per_provider")
BONUS_CHUNK_ROWS = 65536  # rows per no-grad pass of the reward agent over a whole batch (bounds memory)


class PerAgentShaping(nn.Module):
    """Reward agents for N agents sharing one action layout.

    Args:
        build: ``build(seed) -> Shaper`` for one agent's (obs_dim, act_dim).
        n_agents: N.
        nvec: [A] levels of each action component (scales the action to [0, 1]).
        mode: ``shared`` | ``per_provider``.
        seed: the run's seed; reward agent n of ``per_provider`` uses seed + 1000 n.
        updates_per_batch, batch_size: the reward agents' SAC steps per collected batch and rows per step.
    """

    def __init__(self, build, n_agents: int, nvec: list[int], mode: str, seed: int, updates_per_batch: int,
                 batch_size: int):
        super().__init__()
        if mode not in PER_AGENT_MODES:
            raise ValueError(f"per-agent shaping mode '{mode}' not in {PER_AGENT_MODES}")
        self.mode, self.n_agents = mode, n_agents
        self.updates_per_batch, self.batch_size = int(updates_per_batch), int(batch_size)
        count = 1 if mode == "shared" else n_agents
        self.shapers = nn.ModuleList([build(int(seed) + 1000 * n) for n in range(count)])
        self.register_buffer("action_scale", 1.0 / torch.tensor(nvec, dtype=torch.float32).sub(1.0).clamp_min(1.0))

    # --------------------------------------------------------------- what the agent reads and saves
    @property
    def eta(self) -> float:
        return self.shapers[0].eta

    @property
    def gen(self) -> torch.Generator:
        """The first reward agent's generator (the placement check); each has its own."""
        return self.shapers[0].gen

    def optimizer_state(self) -> dict:
        return {"per_agent": [s.optimizer_state() for s in self.shapers]}

    def load_optimizer_state(self, state: dict) -> None:
        for shaper, saved in zip(self.shapers, state["per_agent"], strict=True):
            shaper.load_optimizer_state(saved)

    # --------------------------------------------------------------- the batch
    def _rows(self, x: torch.Tensor, n: int | None) -> torch.Tensor:
        """[*, N, D] -> [M, D]: every agent's rows (n None) or agent n's."""
        x = x if n is None else x[..., n : n + 1, :]
        return x.reshape(-1, x.shape[-1])

    def next_actions(self, next_obs: torch.Tensor, actor, group: str) -> torch.Tensor:
        """a' ~ pi(o') for next_obs [*, N, O] -> levels [*, N, A], drawn in the first reward agent's
        own random stream."""
        td = TensorDict({group: TensorDict({"observation": next_obs}, batch_size=next_obs.shape[:-1])},
                        batch_size=next_obs.shape[:-2])
        with torch.no_grad(), self.shapers[0].own_rng(), set_exploration_type(ExplorationType.RANDOM):
            return actor(td)[group, "action"]

    def shape_batch(self, batch: TensorDictBase, actor, frames: int, group: str,
                    diagnose: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(shaped reward [*, N, 1], the signal F [*, N, 1], metrics) for an on-policy batch of the
        view (see the module docstring). F is computed for every row, also before the shaping
        starts (then the shaped reward is exactly r^E), so that its diagnostics exist from the start."""
        obs = batch[group, "observation"]
        act = batch[group, "action"].to(obs.dtype) * self.action_scale.to(obs.dtype)
        next_obs = batch["next", group, "observation"]
        r_env = batch["next", group, "reward"]
        terminated = batch["next", group, "terminated"].to(obs.dtype)
        next_act = self.next_actions(next_obs, actor, group).to(obs.dtype) * self.action_scale.to(obs.dtype)
        bonus = torch.zeros_like(r_env, dtype=obs.dtype)
        sums: dict[str, float] = defaultdict(float)
        active = []
        for i, shaper in enumerate(self.shapers):
            n = None if self.mode == "shared" else i
            rows = {k: self._rows(v, n) for k, v in (("obs", obs), ("act", act), ("next_obs", next_obs),
                                                      ("next_act", next_act), ("r", r_env.to(obs.dtype)),
                                                      ("term", terminated))}
            for u in range(self.updates_per_batch):
                m = _update(shaper, rows, self.batch_size, frames, diagnose and u == self.updates_per_batch - 1)
                for k, v in m.items():
                    sums[k] += v / (self.updates_per_batch * len(self.shapers))
            active.append(shaper.is_active(frames))
            # the signal of every row, also before it enters the reward (the diagnostics read it)
            f = torch.cat([shaper.bonus(rows["obs"][j : j + BONUS_CHUNK_ROWS], rows["act"][j : j + BONUS_CHUNK_ROWS],
                                        rows["next_obs"][j : j + BONUS_CHUNK_ROWS], rows["term"][j : j + BONUS_CHUNK_ROWS])
                           for j in range(0, rows["obs"].shape[0], BONUS_CHUNK_ROWS)])
            if n is None:
                bonus = f.reshape(bonus.shape)
            else:
                bonus[..., n : n + 1, :] = f.reshape(*bonus.shape[:-2], 1, 1)
        shaped = r_env.clone()
        if any(active):
            shaped = r_env + self.eta * bonus.to(r_env.dtype)
        sums["rs/bonus_mean"] = float(bonus.mean())
        sums["rs/bonus_std"] = float(bonus.std())
        sums["rs/active"] = sum(active) / len(active)
        return shaped, bonus, dict(sums)


def _update(shaper: Shaper, rows: dict[str, torch.Tensor], batch_size: int, frames: int, diagnose: bool) -> dict:
    """One SAC step of a reward agent on ``batch_size`` rows drawn (with replacement) in its own stream."""
    m = rows["obs"].shape[0]
    idx = torch.randint(0, m, (batch_size,), generator=shaper.gen, device=shaper.gen.device).to(rows["obs"].device)
    obs, act = rows["obs"][idx], rows["act"][idx]
    with torch.no_grad():
        r_prop, _ = shaper.propose(obs, act)  # what the current reward agent proposes for (o, a)
    sample = TensorDict({"observation": obs, "action": act,
                         "next": TensorDict({"observation": rows["next_obs"][idx], "reward": rows["r"][idx],
                                             "terminated": rows["term"][idx]}, batch_size=[batch_size])},
                        batch_size=[batch_size])
    sample.set(R_AUX_KEY, r_prop)
    return shaper.shape(sample, None, frames, diagnose, next_action=rows["next_act"][idx])
