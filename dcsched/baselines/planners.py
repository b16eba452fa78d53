"""LP-based policies: the rounded perfect-foresight oracle, rolling-horizon MPC and greedy myopic.

All share one decision extraction from an LP solution: transfer fractions per (origin, DC,
class), the dominant step level per (DC, class) and the dominant frequency per DC (by job count),
because the env applies one step level per (DC, class) and one frequency per DC.
"""

from __future__ import annotations

import numpy as np
import torch

from dcsched.baselines.integer_bound import solve_window_integer
from dcsched.baselines.lp_solve import LPResult, block, solve_window, window_from_exo
from dcsched.baselines.lp_model import Window, level_coefficients
from dcsched.baselines.policy import Policy
from dcsched.envs.actions import quantise_shares
from dcsched.registry import POLICIES
from dcsched.sim.kernels import Decision


def plan_from_solution(res: LPResult, H: int, N: int, K: int, C: int, F: int, arrivals: np.ndarray,
                       exec_s: np.ndarray):
    """Per slot of the window: transfer [H, N, N, K], steps_idx [H, N, K], freq_idx [H, N].

    Frequency: the LP's dominant level per DC (by job count). Steps per (DC, class): the largest
    step count whose work, for all the jobs the LP placed there, stays within the work the LP
    planned for them (so rounding never exceeds the planned capacity); the smallest if none fits."""
    placed = np.zeros((H, N, N, K))
    for name in ("Yot",):
        x, (t, i, n, k, c) = block(res, name)
        np.add.at(placed, (t, i, n, k), x)
    for name in ("Lo", "Bo", "D"):
        x, (t, i, n, k) = block(res, name)
        np.add.at(placed, (t, i, n, k), x)
    level_jobs = np.zeros((H, N, K, C))
    x, (t, i, n, k, c) = block(res, "Yot")
    np.add.at(level_jobs, (t, n, k, c), x)
    for name in ("Lc", "Bc"):
        x, (t, n, k, c) = block(res, name)
        np.add.at(level_jobs, (t, n, k, c), x)
    total = arrivals[:, :, None, :]  # [H, i, 1, k]
    eye = np.broadcast_to(np.eye(N)[None, :, :, None], placed.shape)
    transfer = np.where(total > 1e-9, placed / np.maximum(total, 1e-300), eye)
    transfer = transfer / transfer.sum(axis=2, keepdims=True)
    S = C // F
    by_step = level_jobs.reshape(H, N, K, S, F)
    freq_idx = by_step.sum((2, 3)).argmax(-1)  # [H, N]
    idle = by_step.sum((2, 3, 4)) <= 1e-9
    freq_idx = np.where(idle, F - 1, freq_idx)
    e = exec_s.reshape(N, S, F)  # [N, S, F]
    planned_work = (level_jobs * exec_s[None, :, None, :]).sum(-1)  # [H, N, K]
    jobs = level_jobs.sum(-1)  # [H, N, K]
    e_at_f = np.take_along_axis(e[None].repeat(H, 0), freq_idx[:, :, None, None].repeat(S, 2), axis=3)[..., 0]  # [H, N, S]
    fits = jobs[..., None] * e_at_f[:, :, None, :] <= planned_work[..., None] * (1 + 1e-9) + 1e-9  # [H, N, K, S]
    steps_idx = np.where(fits.any(-1), S - 1 - np.argmax(fits[..., ::-1], axis=-1), 0)
    return transfer, steps_idx, freq_idx


