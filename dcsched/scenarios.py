"""Scenario validation and the scenario registry (one entry per file in recipes/scenario/)."""

from __future__ import annotations

import yaml

from dcsched.paths import SCENARIO_DIR
from dcsched.data.regions import REGIONS
from dcsched.errors import ConfigError
from dcsched.registry import SCENARIOS


def _register_scenario_files() -> None:
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        try:
            desc = (yaml.safe_load(path.read_text()) or {}).get("description", "")
        except yaml.YAMLError:
            desc = "(unreadable YAML)"
        SCENARIOS.add(path.stem, path, str(desc).strip().splitlines()[0] if desc else "")


_register_scenario_files()


def _validate_batch(cfg, fail) -> None:
    """The batch block (MODEL.md section 11): ranges that keep the queue and its accounting meaningful."""
    b = cfg.batch
    if not 0.0 <= b.share <= 1.0:
        fail("batch.share", f"must lie in [0, 1], got {b.share}", "[0, 1]")
    if b.deadline_slots < 1:
        fail("batch.deadline_slots", f"a batch deadline shorter than one slot ({cfg.slot_s:g} s) is an interactive "
             f"class (use classes.*), got {b.deadline_slots}", f"an integer in [1, {cfg.slots_per_day}]")
    if b.deadline_slots > cfg.slots_per_day:
        fail("batch.deadline_slots", f"longer than the day's {cfg.slots_per_day} slots (work is settled at the day's end)",
             f"an integer in [1, {cfg.slots_per_day}]")
    if b.horizon_slots < b.deadline_slots:
        fail("batch.horizon_slots", f"the drop horizon ({b.horizon_slots}) is shorter than the deadline "
             f"({b.deadline_slots})", f"an integer >= batch.deadline_slots ({b.deadline_slots})")
    if b.price_factor < 0:
        fail("batch.price_factor", f"must be >= 0, got {b.price_factor}", ">= 0")
    if b.late_penalty_factor < 0:
        fail("batch.late_penalty_factor", f"must be >= 0, got {b.late_penalty_factor}", ">= 0")
    if not 1 <= b.obs_buckets <= b.horizon_slots:
        fail("batch.obs_buckets", f"must lie in [1, horizon_slots = {b.horizon_slots}], got {b.obs_buckets}",
             f"an integer in [1, {b.horizon_slots}]")


