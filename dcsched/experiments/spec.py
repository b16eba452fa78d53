"""Experiment declarations (recipes/experiments/NAME.yaml) and their expansion into runs.

An experiment is a grid: scenarios x settings x methods x seeds. A *method* is either a learned
recipe (trained per seed, then evaluated on the test days) or a baseline policy (evaluated once
per scenario and setting: the env is deterministic). Every (scenario, setting) also gets its
perfect-foresight LP bound. Each cell is one :class:`RunSpec` with a config hash; the launcher
executes the specs, the aggregator reads their ``result.json`` files back.

Load order of an experiment: schema defaults <- YAML file <- ``tier=quick`` block <- command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dcsched.agents.configs import flat_agent_defaults
from dcsched.config import (DC_TASK, SCENARIO_LATER_DEFAULTS, as_config_error, legacy_layout, load_recipe, load_scenario, override_value, read_yaml,
                             scenario_identity, scenario_path,
                             to_container)
from dcsched.data.user_files import data_identity
from dcsched.errors import ConfigError
from dcsched.paths import RECIPES_DIR, shipped_file

EXPERIMENTS_DIR = RECIPES_DIR / "experiments"
KINDS = ("convergence", "table", "sweep", "ablation", "behaviour", "timing", "stress", "pareto", "task")
LAUNCHERS = ("sequential", "ray")
TIERS = ("full", "quick")
# Fields of a DC that belong to its model and hardware (moved together by `models_from`);
# region (prices, weather, carbon) and arrival weight (its customers) stay with the site.
MODEL_FIELDS = ("model", "gpu", "num_gpus", "tau_step_s", "tau_fixed_s", "energy_step_j", "energy_fixed_j",
                "idle_power_w", "price_usd_per_image", "quality_artifact")
# Run-config keys that do not change a run's result (left out of its hash).
VOLATILE_KEYS = ("name", "out_dir", "resume", "logger", "trainer.progress", "eval")
# keys added after results were recorded, with the default that reproduces the behaviour before
# them: a run that holds the default hashes as if the key did not exist, so finished cells stay valid
LATER_KEYS_DEFAULTS = {"task": DC_TASK, "env.transfer_chunks": 1, "env.observe_faults": False, "env.steps_mode": "absolute",
                       "agent.share_params": True, "shaper.per_agent": "shared", "shaper.updates_per_batch": 64,
                       "shaper.batch_size": 256, "trainer.compile": False,
                       "trainer.compile_mode": "default",
                       **{f"scenario.{key}": value for key, value in SCENARIO_LATER_DEFAULTS.items()}}


@dataclass
class MethodSpec:
    """A learned recipe (``recipe``) or a baseline policy (``policy``, any `--policy` string)."""

    label: str = MISSING
    recipe: str = ""
    policy: str = ""
    overrides: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)  # run only on these of the experiment's scenarios ([] = all)


@dataclass
class SettingSpec:
    """One point of the experiment's grid: overrides for every run of the setting.

    ``scenario.*`` overrides also reach baselines and bounds; other keys only learned runs.
    ``models_from[n] = m``: DC n runs the model (and hardware) of DC m (heterogeneity).
    ``x``: the numeric value of the setting on a sweep plot's axis.
    """

    label: str = MISSING
    overrides: list[str] = field(default_factory=list)
    models_from: list[int] = field(default_factory=list)
    x: Optional[float] = None


# The quick tier checks that every experiment runs end to end (CI runs all of them); its numbers are
# not results. One seed, 4,096 frames and one test day keep all of them near 15 minutes on 2 cores.
QUICK_OVERRIDES = ["trainer.total_frames=4096", "trainer.checkpoint_every_batches=2", "agent.warmup_frames=1024",
                   "replay_buffer.batch_size=128", "network.hidden_sizes=[64,64]", "shaper.hidden_sizes=[64,64]",
                   "shaper.cond_hidden=64", "shaper.rs_learning_starts=1024"]


@dataclass
class TierSpec:
    """What ``tier=quick`` changes: fewer seeds, frames and days (overrides of learned runs, applied
    after the experiment's own and before each method's and setting's)."""

    seeds: Optional[list[int]] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=lambda: list(QUICK_OVERRIDES))
    max_days: Optional[int] = 1
    baselines: Optional[list[str]] = None  # labels of the baselines kept (None: all)