def batch_plan_from_solution(res: LPResult, w: Window, N: int, C: int, F: int):
    """Per slot of the window, the batch decisions the LP planned (MODEL.md section 11):
    batch_transfer [H, N, N] (its routing shares of each origin's batch arrivals), batch steps
    [H, N] (the step level of most of the batch jobs the DC serves; 0 when it serves none) and the
    serve share [H, N] (the jobs it serves over those queued, this slot's arrivals included, by the
    LP's own queue; 1 when nothing is queued)."""
    H = w.batch_arrivals.shape[0]
    routed = np.zeros((H, N, N))
    x, (t, i, n) = block(res, "Rb")
    np.add.at(routed, (t, i, n), x)
    arrivals = w.batch_arrivals[:, :, None]
    transfer = np.where(arrivals > 1e-9, routed / np.maximum(arrivals, 1e-300), np.eye(N)[None])
    transfer = transfer / transfer.sum(-1, keepdims=True)
    served = np.zeros((H, N))
    level_jobs = np.zeros((H, N, C))
    x, (t, i, n, c) = block(res, "Yb")
    np.add.at(served, (t, n), x)
    np.add.at(level_jobs, (t, n, c), x)
    x, (t, n, c) = block(res, "Lbc")
    np.add.at(served, (t, n), x)
    np.add.at(level_jobs, (t, n, c), x)
    queued = np.zeros((H, N))  # after each slot, on time and late
    for name in ("Qon", "Qlate"):
        x, (t, i, n) = block(res, name)
        np.add.at(queued, (t, n), x)
    q0 = np.zeros((N, N, 1)) if w.batch_queue0 is None else w.batch_queue0
    before = np.concatenate([q0.sum((0, 2))[None], queued[:-1]]) + routed.sum(1)  # [H, n] offered this slot
    serve = np.where(before > 1e-9, np.clip(served / np.maximum(before, 1e-300), 0.0, 1.0), 1.0)
    steps = np.where(level_jobs.sum(-1) > 1e-9, level_jobs.reshape(H, N, -1, F).sum(-1).argmax(-1), 0)
    return transfer, steps, serve


TRANSFER_MODES = ("split", "onehot", "chunks")
# round: plan with the LP (levels mixed within a (DC, class) and a DC) and round (plan_from_solution);
# milp: plan with the env's own levels, one step level per (DC, class) and one frequency per DC
# (integer_bound.solve_window_integer), so nothing is rounded
LEVEL_MODES = ("round", "milp")
MILP_PLAN_GAP = 1e-3  # relative MILP gap of a levels=milp plan: within 0.1 % of the window's integer optimum


def quantised_rows(transfer: np.ndarray, chunks: int) -> np.ndarray:
    """``transfer`` [B, i, n, k] with each (origin, class) row's shares rounded to multiples of
    1/``chunks`` (largest remainder, :func:`dcsched.envs.actions.quantise_shares`): what the
    discrete encoding with ``env.transfer_chunks`` = chunks can express (1: the largest share's DC)."""
    counts = quantise_shares(torch.as_tensor(np.asarray(transfer)), chunks)
    return (counts.double() / chunks).numpy()


class PlanPolicy(Policy):
    """Applies a per-(env, slot) plan of decisions; subclasses fill the plan. ``transfer``:
    ``split`` applies the plan's shares; ``onehot`` sends each (origin, class) whole to the DC of
    its largest share; ``chunks`` rounds the shares to multiples of 1/``chunks`` (diagnostics: what
    a plan loses in the discrete encoding's action space with 1 or ``chunks`` transfer chunks)."""

    transfer = "split"
    chunks = 4
    family = "planner"
    day_separable = True  # one plan per env row (one day), from that day's data; forecast noise seeded by day and slot

    def _check_transfer(self, transfer: str, chunks: int) -> str:
        from dcsched.errors import ConfigError

        if transfer not in TRANSFER_MODES:
            raise ConfigError("command line", f"--policy {self.name}:transfer", f"'{transfer}' is not a transfer mode",
                              " | ".join(TRANSFER_MODES))
        if chunks < 1:
            raise ConfigError("command line", f"--policy {self.name}:chunks", f"{chunks} chunks", "an integer >= 1")
        self.chunks = int(chunks)
        return transfer

    def _decision(self, transfer, steps_idx, freq_idx, batch_transfer=None, batch_steps=None,
                  batch_serve=None) -> Decision:
        """The env's decision of planned arrays [B, ...]; batch fields None: the env's default."""
        d = self._interactive_decision(transfer, steps_idx, freq_idx)
        if batch_transfer is not None:
            dtype, dev = self.env.params.capacity_gpu_s.dtype, self.env.device
            d.batch_transfer = torch.as_tensor(batch_transfer, dtype=dtype, device=dev)
            d.batch_steps_idx = torch.as_tensor(batch_steps, dtype=torch.long, device=dev)
            d.batch_serve_frac = torch.as_tensor(batch_serve, dtype=dtype, device=dev)
        return d

    def _interactive_decision(self, transfer, steps_idx, freq_idx) -> Decision:
        p = self.env.params
        dev = self.env.device
        if self.transfer != "split":
            transfer = quantised_rows(transfer, 1 if self.transfer == "onehot" else self.chunks)
        return Decision(transfer=torch.as_tensor(transfer, dtype=p.capacity_gpu_s.dtype, device=dev),
                        steps_idx=torch.as_tensor(steps_idx, dtype=torch.long, device=dev),
                        freq_idx=torch.as_tensor(freq_idx, dtype=torch.long, device=dev),
                        battery_frac=torch.zeros(len(freq_idx), p.num_dcs, dtype=p.capacity_gpu_s.dtype, device=dev))


