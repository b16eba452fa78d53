"""Stress scenarios (a registry kind: ``stress``), composable with any scenario.

``scenario.stress`` lists stresses as ``NAME`` or ``NAME:key=value,...``; on the command line,
quote a stress that has options, since commas also separate the list
(``'scenario.stress=["price_spike:factor=5,start_h=17",heatwave]'``). Each one rewrites the exogenous
inputs of every day the scenario loads, after the data layer and before the env or the LP sees
them, so a policy, its evaluation and the day's LP bound all face the same stressed day. Faults
(``dc_outage``, ``link_down``) set the exogenous ``capacity_frac`` and ``link_up`` tensors that the
kernels and the LP read (docs/scenarios.md: the rules for jobs sent to a down DC or over a down link).
Windows
are in hours of the (UTC) day, [start_h, start_h + hours), clipped at midnight; ``dc`` = -1 means
every data centre, else its index. The battery's price thresholds (trailing percentiles) and the
observation normaliser stay those of the unstressed data: a stress changes the world, not the
controller's scaling.
"""

from __future__ import annotations

import inspect

import torch

from dcsched.errors import ConfigError
from dcsched.registry import STRESSES


class Stress:
    """Base: ``apply(tensors, slot_hour, num_dcs)`` rewrites the [D, T, N(, K)] tensors in place."""

    name = "stress"

    def __init__(self, dc: int = -1):
        self.dc = int(dc)

    def dcs(self, num_dcs: int) -> slice | list[int]:
        if self.dc == -1:
            return slice(None)
        if not 0 <= self.dc < num_dcs:
            raise ValueError(f"dc={self.dc} is not a data centre index (0 to {num_dcs - 1}, or -1 for all)")
        return [self.dc]

    def apply(self, tensors: dict[str, torch.Tensor], slot_hour: torch.Tensor, num_dcs: int) -> None:  # pragma: no cover
        raise NotImplementedError


class WindowStress(Stress):
    def __init__(self, start_h: float = 17.0, hours: float = 3.0, dc: int = -1):
        super().__init__(dc)
        if hours <= 0 or not 0 <= start_h < 24:
            raise ValueError(f"need 0 <= start_h < 24 and hours > 0, got start_h={start_h}, hours={hours}")
        self.start_h, self.hours = float(start_h), float(hours)

    def slots(self, slot_hour: torch.Tensor) -> torch.Tensor:
        """[T] bool: the slots whose start lies in the window."""
        return (slot_hour >= self.start_h) & (slot_hour < self.start_h + self.hours)


@STRESSES.register("price_spike", "electricity price x factor for hours from start_h (defaults: x5, 17:00-20:00 UTC, every DC)")
class PriceSpike(WindowStress):
    name = "price_spike"

    def __init__(self, factor: float = 5.0, start_h: float = 17.0, hours: float = 3.0, dc: int = -1):
        super().__init__(start_h, hours, dc)
        self.factor = float(factor)

    def apply(self, tensors, slot_hour, num_dcs):
        price = tensors["price_usd_per_mwh"]  # [D, T, N]
        win = self.slots(slot_hour)
        sel = price[:, win]
        sel[..., self.dcs(num_dcs)] *= self.factor
        price[:, win] = sel


@STRESSES.register("heatwave", "outdoor temperature + delta_c for the whole day (default +10 °C, every DC)")
class Heatwave(Stress):
    name = "heatwave"

    def __init__(self, delta_c: float = 10.0, dc: int = -1):
        super().__init__(dc)
        self.delta_c = float(delta_c)

    def apply(self, tensors, slot_hour, num_dcs):
        tensors["temp_c"][..., self.dcs(num_dcs)] += self.delta_c


@STRESSES.register("demand_surge", "arrivals x factor for hours from start_h (defaults: x2, 12:00-15:00 UTC, every origin)")
class DemandSurge(WindowStress):
    name = "demand_surge"

    def __init__(self, factor: float = 2.0, start_h: float = 12.0, hours: float = 3.0, dc: int = -1):
        super().__init__(start_h, hours, dc)
        if factor < 0:
            raise ValueError(f"factor must be >= 0, got {factor}")
        self.factor = float(factor)

    def apply(self, tensors, slot_hour, num_dcs):
        win = self.slots(slot_hour)
        for key in ("arrival_rate", "batch_arrival_rate"):  # [D, T, N, K] and [D, T, N] (batch work, if any)
            if key not in tensors:
                continue
            rate = tensors[key]
            sel = rate[:, win]
            sel[:, :, self.dcs(num_dcs)] *= self.factor
            rate[:, win] = sel


