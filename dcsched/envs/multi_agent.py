"""The multi-agent view of the batched env: one agent per data centre (service provider), issue #15.

The same kernels and the same central :class:`~dcsched.envs.dc_env.DCSchedEnv` step every slot; this
view only re-arranges what goes in and out, in TorchRL's multi-agent layout (an agent group
``"dc"`` whose tensors carry an agent dimension N after the batch dimension B):

- ``("dc", "observation")`` [B, N, obs_dim]: agent n sees only its own data centre and what the
  market makes public. Own: its arrivals per class, its backlog over its capacity, its battery
  SoC, its local price band, carbon intensity, temperature, PV and wind, the sine and cosine of its
  local hour, the jobs of each class the other providers handed over to it in the previous slot
  (the transfer offers it received; moves are simultaneous, so this slot's offers are only known
  after the slot), and which provider it is (one-hot: a shared network must tell the DCs apart).
  Public: every DC's electricity price (a public market price), the share of the day gone and a
  constant 1. Nothing of another provider's private state (arrivals, backlog, SoC,
  quality curve, energy per step) enters it; :func:`agent_feature_names` names every feature with
  its owner and ``tests/test_multi_agent.py`` checks both the names and the values.
- ``("dc", "action")`` [B, N, act_dim] integer levels: agent n's own part of the factorised
  discrete schedule (``env.action_encoding: discrete``): a destination for each class (x chunks)
  of its own arrivals, a step level per class, its GPU frequency level and, with
  ``energy.control: learned``, its battery level. Every agent has the same action layout, so the
  group stacks. Transfers into a DC that is full or offline are not an error: the kernels route a
  transfer over a down link back to its origin, and work beyond a DC's capacity waits in its
  backlog or is dropped at its deadline, as in the central env.
- ``("dc", "reward")`` [B, N, 1]: the team reward (the central env's reward, by its reward mode),
  the same for every agent; ``("dc", "own_utility_usd")`` [B, N, 1]: the utility booked at agent n's
  DC this slot (revenue of the jobs it served minus its energy, transfer and penalty costs).
- ``"state"`` [B, state_dim]: the central env's observation of the whole system, for centralised
  critics (MAPPO/MASAC style training); decentralised actors must not read it.
- The root also carries the simulator's own memory (day, slot, SoC, backlogs, arrivals), as the
  central env does (the env is stateless and reads it back at the next step), and the slot's
  ``"outcome"`` report for logging and evaluation. Actors read ``("dc", "observation")`` only.

Done flags are shared (one day per episode for every agent): at the root and, expanded, under
``("dc", "done")`` and ``("dc", "terminated")`` so that GAE sees them with the reward's shape.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs import EnvBase

from dcsched.envs.actions import BATTERY_LEVELS
from dcsched.envs.dc_env import EXO_OBS_KEYS, STATE_KEYS, DCSchedEnv

GROUP = "dc"
ACTION_KEY = (GROUP, "action")
PUBLIC_EXO_KEYS = ("price_usd_per_mwh",)  # market prices every provider sees for every DC
# the root entries the central env reads back at its next step (its state in the tensordict)
MEMORY_KEYS = ("arrivals", "day_idx", "t", "episode_utility_usd", *STATE_KEYS)


def agent_feature_names(num_dcs: int, num_classes: int) -> list[tuple[str, str]]:
    """(owner, feature) of every entry of one agent's observation, in order. owner is ``"self"``
    (the agent's own DC), ``"public"`` (common knowledge) or ``"dc{j}"`` (another provider's data:
    only public quantities may appear with such an owner)."""
    own = [("self", f"arrivals_class{k}") for k in range(num_classes)]
    own += [("self", "backlog_over_capacity"), ("self", "soc")]
    own += [("self", key) for key in EXO_OBS_KEYS]
    own += [("self", "sin_local_hour"), ("self", "cos_local_hour")]
    own += [("self", f"received_last_slot_class{k}") for k in range(num_classes)]  # jobs handed over to it
    own += [("self", f"is_dc{j}") for j in range(num_dcs)]  # which provider it is (one-hot)
    public = [(f"dc{j}", key) for key in PUBLIC_EXO_KEYS for j in range(num_dcs)]
    public += [("public", "day_fraction"), ("public", "bias")]
    return own + public


def received_from_others(outcome_transfer: torch.Tensor, outcome_arrivals: torch.Tensor) -> torch.Tensor:
    """[*, N, K] jobs that the *other* providers sent to each DC in a slot (its own kept jobs excluded).

    Args:
        outcome_transfer: [*, N(origin), N(dest), K] the slot's routed transfer shares (outcome "transfer").
        outcome_arrivals: [*, N(origin), K] the slot's arrivals in jobs (outcome "arrivals").
    """
    jobs = outcome_transfer * outcome_arrivals.unsqueeze(-2)  # [*, i, n, k]
    N = jobs.shape[-2]
    off_diagonal = 1.0 - torch.eye(N, dtype=jobs.dtype, device=jobs.device).unsqueeze(-1)  # [i, n, 1]
    return (jobs * off_diagonal).sum(-3)


def agent_action_layout(central: DCSchedEnv) -> tuple[torch.Tensor, list[int]]:
    """index [N, act_dim] into the central discrete action and the per-agent nvec [act_dim].

    The central layout (:func:`dcsched.envs.actions.discrete_nvec`) is origin-major blocks:
    destinations [N, K, Q], step levels [N, K], frequency [N], battery [N]; agent n owns row n of
    each block."""
    p = central.params
    N, K, Q = p.num_dcs, p.num_classes, central.transfer_chunks
    S, F = len(p.steps_grid), len(p.freq_levels)
    n = torch.arange(N).unsqueeze(-1)
    blocks = [n * K * Q + torch.arange(K * Q)]  # destinations of agent n's own arrivals
    o = N * K * Q
    blocks.append(o + n * K + torch.arange(K))  # its step level per class
    o += N * K
    blocks.append(o + n)  # its frequency level
    o += N
    nvec = [N] * (K * Q) + [S] * K + [F]
    if p.learned_energy:
        blocks.append(o + n)  # its battery level
        nvec.append(len(BATTERY_LEVELS))
    return torch.cat(blocks, dim=-1), nvec


class MultiAgentDCSchedEnv(EnvBase):
    """One agent per DC over a central :class:`DCSchedEnv` built with the discrete encoding.

    Args:
        central: the batched env (``action_encoding="discrete"``, ``report_outcome=True``); it keeps
            doing all the physics, the reward and the arrivals.
    """

    batch_locked = True

    def __init__(self, central: DCSchedEnv):
        if central.action_encoding != "discrete":
            raise ValueError("the multi-agent view needs env.action_encoding=discrete (got "
                             f"'{central.action_encoding}')")
        if not central.report_outcome:
            raise ValueError("the multi-agent view needs the central env's outcome (report_outcome=True)")
        if central.params.has_batch:
            from dcsched.errors import ConfigError

            raise ConfigError("scenario", "scenario.batch.share", "the per-provider (multi-agent) view does not split "
                              "the batch class's actions yet; use a single-agent recipe on a scenario with batch work", "0")
        super().__init__(batch_size=central.batch_size, device=central.device)
        self.central = central
        self.params = central.params
        self.T = central.T
        self.n_agents = central.params.num_dcs
        index, nvec = agent_action_layout(central)
        self.register_buffer("_action_index", index.to(central.device))
        self.agent_nvec = nvec
        self.agent_obs_dim = len(agent_feature_names(self.n_agents, central.params.num_classes))
        self._make_specs()

    # ------------------------------------------------------------------ specs
    def _make_specs(self) -> None:
        B, N, dev = self.batch_size, self.n_agents, self.device
        c = self.central
        group = (*B, N)
        memory = {k: c.observation_spec[k].clone() for k in MEMORY_KEYS}
        agents = Composite({"observation": Unbounded(shape=(*group, self.agent_obs_dim), dtype=torch.float32, device=dev),
                            "own_utility_usd": Unbounded(shape=(*group, 1), dtype=c.dtype_, device=dev)},
                           shape=group, device=dev)
        self.observation_spec = Composite(
            {GROUP: agents, "state": c.observation_spec["observation"].clone(), "outcome": c.observation_spec["outcome"].clone(),
             **memory}, shape=B, device=dev)
        self.action_spec = Composite(
            {GROUP: Composite({"action": MultiCategorical(nvec=self.agent_nvec, shape=(*group, len(self.agent_nvec)),
                                                          dtype=torch.int64, device=dev)}, shape=group, device=dev)},
            shape=B, device=dev)
        self.reward_spec = Composite(
            {GROUP: Composite({"reward": Unbounded(shape=(*group, 1), dtype=torch.float32, device=dev)},
                              shape=group, device=dev)}, shape=B, device=dev)
        flag = lambda shape: Categorical(2, shape=(*shape, 1), dtype=torch.bool, device=dev)  # noqa: E731
        self.done_spec = Composite(
            {"done": flag(B), "terminated": flag(B), "truncated": flag(B),
             GROUP: Composite({"done": flag(group), "terminated": flag(group), "truncated": flag(group)},
                              shape=group, device=dev)}, shape=B, device=dev)

    # ------------------------------------------------------------------ the view
    def central_action(self, agent_action: torch.Tensor) -> torch.Tensor:
        """[*, N, act_dim] per-agent levels -> [*, len(discrete_nvec)] the central discrete action."""
        batch = agent_action.shape[:-2]
        out = torch.empty(*batch, self._action_index.numel(), dtype=agent_action.dtype, device=agent_action.device)
        out[..., self._action_index.reshape(-1)] = agent_action.reshape(*batch, -1)
        return out

    def agent_observation(self, arrivals: torch.Tensor, state: dict[str, torch.Tensor], day_idx: torch.Tensor,
                          t: torch.Tensor, received: torch.Tensor) -> torch.Tensor:
        """[B, N, obs_dim] float32, in :func:`agent_feature_names` order. Scaled with the central
        env's fixed statistics (the training split's), feature by feature.

        Args:
            arrivals: [B, N, K] this slot's arrivals (jobs); state: the central env's STATE_KEYS;
            day_idx: [B]; t: [B, 1] slot index; received: [B, N, K] jobs the other providers sent to
            each DC in the previous slot (:func:`received_from_others`; zeros at the first slot).
        """
        c, p = self.central, self.params
        B, N, K = arrivals.shape
        exo = c._exo_slot(day_idx, t.squeeze(-1))
        mean, std = c._obs_mean, c._obs_std
        scaled_arrivals = (arrivals.to(torch.float32) - mean[: N * K].reshape(N, K)) / std[: N * K].reshape(N, K)
        own = [scaled_arrivals, (state["backlog_work_gpu_s"] / p.capacity_gpu_s).unsqueeze(-1).to(torch.float32),
               state["soc"].unsqueeze(-1).to(torch.float32)]
        o = N * K + 2 * N
        scaled = {}
        for key in EXO_OBS_KEYS:
            scaled[key] = (exo[key].to(torch.float32) - mean[o : o + N]) / std[o : o + N]  # [B, N]
            own.append(scaled[key].unsqueeze(-1))
            o += N
        hour = exo["local_hour"].to(torch.float32) * (2 * math.pi / 24.0)
        own += [torch.sin(hour).unsqueeze(-1), torch.cos(hour).unsqueeze(-1)]
        own.append(received.to(torch.float32) / std[: N * K].reshape(N, K))  # in its own arrivals' std
        own.append(torch.eye(N, dtype=torch.float32, device=arrivals.device).expand(B, N, N))  # agent identity
        frac = t.to(torch.float32) / self.T  # [B, 1]
        public = [scaled[key] for key in PUBLIC_EXO_KEYS] + [frac, torch.ones_like(frac)]
        public = torch.cat(public, dim=-1).unsqueeze(-2).expand(B, N, -1)
        return torch.cat([*own, public], dim=-1)

    def observe(self, td: TensorDictBase) -> torch.Tensor:
        """[B, N, obs_dim]: every agent's observation of a central env's tensordict (its memory keys
        and the previous slot's ``"outcome"``)."""
        received = received_from_others(td["outcome", "transfer"], td["outcome", "arrivals"])
        return self.agent_observation(td["arrivals"], {k: td[k] for k in STATE_KEYS}, td["day_idx"], td["t"], received)

    def _wrap(self, td: TensorDictBase, with_reward: bool) -> TensorDict:
        B, N = self.batch_size[0], self.n_agents
        done = td["done"]
        agents = {"observation": self.observe(td),
                  "own_utility_usd": td["outcome", "utility_usd"].unsqueeze(-1),
                  **{k: td[k].unsqueeze(-2).expand(B, N, 1).clone() for k in ("done", "terminated", "truncated")}}
        if with_reward:
            agents["reward"] = td["reward"].unsqueeze(-2).expand(B, N, 1).clone()
        out = {k: td[k] for k in MEMORY_KEYS}
        out.update(state=td["observation"], outcome=td["outcome"], done=done, terminated=td["terminated"], truncated=td["truncated"])
        out[GROUP] = TensorDict(agents, batch_size=[B, N], device=self.device)
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    # ------------------------------------------------------------------ EnvBase API
    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        return self._wrap(self.central._reset(None), with_reward=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        inner = TensorDict({k: tensordict[k] for k in MEMORY_KEYS}, batch_size=self.batch_size, device=self.device)
        inner["action"] = self.central_action(tensordict[GROUP, "action"])
        return self._wrap(self.central._step(inner), with_reward=True)

    def _set_seed(self, seed: int | None) -> None:
        self.central._set_seed(seed)

    @property
    def rng(self) -> torch.Generator:
        """The central env's generator (day draws and Poisson arrivals)."""
        return self.central.rng