@POLICIES.register("lp_oracle", "rounded perfect-foresight LP: its dominant step/frequency and transfer shares replayed in the env")
class RoundedOracle(PlanPolicy):
    name = "lp_oracle"
    clairvoyant = True  # the whole day's exogenous data and arrivals

    def bind(self, env):
        super().bind(env)
        p64 = env.params.to(dtype=torch.float64)
        coef = level_coefficients(p64)
        N, K, C, F = p64.num_dcs, p64.num_classes, coef.exec_s.shape[1], len(p64.freq_levels)
        self.plans, self.bounds = [], []
        for d in range(len(env.exo.days)):
            w = window_from_exo(p64, env.exo, d)
            res = solve_window(p64, w, f"day index {int(env.exo.days[d])}", coef)
            self.bounds.append(res.value_usd)
            plan = plan_from_solution(res, w.arrivals.shape[0], N, K, C, F, w.arrivals, coef.exec_s)
            if w.batch_arrivals is not None:
                plan = plan + batch_plan_from_solution(res, w, N, C, F)
            self.plans.append(plan)
        return self

    def decide(self, td):
        days = td["day_idx"].cpu().numpy()
        t = td["t"].squeeze(-1).clamp(max=self.env.T - 1).cpu().numpy()
        parts = [np.stack([self.plans[d][j][s] for d, s in zip(days, t)]) for j in range(len(self.plans[0]))]
        return self._decision(*parts)