@STRESSES.register("renewable_drought", "PV and wind output 0 for the whole day (every DC by default)")
class RenewableDrought(Stress):
    name = "renewable_drought"

    def apply(self, tensors, slot_hour, num_dcs):
        for key in ("pv_kw_per_kwp", "wind_kw_per_kw"):
            tensors[key][..., self.dcs(num_dcs)] = 0.0


@STRESSES.register("dc_outage", "a data centre's GPUs down for hours from start_h (defaults: DC 0, 12:00-14:00 UTC, "
                                "up_share=0); jobs sent there are dropped unless moved; the backlog it cannot serve "
                                "after the outage starts is not admitted")
class DCOutage(WindowStress):
    name = "dc_outage"

    def __init__(self, start_h: float = 12.0, hours: float = 2.0, dc: int = 0, up_share: float = 0.0):
        super().__init__(start_h, hours, dc)
        if not 0.0 <= up_share < 1.0:
            raise ValueError(f"up_share (the share of GPUs still up) must be in [0, 1), got {up_share}")
        self.up_share = float(up_share)

    def apply(self, tensors, slot_hour, num_dcs):
        frac = tensors["capacity_frac"]  # [D, T, N]
        win = self.slots(slot_hour)
        sel = frac[:, win]
        sel[..., self.dcs(num_dcs)] = torch.clamp(sel[..., self.dcs(num_dcs)], max=self.up_share)
        frac[:, win] = sel


@STRESSES.register("link_down", "the transfer link origin -> dest unusable for hours from start_h (defaults: 0 -> 1 "
                                "and back (both=1), the whole day); jobs sent over it stay at their origin")
class LinkDown(WindowStress):
    name = "link_down"

    def __init__(self, origin: int = 0, dest: int = 1, both: float = 1.0, start_h: float = 0.0, hours: float = 24.0):
        super().__init__(start_h, hours)
        if origin == dest:
            raise ValueError(f"origin and dest must differ (a DC's own jobs need no link), got {int(origin)} twice")
        if both not in (0.0, 1.0):
            raise ValueError(f"both must be 0 or 1, got {both}")
        self.origin, self.dest, self.both = int(origin), int(dest), bool(both)

    def apply(self, tensors, slot_hour, num_dcs):
        for idx in (self.origin, self.dest):
            if not 0 <= idx < num_dcs:
                raise ValueError(f"{idx} is not a data centre index (0 to {num_dcs - 1})")
        up = tensors["link_up"]  # [D, T, N, N]
        win = self.slots(slot_hour)
        pairs = [(self.origin, self.dest)] + ([(self.dest, self.origin)] if self.both else [])
        for i, n in pairs:
            sel = up[:, win]
            sel[..., i, n] = 0.0
            up[:, win] = sel


def parse_stress(spec: str, source: str = "scenario", key: str = "scenario.stress") -> Stress:
    """``NAME`` or ``NAME:key=value,...`` -> a Stress (a clear ConfigError on any problem)."""
    name, _, opts = str(spec).partition(":")
    try:
        cls = STRESSES.get(name)
    except Exception as err:
        raise ConfigError(source, key, str(err)) from None
    sig = inspect.signature(cls)
    kwargs = {}
    for item in filter(None, opts.split(",")):
        k, _, v = item.partition("=")
        if k not in sig.parameters:
            raise ConfigError(source, key, f"{name} has no option '{k}'", ", ".join(sig.parameters) or "none")
        try:
            kwargs[k] = float(v)
        except ValueError:
            raise ConfigError(source, key, f"{name}:{k}='{v}' is not a number") from None
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ConfigError(source, key, f"{name}: {err}") from None


def apply_stresses(specs, tensors: dict[str, torch.Tensor], slot_hour: torch.Tensor, num_dcs: int,
                   source: str = "scenario") -> None:
    """Apply each stress of ``specs`` in order to the exogenous ``tensors`` (in place)."""
    for spec in specs:
        stress = parse_stress(spec, source)
        try:
            stress.apply(tensors, slot_hour, num_dcs)
        except ValueError as err:
            raise ConfigError(source, "scenario.stress", f"{spec}: {err}") from None
