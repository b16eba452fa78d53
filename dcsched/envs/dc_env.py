"""TorchRL environment over B days in parallel (batch_size=[B]); a thin layer over the kernels.

State lives in the tensordict (stateless style): day index, slot, SoC, backlog and the
current slot's arrivals. Each step decodes the action, runs :func:`dcsched.sim.kernels.step`,
draws the next slot's arrivals (Poisson, or their mean in deterministic mode), builds the
observation and applies the reward mode. The per-DC outcome of the slot is reported under
``("next", "outcome", KEY)``.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, MultiCategorical, Unbounded
from torchrl.envs import EnvBase

from dcsched.data.exogenous import Exogenous
from dcsched.envs.actions import continuous_dim, decode_continuous, decode_discrete, discrete_nvec
from dcsched.envs.headroom import STEPS_MODES, project_steps
from dcsched.sim import kernels
from dcsched.sim.params import SimParams

EXO_OBS_KEYS = (
    "price_usd_per_mwh", "price_low_usd_per_mwh", "price_high_usd_per_mwh", "carbon_g_per_kwh",
    "temp_c", "pv_kw_per_kwp", "wind_kw_per_kw",
)
STATE_KEYS = ("soc", "backlog_work_gpu_s", "backlog_energy_j", "backlog_jobs")
# outcome entries reported per step: name -> trailing shape as a function of (N, K)
OUTCOME_SHAPES = {
    "arrivals": lambda N, K: (N, K), "served": lambda N, K: (N, K), "on_time": lambda N, K: (N, K),
    "late": lambda N, K: (N, K), "dropped": lambda N, K: (N,), "backlog_jobs": lambda N, K: (N,),
    "steps": lambda N, K: (N, K), "freq": lambda N, K: (N,), "transfer": lambda N, K: (N, N, K),
    **{k: (lambda N, K: (N,)) for k in (
        "it_kw", "cooling_kw", "charge_kw", "discharge_kw", "pv_kw", "wind_kw", "curtail_kw",
        "grid_buy_kw", "grid_sell_kw", "soc", "revenue_usd", "energy_cost_usd", "transfer_cost_usd",
        "penalty_usd", "degradation_usd", "utility_usd", "carbon_kg", "carbon_cost_usd")},
    "violation_share": lambda N, K: (),
}
BATCH_OUTCOME_SHAPES = {  # with batch work (MODEL.md section 11): per serving DC, arrivals per origin
    k: (lambda N, K: (N,)) for k in ("batch_arrivals", "batch_on_time", "batch_late", "batch_dropped",
                                     "batch_queue_jobs", "batch_steps")}
REWARD_MODES = ("dense", "sparse", "episodic")


class DCSchedEnv(EnvBase):
    """Batched AIGC scheduling + energy environment.

    Args:
        params: scenario parameters (on the env's device and dtype).
        exo: exogenous tensors of the days this env may play ([D, T, N, ...]).
        num_envs: B.
        reward_mode: dense | sparse | episodic.
        action_encoding: continuous | discrete.
        transfer_chunks: discrete encoding only: each (origin, class) row is split into this many
            equal chunks, each with its own destination (1: the row goes whole to one DC).
        stochastic: Poisson arrivals (True) or their expectation (False).
        sequential_days: env b always plays day b of ``exo`` (evaluation); otherwise each reset
            draws a random day (training).
        observe_faults: append the fault state (the dc_outage and link_down stresses) to the
            observation: each DC's share of GPUs up now and in the next slot, and each link's
            state (origin != dest, row-major), 2N + N(N-1) features in [0, 1], all 1 without faults.
    """

    batch_locked = True

    def __init__(
        self, params: SimParams, exo: Exogenous, num_envs: int = 1, reward_mode: str = "sparse",
        violation_threshold: float = 0.05, action_encoding: str = "continuous",
        transfer_logit_scale: float = 5.0, transfer_min_share: float = 1e-3, transfer_chunks: int = 1,
        stochastic: bool = True,
        normalize_obs: bool = True, sequential_days: bool = False, report_outcome: bool = True,
        seed: int = 0, device: str | torch.device = "cpu", obs_stats_exo: Exogenous | None = None,
        observe_faults: bool = False, steps_mode: str = "absolute",
    ):
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode '{reward_mode}' not in {REWARD_MODES}")
        if action_encoding not in ("continuous", "discrete"):
            raise ValueError(f"action_encoding '{action_encoding}' not in (continuous, discrete)")
        if steps_mode not in STEPS_MODES:
            raise ValueError(f"steps_mode '{steps_mode}' not in {STEPS_MODES}")
        if sequential_days and num_envs != len(exo.days):
            raise ValueError(f"sequential_days needs num_envs == number of days ({len(exo.days)})")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.params = params
        self.exo = exo
        self.dtype_ = params.capacity_gpu_s.dtype
        self.reward_mode = reward_mode
        self.violation_threshold = violation_threshold
        self.action_encoding = action_encoding
        self.transfer_logit_scale = transfer_logit_scale
        self.transfer_min_share = transfer_min_share
        self.transfer_chunks = int(transfer_chunks)
        discrete_nvec(params, self.transfer_chunks)  # refuses chunks < 1
        self.stochastic = stochastic
        self.sequential_days = sequential_days
        self.report_outcome = report_outcome
        self.rng = torch.Generator(device=self.device).manual_seed(int(seed))
        self.T = params.slots_per_day
        N, K = params.num_dcs, params.num_classes
        self.observe_faults = bool(observe_faults)
        self.steps_mode = steps_mode
        self.has_batch = params.has_batch
        batch_obs = N * (1 + params.batch_obs_buckets) if self.has_batch else 0  # arrivals, queue by age bucket
        if self.has_batch:  # the observation's age slices of the queue: [start, end) pairs
            edges = torch.linspace(0, params.batch_horizon_slots, params.batch_obs_buckets + 1).round().long().tolist()
            self._bucket_edges = list(zip(edges[:-1], edges[1:]))
        self.obs_dim = (N * (K + 2 + len(EXO_OBS_KEYS) + 2) + 2 + (2 * N + N * (N - 1) if observe_faults else 0)
                        + batch_obs)
        self._build_normaliser(normalize_obs, obs_stats_exo or exo)
        self._make_specs()

    # ------------------------------------------------------------------ specs
    def _make_specs(self) -> None:
        B = self.batch_size
        N, K = self.params.num_dcs, self.params.num_classes
        f = self.dtype_
        state = {k: Unbounded(shape=(*B, N), dtype=f, device=self.device) for k in STATE_KEYS}
        if self.has_batch:
            state["batch_queue"] = Unbounded(shape=(*B, N, N, self.params.batch_horizon_slots), dtype=f, device=self.device)
            state["batch_arrivals"] = Unbounded(shape=(*B, N), dtype=f, device=self.device)
        obs = dict(
            observation=Unbounded(shape=(*B, self.obs_dim), dtype=torch.float32, device=self.device),
            arrivals=Unbounded(shape=(*B, N, K), dtype=f, device=self.device),
            day_idx=Unbounded(shape=(*B,), dtype=torch.int64, device=self.device),
            t=Bounded(0, self.T, shape=(*B, 1), dtype=torch.int64, device=self.device),
            episode_utility_usd=Unbounded(shape=(*B, 1), dtype=f, device=self.device),
            **state,
        )
        if self.report_outcome:
            obs["outcome"] = Composite(
                {k: Unbounded(shape=(*B, *fn(N, K)), dtype=f, device=self.device) for k, fn in self._outcome_shapes().items()},
                shape=B, device=self.device)
        self.observation_spec = Composite(obs, shape=B, device=self.device)
        if self.action_encoding == "continuous":
            self.action_spec = Bounded(-1.0, 1.0, shape=(*B, continuous_dim(self.params)),
                                       dtype=torch.float32, device=self.device)
        else:
            nvec = discrete_nvec(self.params, self.transfer_chunks)
            self.action_spec = MultiCategorical(nvec=nvec, shape=(*B, len(nvec)), dtype=torch.int64, device=self.device)
        self.reward_spec = Unbounded(shape=(*B, 1), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(
            {k: Categorical(2, shape=(*B, 1), dtype=torch.bool, device=self.device)
             for k in ("done", "terminated", "truncated")}, shape=B, device=self.device)

    def _outcome_shapes(self) -> dict:
        return {**OUTCOME_SHAPES, **(BATCH_OUTCOME_SHAPES if self.has_batch else {})}

    def _build_normaliser(self, normalize: bool, stats_exo: Exogenous) -> None:
        """Fixed per-feature mean/std of the exogenous inputs (no running statistics). ``make_env``
        always passes the training split's data, so train and test envs normalise identically."""
        N, K = self.params.num_dcs, self.params.num_classes
        mean = torch.zeros(self.obs_dim, dtype=torch.float32, device=self.device)
        std = torch.ones(self.obs_dim, dtype=torch.float32, device=self.device)
        if normalize:
            rate = stats_exo.arrival_rate
            m = rate.mean(dim=(0, 1)).reshape(-1)  # [N*K]
            s = rate.std(dim=(0, 1)).reshape(-1).clamp(min=1e-6)
            mean[: N * K], std[: N * K] = m.float(), s.float()
            o = N * K
            # backlog / capacity and soc: already in [0, 1]
            o += 2 * N
            for key in EXO_OBS_KEYS:
                x = getattr(stats_exo, key)
                mean[o : o + N] = x.mean(dim=(0, 1)).float()
                std[o : o + N] = x.std(dim=(0, 1)).clamp(min=1e-6).float()
                o += N
            if self.has_batch:  # the batch block is the observation's last: arrivals, then the queue by bucket
                rate = stats_exo.batch_arrival_rate
                b0 = self.obs_dim - N * (1 + self.params.batch_obs_buckets)
                mean[b0 : b0 + N] = rate.mean(dim=(0, 1)).float()
                std[b0 : b0 + N] = rate.std(dim=(0, 1)).clamp(min=1e-6).float()
                # a bucket's queue in units of the mean arrivals over the bucket's ages
                per_bucket = self.params.batch_horizon_slots / self.params.batch_obs_buckets
                std[b0 + N :] = (rate.sum(-1).mean() * per_bucket).clamp(min=1e-6).float()
        self.register_buffer("_obs_mean", mean)
        self.register_buffer("_obs_std", std)

    # ------------------------------------------------------------------ helpers
    def _exo_slot(self, day_idx: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        tt = t.clamp(max=self.T - 1)
        out = {k: getattr(self.exo, k)[day_idx, tt] for k in (*EXO_OBS_KEYS, "local_hour")}
        return {**out, **self.exo.faults_at(day_idx, tt)}  # faults (dc_outage, link_down), if any

    def _draw_arrivals(self, day_idx: torch.Tensor, t: torch.Tensor, key: str = "arrival_rate") -> torch.Tensor:
        """This slot's arrivals: Poisson draws, or their means in deterministic mode. ``key``:
        arrival_rate ([B, N, K], interactive) or batch_arrival_rate ([B, N])."""
        rate = getattr(self.exo, key)[day_idx, t.clamp(max=self.T - 1)]
        if self.stochastic:
            return torch.poisson(rate, generator=self.rng)
        return rate.clone()

    def _observation(self, arrivals, state: dict[str, torch.Tensor], exo: dict[str, torch.Tensor], t) -> torch.Tensor:
        p = self.params
        B = arrivals.shape[0]
        hour = exo["local_hour"] * (2 * math.pi / 24.0)
        parts = [arrivals.reshape(B, -1), state["backlog_work_gpu_s"] / p.capacity_gpu_s, state["soc"]]
        parts += [exo[k] for k in EXO_OBS_KEYS]
        parts += [torch.sin(hour), torch.cos(hour)]
        raw = torch.cat([x.to(torch.float32) for x in parts], dim=-1)
        obs = (raw - self._obs_mean[: raw.shape[-1]]) / self._obs_std[: raw.shape[-1]]
        frac = t.to(torch.float32) / self.T
        if self.observe_faults:
            obs = torch.cat([obs, self._fault_features(exo, B)], dim=-1)
        obs = torch.cat([obs, frac, torch.ones_like(frac)], dim=-1)
        if self.has_batch:
            raw_b = torch.cat([state["batch_arrivals"], self._queue_buckets(state["batch_queue"])], dim=-1).to(torch.float32)
            b0 = self.obs_dim - raw_b.shape[-1]
            obs = torch.cat([obs, (raw_b - self._obs_mean[b0:]) / self._obs_std[b0:]], dim=-1)
        return obs

    def _queue_buckets(self, queue: torch.Tensor) -> torch.Tensor:
        """[B, i, n, A] batch queue -> [B, n * buckets] jobs per serving DC summed over origins and
        over equal slices of the ages (the last bucket holds the oldest work)."""
        per_dc = queue.sum(-3)  # [B, n, A]
        parts = [per_dc[..., a:b].sum(-1) for a, b in self._bucket_edges]
        return torch.stack(parts, dim=-1).reshape(per_dc.shape[0], -1)

    def _fault_features(self, exo: dict[str, torch.Tensor], B: int) -> torch.Tensor:
        """[B, 2N + N(N-1)] float32: GPUs up now, next slot, and the off-diagonal links (1 = up)."""
        N = self.params.num_dcs
        if "capacity_frac" not in exo:
            return torch.ones(B, 2 * N + N * (N - 1), dtype=torch.float32, device=self.device)
        off_diagonal = ~torch.eye(N, dtype=torch.bool, device=self.device)
        return torch.cat([exo["capacity_frac"], exo["capacity_frac_next"], exo["link_up"][:, off_diagonal]],
                         dim=-1).to(torch.float32)

    def decode(self, action: torch.Tensor) -> kernels.Decision:
        if self.action_encoding == "continuous":
            return decode_continuous(self.params, action, self.transfer_logit_scale, self.transfer_min_share)
        return decode_discrete(self.params, action, self.transfer_chunks)

    # ------------------------------------------------------------------ EnvBase API
    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        B = self.batch_size[0]
        D = len(self.exo.days)
        if self.sequential_days:
            day_idx = torch.arange(B, device=self.device)
        else:
            day_idx = torch.randint(0, D, (B,), generator=self.rng, device=self.device)
        t = torch.zeros(B, 1, dtype=torch.int64, device=self.device)
        st = kernels.initial_state(self.params, (B,))
        state = {k: getattr(st, k) for k in STATE_KEYS}
        arrivals = self._draw_arrivals(day_idx, t.squeeze(-1))
        if self.has_batch:
            state["batch_queue"] = st.batch_queue
            state["batch_arrivals"] = self._draw_arrivals(day_idx, t.squeeze(-1), "batch_arrival_rate")
        exo = self._exo_slot(day_idx, t.squeeze(-1))
        out = {
            "observation": self._observation(arrivals, state, exo, t),
            "arrivals": arrivals, "day_idx": day_idx, "t": t,
            "episode_utility_usd": torch.zeros(B, 1, dtype=self.dtype_, device=self.device),
            **state,
        }
        if self.report_outcome:
            N, K = self.params.num_dcs, self.params.num_classes
            out["outcome"] = TensorDict(
                {k: torch.zeros(B, *fn(N, K), dtype=self.dtype_, device=self.device)
                 for k, fn in self._outcome_shapes().items()},
                batch_size=[B], device=self.device)
        flags = torch.zeros(B, 1, dtype=torch.bool, device=self.device)
        out.update(done=flags, terminated=flags.clone(), truncated=flags.clone())
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        p = self.params
        day_idx = tensordict["day_idx"]
        t = tensordict["t"]
        t_flat = t.squeeze(-1)
        state = kernels.SimState(**{k: tensordict[k] for k in STATE_KEYS},
                                 batch_queue=tensordict["batch_queue"] if self.has_batch else None)
        arrivals = tensordict["arrivals"]
        decision = self.decode(tensordict["action"])
        exo = self._exo_slot(day_idx, t_flat)
        if self.has_batch:
            exo["batch_arrivals"] = tensordict["batch_arrivals"]
            exo["last_slot"] = t_flat == self.T - 1
        if self.steps_mode == "headroom":  # the step component is a margin below the slot's headroom level
            decision = project_steps(p, decision, decision.steps_idx, arrivals, state.backlog_work_gpu_s, exo)
        next_state, outcome = kernels.step(p, state, arrivals, decision, exo)
        utility = outcome["utility_usd"].sum(-1, keepdim=True)
        violation = kernels.violation_share(outcome)
        episode_utility = tensordict["episode_utility_usd"] + utility
        t_next = t + 1
        done = t_next >= self.T
        dense = utility / p.u_scale_usd
        if self.reward_mode == "dense":
            reward = dense
        elif self.reward_mode == "sparse":
            reward = torch.where(violation.unsqueeze(-1) > self.violation_threshold, -torch.ones_like(dense), dense)
        else:
            reward = torch.where(done, episode_utility / (self.T * p.u_scale_usd), torch.zeros_like(dense))
        next_arrivals = self._draw_arrivals(day_idx, t_next.squeeze(-1))
        next_arrivals = torch.where(done.unsqueeze(-1), torch.zeros_like(next_arrivals), next_arrivals)
        ns = {k: getattr(next_state, k) for k in STATE_KEYS}
        if self.has_batch:
            ns["batch_queue"] = next_state.batch_queue
            nb = self._draw_arrivals(day_idx, t_next.squeeze(-1), "batch_arrival_rate")
            ns["batch_arrivals"] = torch.where(done, torch.zeros_like(nb), nb)
        exo_next = self._exo_slot(day_idx, t_next.squeeze(-1))
        out = {
            "observation": self._observation(next_arrivals, ns, exo_next, t_next),
            "arrivals": next_arrivals, "day_idx": day_idx, "t": t_next,
            "episode_utility_usd": episode_utility, **ns,
            "reward": reward.to(torch.float32),
            "done": done, "terminated": done.clone(), "truncated": torch.zeros_like(done),
        }
        if self.report_outcome:
            rep = {k: outcome[k] for k in self._outcome_shapes() if k != "violation_share"}
            rep["violation_share"] = violation
            out["outcome"] = TensorDict(rep, batch_size=self.batch_size, device=self.device)
        return TensorDict(out, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        self.rng.manual_seed(int(seed or 0))


def make_env(scenario_cfg, env_cfg=None, days: list[int] | None = None, num_envs: int | None = None,
             sequential_days: bool = False, stochastic: bool | None = None, seed: int = 0,
             report_outcome: bool = True) -> DCSchedEnv:
    """Build params, exogenous data and the env from configs (the registry's scenario path)."""
    from dcsched.config import EnvConfig
    from dcsched.data.exogenous import load_exogenous, split_days
    from dcsched.sim.params import build_params

    env_cfg = env_cfg or EnvConfig()
    dtype = torch.float64 if env_cfg.dtype == "float64" else torch.float32
    days = days if days is not None else split_days(scenario_cfg, env_cfg.split)
    params = build_params(scenario_cfg, dtype=dtype, device=env_cfg.device)
    exo = load_exogenous(scenario_cfg, days, dtype=dtype, device=env_cfg.device)
    stats_exo = load_exogenous(scenario_cfg, split_days(scenario_cfg, "train"), dtype=dtype, device=env_cfg.device,
                               stressed=False)  # a stress changes the world, not the observation scaling
    env = DCSchedEnv(
        params, exo, num_envs=num_envs or (len(days) if sequential_days else env_cfg.num_envs),
        reward_mode=env_cfg.reward_mode, violation_threshold=env_cfg.violation_threshold,
        action_encoding=env_cfg.action_encoding, transfer_logit_scale=env_cfg.transfer_logit_scale,
        transfer_min_share=env_cfg.transfer_min_share, transfer_chunks=env_cfg.transfer_chunks,
        stochastic=scenario_cfg.arrivals.stochastic if stochastic is None else stochastic,
        normalize_obs=env_cfg.normalize_obs, sequential_days=sequential_days,
        report_outcome=report_outcome, seed=seed, device=env_cfg.device, obs_stats_exo=stats_exo,
        observe_faults=env_cfg.observe_faults, steps_mode=env_cfg.steps_mode,
    )
    env.scenario_cfg = scenario_cfg  # for policies that read other days (the seasonal-naive forecaster)
    return env