class RollingHorizon(PlanPolicy):
    """MPC: every ``every`` slots, solve the LP over the next ``horizon`` slots from the current
    state and observed arrivals, on a registered forecaster's forecasts
    (:mod:`dcsched.baselines.forecasters`: ``persistence`` by default, ``seasonal_naive``,
    ``noisy_oracle`` with ``forecast_error``, or the ``perfect`` oracle), and apply the plan's next
    decisions. ``levels`` (:data:`LEVEL_MODES`): ``round`` plans with the LP and rounds its mixed
    levels (the default, as before), ``milp`` plans in the env's own levels."""

    name = "mpc"

    def __init__(self, horizon: int = 12, every: int = 1, forecast: str = "persistence", seed: int = 0,
                 transfer: str = "split", chunks: int = 4, forecast_error: float = 0.1, levels: str = "round"):
        from dcsched.registry import FORECASTERS

        FORECASTERS.get(forecast)  # an unknown name fails here, with the allowed ones
        if levels not in LEVEL_MODES:
            from dcsched.errors import ConfigError

            raise ConfigError("command line", f"--policy {self.name}:levels", f"'{levels}' is not a level mode",
                              " | ".join(LEVEL_MODES))
        self.levels = levels
        self.horizon, self.every, self.forecast = int(horizon), int(every), forecast
        self.forecast_error, self.seed = float(forecast_error), int(seed)
        self.transfer = self._check_transfer(transfer, chunks)

    @property
    def clairvoyant(self) -> bool:
        """Perfect or oracle-noised forecasts of slots after the present one see the future; a
        one-slot window (greedy_myopic) reads only the present slot's observed arrivals."""
        from dcsched.registry import FORECASTERS

        return self.horizon > 1 and FORECASTERS.get(self.forecast).sees_the_future

    @property
    def exact_levels(self) -> bool:
        return self.levels == "milp"

    def bind(self, env):
        from dcsched.baselines.forecasters import make_forecaster

        if env.params.has_batch and self.levels == "milp":
            from dcsched.errors import ConfigError

            raise ConfigError("command line", f"--policy {self.name}:levels",
                              "the env's own levels are not planned for batch work yet (scenario.batch.share > 0)",
                              "round")
        super().bind(env)
        self.forecaster = make_forecaster(self.forecast, env, self.forecast_error, self.seed)
        self.p64 = env.params.to(dtype=torch.float64)
        self.coef = level_coefficients(self.p64)
        self.plans: dict[int, tuple] = {}
        return self

    def reset(self):
        self.plans = {}

    def _window(self, b, day, t, td) -> Window:
        p = self.p64
        H = min(self.horizon, self.env.T - t)
        queue0 = td["batch_queue"][b].detach().double().cpu().numpy() if p.has_batch else None
        w = window_from_exo(p, self.env.exo, day, t, H, batch_queue0=queue0)
        w.arrivals = w.arrivals.copy()
        w.arrivals[0] = td["arrivals"][b].detach().double().cpu().numpy()  # observed in the present slot
        if p.has_batch:
            w.batch_arrivals = w.batch_arrivals.copy()
            w.batch_arrivals[0] = td["batch_arrivals"][b].detach().double().cpu().numpy()
        w = self.forecaster.forecast(w, day, t)
        w.soc0 = td["soc"][b].detach().double().cpu().numpy()
        w.backlog_work0_gpu_s = td["backlog_work_gpu_s"][b].detach().double().cpu().numpy()
        w.backlog_energy0_j = td["backlog_energy_j"][b].detach().double().cpu().numpy()
        return w

    def decide(self, td):
        p = self.p64
        N, K, C, F = p.num_dcs, p.num_classes, self.coef.exec_s.shape[1], len(p.freq_levels)
        days = td["day_idx"].cpu().numpy()
        ts = td["t"].squeeze(-1).clamp(max=self.env.T - 1).cpu().numpy()
        out = []
        for b, (day, t) in enumerate(zip(days, ts)):
            plan = self.plans.get(b)
            if plan is None or t - plan[0] >= self.every or t - plan[0] >= len(plan[1][1]):
                w = self._window(b, int(day), int(t), td)
                what = f"{self.name} at day index {int(self.env.exo.days[day])}, slot {t}"
                res = (solve_window(p, w, what, self.coef) if self.levels == "round"
                       else solve_window_integer(p, w, what, self.coef, mip_rel_gap=MILP_PLAN_GAP))
                planned = plan_from_solution(res, w.arrivals.shape[0], N, K, C, F, w.arrivals, self.coef.exec_s)
                if p.has_batch:
                    planned = planned + batch_plan_from_solution(res, w, N, C, F)
                plan = (int(t), planned)
                self.plans[b] = plan
            j = int(t) - plan[0]
            out.append(tuple(x[j] for x in plan[1]))
        return self._decision(*(np.stack(z) for z in zip(*out)))


@POLICIES.register("mpc", "rolling-horizon LP, 12 slots ahead, re-solved every slot, persistence forecasts (mpc:horizon=H,every=k,forecast=perfect)")
class MPC(RollingHorizon):
    name = "mpc"


@POLICIES.register("greedy_myopic", "each slot, the best decision for that slot alone given current arrivals: its one-slot LP, "
                                    "levels rounded to the env's (greedy_myopic:levels=milp plans in the env's own levels, a one-slot MILP); "
                                    "greedy_myopic:transfer=onehot sends each (origin, class) whole to one DC, "
                                    "transfer=chunks,chunks=Q rounds its shares to multiples of 1/Q")
class GreedyMyopic(RollingHorizon):
    name = "greedy_myopic"

    def __init__(self, seed: int = 0, transfer: str = "split", chunks: int = 4, levels: str = "round"):
        super().__init__(horizon=1, every=1, forecast="perfect", transfer=transfer, chunks=chunks, levels=levels)