@dataclass
class ExperimentConfig:
    name: str = MISSING
    description: str = ""
    kind: str = "table"
    scenarios: list[str] = field(default_factory=lambda: ["paper3"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    methods: list[MethodSpec] = field(default_factory=list)
    settings: list[SettingSpec] = field(default_factory=lambda: [SettingSpec(label="default")])
    overrides: list[str] = field(default_factory=list)  # every learned run
    sweep_label: str = ""  # x-axis label of a sweep
    days: str = "test"
    max_days: int = 0
    with_bound: bool = True
    stochastic_seeds: int = 0  # > 0: also evaluate every method on Poisson arrivals, seeds 0..N-1 (CRN), as columns
    keep_traces: bool = False  # write trace.csv of every evaluation (behaviour plots)
    paired: list[list[str]] = field(default_factory=list)  # [A, B]: A learned, B learned or a baseline: A - B by seed
    quick: TierSpec = field(default_factory=TierSpec)
    # how to run it (usually from the command line)
    tier: str = "full"
    launcher: str = "sequential"
    ray_address: str = ""  # "" = start a local Ray instance; else an existing cluster's address
    ray_num_cpus: int = 0  # local instance only; 0 = all cores
    cpus_per_run: int = 1  # Ray resource request of one run (and its torch threads)
    threads_per_run: int = 0  # torch threads in a sequential run; 0 = torch's default
    lp_workers: int = 1  # processes solving the days of a bound cell in parallel (one core each; same values)
    eval_workers: int = 1  # processes playing a day-separable policy cell's day chunks in parallel (same values)
    out_dir: str = "runs/experiments"
    wandb_mode: str = "offline"  # offline | disabled | online
    reuse: bool = True  # copy a finished run with the same config hash from another experiment
    records_dir: str = "results"  # recorded cells (result.json + spec.json, kept in git): adopted by hash; "" = ignore
    record: bool = False  # after running, copy every finished cell's result.json and spec.json into records_dir
    max_runs: int = 0  # stop after this many executed runs (0 = all); the rest resume later
    only: str = ""  # regex on run keys: run only matching cells (the report still covers all finished ones)


ENUMS = {"kind": KINDS, "launcher": LAUNCHERS, "tier": TIERS, "wandb_mode": ("offline", "disabled", "online")}


@dataclass
class RunSpec:
    """One cell of the grid. ``kind``: train (learned method, one seed), policy (baseline), bound (LP)."""

    key: str
    kind: str
    scenario: str
    setting: str
    method: str
    seed: int
    recipe: str = ""
    policy: str = ""
    overrides: list[str] = field(default_factory=list)  # learned runs: run-config overrides
    scenario_overrides: list[str] = field(default_factory=list)  # policy/bound: scenario overrides
    days: str = "test"
    max_days: int = 0
    keep_traces: bool = False
    config_hash: str = ""
    x: Optional[float] = None
    covers: list[str] = field(default_factory=list)  # policy/bound: every setting with this scenario config
    stochastic_seeds: int = 0  # policy/train: also evaluate on Poisson arrivals with these many seeds

    @property
    def dirname(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", self.key.replace("/", "__"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- loading
def experiment_path(name: str) -> Path:
    p = shipped_file(name, EXPERIMENTS_DIR)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise ConfigError(str(p), "<file>", "file not found")
        return p
    candidate = EXPERIMENTS_DIR / f"{name}.yaml"
    if candidate.exists():
        return candidate
    allowed = available_experiments()
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError("command line", "NAME", f"unknown experiment '{name}'{hint}", ", ".join(allowed))


def available_experiments() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def experiment_descriptions() -> dict[str, str]:
    """{name: one-line description} of every declared experiment (what `dcsched list` prints)."""
    return {name: " ".join(str(OmegaConf.load(EXPERIMENTS_DIR / f"{name}.yaml").get("description", "")).split())
            for name in available_experiments()}


def load_experiment(name: str, overrides: list[str] | None = None) -> DictConfig:
    """Load, apply ``tier`` and command-line ``key=value`` overrides, validate."""
    path = experiment_path(name)
    source = str(path)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), read_yaml(path))
    except OmegaConfBaseException as err:
        raise _experiment_error(err, source) from err
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError("command line", item, "overrides must look like key=value")
        key, _, value = item.partition("=")
        if OmegaConf.select(cfg, key.rpartition(".")[0] or key, default=None) is None and key.split(".")[0] not in cfg:
            raise ConfigError("command line", key, "unknown key", _allowed_keys(key))
        try:
            parent, _, leaf = key.rpartition(".")
            parsed = override_value(OmegaConf.select(cfg, parent) if parent else cfg, leaf, value, key)
            OmegaConf.update(cfg, key, parsed, merge=False)
        except OmegaConfBaseException as err:
            raise _experiment_error(err, "command line") from err
    # a command-line seeds= or max_days= wins over the tier's own value (and the report shows it)
    given = {item.partition("=")[0] for item in overrides or []}
    for key in ("seeds", "max_days"):
        if key in given and cfg.tier == "quick":
            cfg.quick[key] = cfg[key]
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(source, missing[0], "required value is missing")
    for key, allowed in ENUMS.items():
        if cfg[key] not in allowed:
            raise ConfigError(source if key == "kind" else "command line", key, f"'{cfg[key]}' is not allowed",
                              ", ".join(allowed))
    if not cfg.methods:
        raise ConfigError(source, "methods", "an experiment needs at least one method")
    for key, seeds in (("seeds", cfg.seeds), ("quick.seeds", cfg.quick.seeds)):
        if seeds is not None and len(seeds) == 0:
            raise ConfigError("command line" if key.split(".")[0] in given else source, key,
                              "no seeds: no learned run would be made", "one or more seeds, e.g. [0,1,2]")
    if cfg.only:
        try:
            re.compile(cfg.only)
        except re.error as err:
            raise ConfigError("command line", "only", f"'{cfg.only}' is not a regular expression ({err})",
                              "a Python regex on cell keys, e.g. '^paper3/.*/s1$'") from None
    if int(cfg.lp_workers) < 1:
        raise ConfigError("command line", "lp_workers", f"{cfg.lp_workers} processes", ">= 1")
    if int(cfg.eval_workers) < 1:
        raise ConfigError("command line", "eval_workers", f"{cfg.eval_workers} processes", ">= 1")
    if int(cfg.stochastic_seeds) < 0:
        raise ConfigError(source, "stochastic_seeds", f"{cfg.stochastic_seeds} seeds", "0 (deterministic only) or more")
    for i, m in enumerate(cfg.methods):
        if bool(m.recipe) == bool(m.policy):
            raise ConfigError(source, f"methods.{i}", f"method '{m.label}' must set exactly one of recipe, policy")
    labels = [s.label for s in cfg.settings]
    if len(set(labels)) != len(labels):
        raise ConfigError(source, "settings", f"setting labels must be unique, got {labels}")
    for i, m in enumerate(cfg.methods):  # a method's own scenarios must exist (the command line may drop some)
        for scen in [] if cfg.kind == "task" else m.scenarios:
            try:
                scenario_path(scen)
            except ConfigError:
                from dcsched.registry import SCENARIOS

                raise ConfigError(source, f"methods.{i}.scenarios", f"method '{m.label}': unknown scenario '{scen}'",
                                  ", ".join(SCENARIOS.names())) from None
    _check_tasks(cfg, source)
    if cfg.kind != "task":
        _check_days(cfg, "command line" if "days" in given else source)
    learned = [m.label for m in cfg.methods if m.recipe]
    baselines = [m.label for m in cfg.methods if m.policy]
    for i, pair in enumerate(cfg.paired):
        if len(pair) != 2 or pair[0] not in learned or pair[1] not in learned + baselines:
            raise ConfigError(source, f"paired.{i}", f"{list(pair)} must name a learned method, then a learned "
                              "method or a baseline", f"learned: {', '.join(learned)}; baselines: {', '.join(baselines)}")
    return cfg


def _check_tasks(cfg: DictConfig, source: str) -> None:
    """A ``kind: task`` experiment lists Gymnasium tasks as its ``scenarios`` (``gym:ENV_ID``,
    docs/tasks.md) and learned methods only; any other kind lists data-centre scenarios only."""
    from dcsched.envs.gym_task import check_task, is_gym_task

    for i, scen in enumerate(cfg.scenarios):
        if cfg.kind == "task":
            check_task(scen, source)
        elif is_gym_task(scen):
            raise ConfigError(source, f"scenarios.{i}", f"'{scen}' is a Gymnasium task; only a task experiment "
                              "trains on tasks", "kind: task (or a data-centre scenario)")
    if cfg.kind == "task":
        for i, m in enumerate(cfg.methods):
            if m.policy:
                raise ConfigError(source, f"methods.{i}", f"method '{m.label}' is a data-centre baseline; a task "
                                  "experiment has learned methods only", "recipe: NAME")


def _check_days(cfg: DictConfig, source: str) -> None:
    """``days`` names a split or dates of every scenario's year (refused by key before any cell runs)."""
    from dcsched.data.exogenous import parse_days

    for scen in cfg.scenarios:
        try:
            parse_days(load_scenario(scen), str(cfg.days))
        except ConfigError as err:
            raise ConfigError(source, "days", f"scenario '{scen}': {err.problem}", err.allowed) from None


def _allowed_keys(key: str) -> str:
    keys = [f.name for f in dataclasses.fields(ExperimentConfig)]
    close = difflib.get_close_matches(key.split(".")[0], keys, n=1)
    return ", ".join(keys) + (f"; closest: '{close[0]}'" if close else "")


def _experiment_error(err: OmegaConfBaseException, source: str) -> ConfigError:
    wrapped = as_config_error(err, source)
    if wrapped.problem == "unknown key" or "not in" in str(err):
        return ConfigError(source, wrapped.key, "unknown key", _allowed_keys(wrapped.key))
    return wrapped


# --------------------------------------------------------------------------- expansion
def _tiered(cfg: DictConfig) -> tuple[list[int], list[str], int, Optional[list[str]]]:
    seeds, extra, max_days, keep = list(cfg.seeds), [], int(cfg.max_days), None
    if cfg.tier == "quick":
        q = cfg.quick
        seeds = list(q.seeds) if q.seeds is not None else seeds
        extra = list(q.overrides)
        max_days = int(q.max_days) if q.max_days is not None else max_days
        keep = list(q.baselines) if q.baselines is not None else None
    return seeds, extra, max_days, keep


def models_from_overrides(scenario_name: str, models_from: list[int], source: str) -> list[str]:
    """``scenario.dcs.N.FIELD=value`` overrides that give DC n the model bundle of DC models_from[n]."""
    if not models_from:
        return []
    base = load_scenario(scenario_name)
    n_dcs = len(base.dcs)
    if sorted(models_from) != list(range(n_dcs)):
        raise ConfigError(source, "settings.models_from", f"must be a permutation of 0..{n_dcs - 1}, got {list(models_from)}")
    out = []
    for n, src in enumerate(models_from):
        for f in MODEL_FIELDS:
            value = base.dcs[src][f]
            out.append(f"scenario.dcs.{n}.{f}={json.dumps(value) if isinstance(value, str) else value}")
    return out


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_config_hash(run_cfg: DictConfig) -> str:
    """Hash of everything that changes a learned run's result (not its name, folder or loggers)."""
    data = legacy_layout(to_container(run_cfg))  # hashed as before the TorchRL-named groups (MOVED_KEYS)
    # and as before each algorithm declared its own agent keys: one flat group with every algorithm's defaults
    data["agent"] = {**flat_agent_defaults(), **data.get("agent", {})}
    for key in VOLATILE_KEYS:
        head, _, leaf = key.rpartition(".")
        node = data
        for part in head.split(".") if head else []:
            node = node.get(part, {})
        node.pop(leaf, None)
    if isinstance(data.get("scenario"), dict):
        data_identity(data["scenario"])
    for key, default in LATER_KEYS_DEFAULTS.items():
        *heads, leaf = key.split(".")
        node = data
        for part in heads:
            node = node.get(part, {})
        if node.get(leaf, default) == default:
            node.pop(leaf, None)
    agent = data.get("agent", {})
    if agent.get("constraint", "none") == "none":  # unconstrained: the Lagrangian keys change nothing (older hashes stay valid)
        for key in ("constraint", "cost_limit", "lr_lagrange", "lagrange_init"):
            agent.pop(key, None)
    collector = data.pop("collector", {})
    if collector.get("backend", "inprocess") != "inprocess":  # the default leaves older hashes valid
        data["collector"] = {k: v for k, v in collector.items() if k != "ray_address"}
    return _hash(data)


def _stochastic_key(cfg) -> dict:
    """The stochastic evaluation's part of a cell's hash: absent at 0, so cells finished before the
    key existed keep their hash."""
    return {"stochastic_seeds": int(cfg.stochastic_seeds)} if int(cfg.stochastic_seeds) > 0 else {}


def _runs_on(method, scenario: str) -> bool:
    """Whether a method runs on this scenario (its ``scenarios`` list, empty = every scenario)."""
    return not method.scenarios or scenario in method.scenarios


def pairs_on(cfg: DictConfig, scenario: str) -> int:
    """How many of the declared ``paired`` entries compare two methods that both run on this
    scenario: the family of the scenario's multiple-comparison correction (a pair whose method runs
    only elsewhere is not a test on this scenario)."""
    methods = {m.label: m for m in cfg.methods}
    return sum(all(label in methods and _runs_on(methods[label], scenario) for label in pair)
               for pair in cfg.get("paired") or [])


def _task_cells(cfg: DictConfig, task: str, seeds: list[int], tier_overrides: list[str]) -> list[RunSpec]:
    """The learned cells of a ``kind: task`` experiment on ``task``: every method, setting and seed,
    trained with ``task=TASK`` (the recipe's scenario is unused) and evaluated by return and success."""
    cells = []
    for setting in cfg.settings:
        for m in cfg.methods:
            if not _runs_on(m, task):
                continue
            for seed in seeds:
                ovr = [f"task={task}", *cfg.overrides, *tier_overrides, *m.overrides, *setting.overrides, f"seed={seed}"]
                run_cfg = load_recipe(m.recipe, ovr)  # eval.episodes is part of a task cell's result
                h = _hash({"run": run_config_hash(run_cfg), "kind": "task", "episodes": int(run_cfg.eval.episodes)})
                cells.append(RunSpec(key=f"{task}/{setting.label}/{m.label}/s{seed}", kind="train", scenario=task,
                                     setting=setting.label, method=m.label, seed=seed, recipe=m.recipe, overrides=ovr,
                                     config_hash=h, x=setting.x))
    return cells


def expand(cfg: DictConfig) -> list[RunSpec]:
    """Every run of the experiment, bounds first, then baselines, then learned runs by seed.

    Settings that leave the scenario unchanged (e.g. an eta sweep) share one bound and one set of
    baseline runs, whose ``covers`` lists them all.
    """
    seeds, tier_overrides, max_days, keep_baselines = _tiered(cfg)
    source = str(experiment_path(cfg.name)) if (EXPERIMENTS_DIR / f"{cfg.name}.yaml").exists() else cfg.name
    shared, trains = [], []
    for scen in cfg.scenarios:
        if cfg.kind == "task":  # a Gymnasium task: learned cells only (no bound, no baselines, no days)
            trains += _task_cells(cfg, scen, seeds, tier_overrides)
            continue
        groups: dict[str, list] = {}  # scenario hash -> [(setting, scenario overrides)]
        for setting in cfg.settings:
            setting_ovr = list(setting.overrides) + models_from_overrides(scen, list(setting.models_from), source)
            scen_ovr = [o.removeprefix("scenario.") for o in setting_ovr if o.startswith("scenario.")]
            scen_cfg = load_scenario(scen, scen_ovr)
            scen_hash = _hash({"scenario": scenario_identity(to_container(scen_cfg)), "days": cfg.days, "max_days": max_days})
            groups.setdefault(scen_hash, []).append((setting, scen_ovr))
            for m in cfg.methods:
                if not m.recipe or not _runs_on(m, scen):
                    continue
                for seed in seeds:
                    # later wins: experiment, tier, method, setting (a method or setting may undo the tier)
                    ovr = [f"scenario={scen}", *cfg.overrides, *tier_overrides, *m.overrides, *setting_ovr,
                           f"seed={seed}"]
                    run_cfg = load_recipe(m.recipe, ovr)
                    h = _hash({"run": run_config_hash(run_cfg), "days": cfg.days, "max_days": max_days,
                               "keep_traces": cfg.keep_traces, **_stochastic_key(cfg)})
                    trains.append(RunSpec(key=f"{scen}/{setting.label}/{m.label}/s{seed}", kind="train", scenario=scen,
                                          setting=setting.label, method=m.label, seed=seed, recipe=m.recipe,
                                          overrides=ovr, days=cfg.days, max_days=max_days,
                                          keep_traces=cfg.keep_traces, config_hash=h, x=setting.x,
                                          stochastic_seeds=int(cfg.stochastic_seeds)))
        for scen_hash, members in groups.items():
            setting, scen_ovr = members[0]
            covers = [s.label for s, _ in members]
            common = dict(scenario=scen, setting=setting.label, seed=0, scenario_overrides=scen_ovr, days=cfg.days,
                          max_days=max_days, x=setting.x, covers=covers)
            if cfg.with_bound:
                shared.append(RunSpec(key=f"{scen}/{setting.label}/LP bound", kind="bound", method="LP bound",
                                      config_hash=scen_hash, **common))
            for m in cfg.methods:
                if not m.policy or not _runs_on(m, scen) or (keep_baselines is not None and m.label not in keep_baselines):
                    continue
                h = _hash({"scenario": scen_hash, "policy": m.policy, "keep_traces": cfg.keep_traces,
                           **_stochastic_key(cfg)})
                shared.append(RunSpec(key=f"{scen}/{setting.label}/{m.label}", kind="policy", method=m.label,
                                      policy=m.policy, keep_traces=cfg.keep_traces, config_hash=h,
                                      stochastic_seeds=int(cfg.stochastic_seeds), **common))
    trains.sort(key=lambda s: (s.seed, s.scenario))
    return shared + trains
