"""The practitioner's rule for deferrable batch work (MODEL.md section 11, issue #42 item 3).

``defer_to_cheap_hours``: the interactive classes as greedy_myopic plans them (each slot's own LP),
and each DC's batch queue served in the cheapest forecast hours before the work's deadline:
- the DC serves its whole queue (oldest first) when the present slot's price is at or below the
  ``quantile`` of its price forecast over the next D_b slots (the deadline's reach);
- otherwise it serves only the work that is due: of age D_b - 1 or older (the last slot it can be
  on time, and late work).
New batch work stays at its origin and runs at the step level greedy_myopic gives the DC's
longest-deadline class. Forecasts come from a registered forecaster (``seasonal_naive``, the same
hours of yesterday, by default; ``perfect`` makes the rule clairvoyant and says so).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dcsched.baselines.lp_solve import window_from_exo
from dcsched.baselines.planners import GreedyMyopic
from dcsched.registry import POLICIES


@POLICIES.register("defer_to_cheap_hours", "batch work served in the cheapest forecast hours before its deadline "
                                           "(share quantile=0.3 of the D_b slots ahead, forecast=seasonal_naive), "
                                           "otherwise only the work due; interactive classes as greedy_myopic")
class DeferToCheapHours(GreedyMyopic):
    name = "defer_to_cheap_hours"
    family = "rule"

    def __init__(self, seed: int = 0, quantile: float = 0.3, forecast: str = "seasonal_naive", levels: str = "round"):
        super().__init__(seed=seed, levels=levels)
        if not 0.0 <= float(quantile) <= 1.0:
            from dcsched.errors import ConfigError

            raise ConfigError("command line", f"--policy {self.name}:quantile", f"{quantile} is not a share", "[0, 1]")
        from dcsched.registry import FORECASTERS

        FORECASTERS.get(forecast)  # an unknown name fails here, with the allowed ones
        self.quantile, self.price_forecast = float(quantile), forecast

    @property
    def clairvoyant(self) -> bool:
        from dcsched.registry import FORECASTERS

        return FORECASTERS.get(self.price_forecast).sees_the_future

    def bind(self, env):
        from dcsched.baselines.forecasters import make_forecaster
        from dcsched.errors import ConfigError

        if not env.params.has_batch:
            raise ConfigError("scenario", "scenario.batch.share", f"policy '{self.name}' schedules batch work; "
                              "this scenario has none", "a share in (0, 1]")
        super().bind(env)
        self.price_forecaster = make_forecaster(self.price_forecast, env, seed=self.seed)
        return self

    def cheap_now(self, day: int, t: int) -> np.ndarray:
        """[N] bool: the present price is at or below the quantile of the forecast over the next D_b slots."""
        p = self.p64
        w = window_from_exo(p, self.env.exo, day, t, p.batch_deadline_slots, ignore_batch=True)
        price = self.price_forecaster.forecast(w, day, t).price_usd_per_mwh  # [H, N], row 0 the present
        return price[0] <= np.quantile(price, self.quantile, axis=0)

    def decide(self, td):
        d = super().decide(td)
        p = self.env.params
        D = p.batch_deadline_slots
        days = td["day_idx"].cpu().numpy()
        ts = td["t"].squeeze(-1).clamp(max=self.env.T - 1).cpu().numpy()
        cheap = torch.as_tensor(np.stack([self.cheap_now(int(day), int(t)) for day, t in zip(days, ts)]),
                                device=self.env.device)
        queue = td["batch_queue"].sum(-3)  # [B, n, A] by age at this slot (this slot's arrivals join at age 0)
        due = queue[..., D - 1:].sum(-1)
        total = queue.sum(-1) + td["batch_arrivals"]  # new work stays at its origin
        due_share = torch.where(total > 0, due / total.clamp(min=1e-12), torch.zeros_like(total))
        serve = torch.where(cheap, torch.ones_like(due_share), due_share)
        return dataclasses.replace(d, batch_serve_frac=serve.to(p.capacity_gpu_s.dtype))