def validate_scenario(cfg, source: str) -> None:
    """Semantic checks OmegaConf's types cannot express. Raises ConfigError naming the key."""
    from dcsched.quality.curves import default_artifact_path, quality_on_grid

    def fail(key: str, problem: str, allowed: str | None = None) -> None:
        raise ConfigError(source, f"scenario.{key}", problem, allowed)

    if cfg.slot_s <= 0:
        fail("slot_s", f"must be > 0, got {cfg.slot_s}")
    if cfg.slots_per_day <= 0 or (cfg.slot_s * cfg.slots_per_day) % 3600 != 0 or 3600 % cfg.slot_s != 0:
        fail("slots_per_day", "slot_s must divide an hour and slot_s * slots_per_day must be whole hours")
    from dcsched.data.user_files import check_data_keys

    check_data_keys(cfg, source)
    from dcsched.stress import parse_stress

    for spec in cfg.stress:
        try:
            parse_stress(spec, source).dcs(len(cfg.dcs))
        except ValueError as err:
            fail("stress", f"{spec}: {err}")
    if not 0 <= cfg.test_day_remainder < cfg.test_day_modulus:
        fail("test_day_remainder", "must lie in [0, test_day_modulus)")
    if cfg.revenue_scale <= 0:
        fail("revenue_scale", f"must be > 0, got {cfg.revenue_scale}")
    if len(cfg.dcs) < 1:
        fail("dcs", "at least one data centre is required")
    grid = list(cfg.steps_grid)
    if not grid or min(grid) <= 0 or sorted(set(grid)) != grid:
        fail("steps_grid", f"must be strictly increasing positive step counts, got {grid}")
    freqs = list(cfg.freq_levels)
    if not freqs or min(freqs) <= 0 or max(freqs) > 1 or sorted(set(freqs)) != freqs:
        fail("freq_levels", f"must be strictly increasing fractions of f_max in (0, 1], got {freqs}")
    if not 0 <= cfg.dvfs_delta <= 1:
        fail("dvfs_delta", "must lie in [0, 1]")
    k = len(cfg.classes.names)
    for key in ("deadline_s", "mix", "late_penalty_factor"):
        if len(cfg.classes[key]) != k:
            fail(f"classes.{key}", f"needs one value per class ({k})")
    if min(cfg.classes.deadline_s) <= 0:
        fail("classes.deadline_s", "deadlines must be > 0")
    if sorted(set(cfg.classes.deadline_s)) != list(cfg.classes.deadline_s):
        fail("classes.deadline_s", "list classes by strictly increasing deadline (the EDF service order)")
    if abs(sum(cfg.classes.mix) - 1) > 1e-9 or min(cfg.classes.mix) < 0:
        fail("classes.mix", f"must be non-negative and sum to 1, got {list(cfg.classes.mix)}")
    _validate_batch(cfg, fail)
    if cfg.arrivals.total_per_slot < 0:
        fail("arrivals.total_per_slot", "must be >= 0")
    if not 0 < cfg.arrivals.floor <= 1:
        fail("arrivals.floor", "must lie in (0, 1]")
    e = cfg.energy
    if not 0 <= e.soc_min < e.soc_max <= 1:
        fail("energy.soc_min", f"need 0 <= soc_min < soc_max <= 1, got {e.soc_min} and {e.soc_max}")
    if not e.soc_min <= e.soc_init <= e.soc_max:
        fail("energy.soc_init", "must lie in [soc_min, soc_max]")
    for key in ("eta_charge", "eta_discharge"):
        if not 0 < e[key] <= 1:
            fail(f"energy.{key}", "must lie in (0, 1]")
    for key in ("battery_hours", "battery_power_per_full_kw", "pv_kwp_per_full_kw", "wind_kw_per_full_kw",
                "degradation_usd_per_kwh", "price_scale", "full_load_pue", "base_power_w_per_8_gpus"):
        if e[key] < 0:
            fail(f"energy.{key}", f"must be >= 0, got {e[key]}")
    if not 0 <= e.charge_percentile <= e.discharge_percentile <= 100:
        fail("energy.charge_percentile", "need 0 <= charge_percentile <= discharge_percentile <= 100")
    weights = [dc.arrival_weight for dc in cfg.dcs]
    if min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
        fail("dcs.*.arrival_weight", f"must be non-negative and sum to 1, got {weights}")
    for n, dc in enumerate(cfg.dcs):
        where = f"dcs.{n}"
        if dc.region not in REGIONS:
            fail(f"{where}.region", f"unknown region '{dc.region}'", ", ".join(REGIONS))
        for key in ("num_gpus", "tau_step_s", "energy_step_j", "price_usd_per_image"):
            if dc[key] <= 0:
                fail(f"{where}.{key}", f"must be > 0, got {dc[key]}")
        for key in ("tau_fixed_s", "energy_fixed_j", "idle_power_w"):
            if dc[key] < 0:
                fail(f"{where}.{key}", f"must be >= 0, got {dc[key]}")
        if dc.idle_power_w >= dc.energy_step_j / dc.tau_step_s:
            fail(f"{where}.idle_power_w", "idle power must be below busy power energy_step_j / tau_step_s")
        artifact = dc.quality_artifact or str(default_artifact_path(dc.model))
        if not dc.quality_artifact and not default_artifact_path(dc.model).exists():
            known = sorted(p.stem.removesuffix("_default") for p in default_artifact_path("x").parent.glob("*_default.json"))
            fail(f"{where}.model", f"unknown model '{dc.model}' (no default quality artifact)", ", ".join(known))
        try:
            quality_on_grid(artifact, grid)
        except ConfigError as err:
            fail(f"{where}.quality_artifact", f"{err}")
