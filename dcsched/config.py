"""Typed configuration: OmegaConf structured dataclasses, YAML recipes and `key=value` overrides.

Choice (see docs/configuration.md): plain OmegaConf structured configs, no Hydra. A recipe is a
YAML file validated against :class:`RunConfig`; its ``scenario`` key names a scenario file in
``recipes/scenario/`` (or gives a mapping with ``base: NAME`` plus overrides). Scenario files
may themselves extend another one through ``base``. Sources are merged in this order, each
checked as it is merged, so an error names the file it came from:

    schema defaults <- scenario base chain <- recipe <- command-line overrides
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dcsched.errors import ConfigError
from dcsched.paths import SCENARIO_DIR, shipped_file

# --------------------------------------------------------------------------- scenario schema
@dataclass
class DCDataConfig:
    """Your own hourly series for one data centre (docs/data-format.md); "" = the region's shipped file."""

    prices: str = ""  # CSV: Datetime (UTC), price_usd_per_mwh
    carbon: str = ""  # CSV: Datetime (UTC), carbon_g_per_kwh
    weather: str = ""  # CSV: Datetime (UTC), temp_c, cloud_pct, wind_10m_ms (PV and wind follow from it)
    workload: str = ""  # CSV: Datetime (UTC), relative_load (replaces the arrival shape and daily level)


DC_TASK = "dc"  # the recipe key ``task`` for the data centres of its scenario (else a Gymnasium task, docs/tasks.md)

# A run's folder name (``name=``): no path separator, no leading '.' or '-'. '=' and '+' are allowed: the
# experiment layer names a cell's run after its folder (RunSpec.dirname: "paper3__eta=0.2__DRESS-SAC__s0").
RUN_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._=+-]*"


@dataclass
class DCConfig:
    """One data centre / AIGC service provider (MODEL.md section 2)."""

    region: str = MISSING  # price, weather and carbon region id, e.g. US-CAL-CISO
    model: str = MISSING  # diffusion model key with a quality artifact, e.g. sdxl
    gpu: str = "A100"  # GPU type (A100 | H100): sets the idle power default
    num_gpus: int = MISSING  # G_n
    tau_step_s: float = MISSING  # seconds per denoising step at f_max
    tau_fixed_s: float = MISSING  # seconds per job independent of steps
    energy_step_j: float = MISSING  # joules per denoising step at f_max
    energy_fixed_j: float = MISSING  # joules per job independent of steps
    idle_power_w: float = MISSING  # per GPU
    price_usd_per_image: float = MISSING  # rho_i, at full quality, before revenue_scale
    arrival_weight: float = MISSING  # w_i, share of the total arrivals originating here
    quality_artifact: str = ""  # path to a quality curve JSON; "" = checkpoints/quality/<model>_default.json
    data: DCDataConfig = field(default_factory=DCDataConfig)  # your own price/carbon/weather/workload files


@dataclass
class ClassesConfig:
    """Job classes (MODEL.md section 3)."""

    names: list[str] = field(default_factory=lambda: ["short", "long"])  # job class names
    deadline_s: list[float] = field(default_factory=lambda: [5.0, 60.0])  # deadline D_k per class, s
    mix: list[float] = field(default_factory=lambda: [0.5, 0.5])  # share of arrivals per class
    late_penalty_factor: list[float] = field(default_factory=lambda: [1.0, 0.5])  # psi / rho
    drop_penalty_factor: float = 2.0  # psi_drop / rho


@dataclass
class BatchConfig:
    """Deferrable batch work (MODEL.md section 11; docs/model.md, "Deferrable batch work")."""

    share: float = 0.0  # p_b, share of all arrivals that is batch work; 0 = no batch class (the interactive mix scales to 1 - p_b)
    deadline_slots: int = 24  # D_b, slots from arrival to the deadline (24 = 2 h at 300 s slots)
    horizon_slots: int = 48  # slots from arrival after which unserved batch work is dropped (>= deadline_slots)
    price_factor: float = 0.5  # rho_b / rho: price of a full-quality batch image relative to the DC's interactive price
    late_penalty_factor: float = 0.25  # psi_b / rho_b, per batch job served after its deadline
    obs_buckets: int = 4  # the observation sums each DC's queue into this many equal slices of the horizon


# scenario keys added after results were recorded, with the default that reproduces the behaviour
# before them: a scenario holding the default hashes as if the key did not exist (scenario_identity)
SCENARIO_LATER_DEFAULTS = {"batch": dataclasses.asdict(BatchConfig())}


def scenario_identity(scenario: dict) -> dict:
    """A scenario's dict as results hash it: its data files by content (``data_identity``) and
    the keys of :data:`SCENARIO_LATER_DEFAULTS` left out while they hold their defaults, so that
    every cell and bound recorded before such a key keeps its hash."""
    from dcsched.data.user_files import data_identity

    data = data_identity(scenario)
    for key, default in SCENARIO_LATER_DEFAULTS.items():
        if data.get(key, default) == default:
            data.pop(key, None)
    return data


@dataclass
class ArrivalsConfig:
    total_per_slot: float = 3638.0  # lambda-bar, jobs per slot over all origins
    shape: str = "alibaba_gentd26"  # hour-of-day shape source
    smooth_hours: int = 3  # circular moving average width
    floor: float = 0.1  # floor of the normalised shape
    phase_shift_h: float = -8.0  # shift of the hour-of-day shape, h
    daily_variation: str = "none"  # none | sustaindc (day-to-day level from the yearly CPU-load series)
    stochastic: bool = True  # False: expected arrivals (deterministic mode)


@dataclass
class TransferConfig:
    cost_matrix: str = "aws"  # network price list
    gb_per_job: float = 0.0015  # 1.5 MB per image job
    delay_same_continent_s: float = 0.07  # network delay between DCs on one continent, s
    delay_other_continent_s: float = 0.25  # network delay across continents, s


@dataclass
class EnergyConfig:
    """Power, cooling, renewables, battery and grid (MODEL.md section 6)."""

    base_power_w_per_8_gpus: float = 150.0  # server base power, W per 8 GPUs
    pue_base: float = 1.1  # PUE(T) = pue_base + pue_slope_per_c · max(0, T − pue_threshold_c)
    pue_slope_per_c: float = 0.01  # PUE increase per °C above the threshold
    pue_threshold_c: float = 20.0  # outdoor temperature above which PUE rises, °C
    full_load_pue: float = 1.2  # used only to size PV, wind and battery
    pv_kwp_per_full_kw: float = 0.5  # PV size, kWp per kW of full-load power
    wind_kw_per_full_kw: float = 0.3  # wind capacity, kW per kW of full-load power
    battery_hours: float = 2.0  # battery energy, h at its power rating
    battery_power_per_full_kw: float = 0.5  # battery power, kW per kW of full-load power
    eta_charge: float = 0.95  # charging efficiency
    eta_discharge: float = 0.95  # discharging efficiency
    soc_min: float = 0.1  # lowest state of charge, fraction
    soc_max: float = 0.9  # highest state of charge, fraction
    soc_init: float = 0.5  # state of charge at the start of each day, fraction
    degradation_usd_per_kwh: float = 0.01  # battery wear, $ per kWh of throughput
    sell_price_factor: float = 0.8  # sell price = factor × buy price
    carbon_price_usd_per_t: float = 0.0  # charged on the carbon of grid purchases (a utility term); 0 = reported only
    price_scale: float = 1.0  # multiplies every electricity price
    control: str = "heuristic"  # heuristic | learned
    charge_percentile: float = 30.0  # heuristic: charge at or below this price percentile
    discharge_percentile: float = 70.0  # heuristic: discharge at or above this price percentile
    percentile_window_h: int = 24  # heuristic: window of past prices for the percentiles, h
    curtail_at_negative_price: bool = True  # curtail renewables rather than sell at a negative price
    renewables: bool = True  # False: PV and wind removed (ablation)
    battery: bool = True  # False: battery removed (ablation)


@dataclass
class ScenarioConfig:
    name: str = MISSING  # scenario id (its file name under recipes/scenario/)
    description: str = ""  # free text shown by `dcsched list`
    base: str = ""  # name of a scenario this one extends
    slot_s: float = 300.0  # slot length Δt, s
    slots_per_day: int = 288  # slots per episode T (one day)
    year: int = 2023  # the traces' year: 2023 ships; another needs every DC's data.prices/carbon/weather
    test_day_modulus: int = 7  # test days: day_of_year % modulus == remainder (day_of_year from 1)
    test_day_remainder: int = 6  # see test_day_modulus
    revenue_scale: float = 1.0  # multiplies every rho (paper3_energy); never applied silently
    steps_grid: list[int] = field(default_factory=lambda: list(range(6, 43, 4)))  # denoising-step levels a policy may choose
    freq_levels: list[float] = field(default_factory=lambda: [0.6, 0.7, 0.8, 0.9, 1.0])  # GPU frequency levels, fraction of f_max
    dvfs_delta: float = 0.85  # δ of τ(f) = τ_step (δ f_max / f + 1 − δ)
    allow_transfer: bool = True  # False: every job is served where it arrives (ablation)
    classes: ClassesConfig = field(default_factory=ClassesConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)  # deferrable batch work (share 0: none)
    arrivals: ArrivalsConfig = field(default_factory=ArrivalsConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    dcs: list[DCConfig] = field(default_factory=list)
    stress: list[str] = field(default_factory=list)  # stresses applied to every day: NAME or NAME:key=value,... (`dcsched list stress`)


# --------------------------------------------------------------------------- run schema
@dataclass
class EnvConfig:
    num_envs: int = 16  # parallel environments stepped as one batch
    reward_mode: str = "sparse"  # dense | sparse | episodic
    violation_threshold: float = 0.05  # v_max of the sparse reward
    action_encoding: str = "continuous"  # continuous | discrete
    transfer_logit_scale: float = 5.0  # softmax temperature of the continuous transfer logits
    transfer_min_share: float = 1e-3  # shares below this are zeroed (exact one-hot intents)
    transfer_chunks: int = 1  # discrete encoding: chunks per (origin, class) row, each with its own destination
    steps_mode: str = "absolute"  # absolute (the step action is the level) | headroom (levels below the highest one the DC completes on time: the hybrid agent)
    observe_faults: bool = False  # add the fault state (share of GPUs up now and next slot, links up) to the observation
    dtype: str = "float32"  # float32 | float64 (tests use float64 for 1e-6 checks)
    normalize_obs: bool = True  # scale observations to about unit range
    split: str = "train"  # days trained on: train (every non-test day) | fit (train minus the val days: a validated study) | test | all; docs/guide.md#day-splits
    device: str = "cpu"  # cpu | cuda | cuda:N: the env, networks, replay buffer and shaper all live here


@dataclass
class AgentConfig:
    """Policy agent: the keys every algorithm has. Each algorithm declares the rest in its own
    dataclass, a subclass of this one registered with it (``AGENTS.add(name, cls, description,
    config=...)``, :mod:`dcsched.agents.configs`); :func:`load_recipe` types the ``agent`` group by
    the one ``agent.name`` chooses, so a key another algorithm owns is refused. Its replay buffer,
    optimisers and network widths are the groups ``replay_buffer``, ``optim`` and ``network``
    (named as in TorchRL's sota-implementations)."""

    name: str = "sac"  # a registered algorithm: sac | td3 | ppo | mappo | ippo, or a plugin's (`dcsched list`)
    gamma: float = 0.99  # discount factor
    warmup_frames: int = 5000  # random actions (off-policy) or collection only (on-policy), no updates, before this many frames


@dataclass
class ReplayBufferConfig:
    """The off-policy agents' replay buffer (TorchRL ``ReplayBuffer`` over a ``LazyTensorStorage``)."""

    size: int = 1_000_000  # capacity, transitions
    batch_size: int = 256  # transitions sampled per gradient update


@dataclass
class OptimConfig:
    """The policy agent's optimisers (Adam) and update schedule. The reward agent has its own
    learning rates under ``shaper``."""

    lr_actor: float = 3e-4  # actor learning rate
    lr_critic: float = 1e-3  # critic learning rate
    lr_alpha: float = 1e-4  # learning rate of the entropy temperature (MODEL.md 8: "alpha 1e-4")
    utd_ratio: float = 1.0  # off-policy: gradient updates per batched environment step (one step = num_envs frames)


@dataclass
class NetworkConfig:
    """The policy agent's networks (the reward agent's widths are under ``shaper``)."""

    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])  # actor and critic MLP widths


# keys that moved to the TorchRL-named groups (2026-11-28): old -> new. A recipe or override with an
# old key is refused with its new name; a checkpoint's stored config is migrated on load; the
# experiment cells' config hash is taken in the old layout, so recorded cells stay valid.
MOVED_KEYS: dict[str, str] = {
    "agent.buffer_size": "replay_buffer.size",
    "agent.batch_size": "replay_buffer.batch_size",
    "agent.lr_actor": "optim.lr_actor",
    "agent.lr_critic": "optim.lr_critic",
    "agent.lr_alpha": "optim.lr_alpha",
    "agent.utd": "optim.utd_ratio",
    "agent.hidden_sizes": "network.hidden_sizes",
}


@dataclass
class ShaperConfig:
    """Reward agent of DRESS-style shaping (MODEL.md section 8)."""

    name: str = "none"  # none | dress | mlp_rs | dress_nocond | dress_pbrs | placebo_rs | noise_rs
    eta: float = 0.4  # weight of r^A in the policy agent's critic target
    latent_dim: int = 128  # latent size M of the diffusion chain
    denoising_steps: int = 5  # reverse diffusion steps W
    beta_min: float = 0.1  # b_min of the VP noise schedule
    beta_max: float = 10.0  # b_max of the VP noise schedule
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])  # reward agent noise-net and critic widths
    cond_hidden: int = 256  # condition encoder width
    time_embedding_dim: int = 16  # sinusoidal step embedding size
    gamma: float = 0.99  # the reward agent's discount factor
    tau: float = 0.005  # the reward agent's soft target update rate
    lr_actor: float = 3e-4  # the reward agent's actor learning rate
    lr_critic: float = 1e-3  # the reward agent's critic learning rate
    alpha_init: float = 1.0  # the reward agent's entropy temperature at the start, auto-tuned (target entropy -1)
    lr_alpha: float = 1e-4  # learning rate of the reward agent's temperature
    fixed_alpha: bool = False  # True: keep alpha at alpha_init
    rs_learning_starts: int = 5000  # frames the reward agent trains (from its first update) before r^A enters the target
    # the per-provider agents (agent.name mappo | ippo) only:
    per_agent: str = "shared"  # shared: one reward agent for every provider | per_provider: one each
    updates_per_batch: int = 64  # the reward agents' SAC steps per collected on-policy batch
    batch_size: int = 256  # rows per reward-agent step (drawn from the collected batch)


@dataclass
class LoggerConfig:
    wandb_mode: str = "offline"  # offline | disabled | online
    project: str = "dcsched"  # W&B project
    csv: bool = True  # also write csv/version_K/metrics.csv


@dataclass
class CollectorConfig:
    """Where environment steps run (docs/scaling.md). ``inprocess``: the learner's process (exact
    resume); ``process``: TorchRL MultiSyncCollector over ``num_workers`` processes; ``ray``: TorchRL
    RayCollector over ``num_workers`` Ray actors. env.num_envs is split evenly over the workers;
    worker w's env is seeded with seed + w. Policy weights reach the workers through TorchRL's weight
    synchronisation after every batch of updates."""

    backend: str = "inprocess"  # inprocess | process | ray
    num_workers: int = 1  # collector processes or Ray actors
    ray_address: str = ""  # ray backend: "" = local instance (loopback), else a cluster address


@dataclass
class TrainerConfig:
    total_frames: int = 100_000  # environment frames of training (the only stop criterion)
    frames_per_batch: int = 1024  # frames per collector batch
    checkpoint_every_batches: int = 20  # one Lightning "epoch"; a checkpoint is written after each
    keep_all_checkpoints: bool = False  # False: only last.ckpt
    accelerator: str = "cpu"  # cpu | gpu | auto; must agree with env.device (dcsched/training/placement.py)
    progress: bool = True  # show the progress bar
    compile: bool = False  # torch.compile the agent's loss module, forward and backward (docs/performance.md)
    compile_mode: str = "default"  # torch.compile mode when compile is true: default | reduce-overhead | max-autotune


@dataclass
class EvalConfig:
    days: str = "test"  # days evaluated after training: test | train | all
    max_days: int = 0  # 0 = all days of the split
    policies: Optional[list[str]] = field(default_factory=lambda: ["local_only", "random"])  # null: no eval after training
    with_bound: bool = False  # also solve the LP bound of each evaluated day (adds % of bound)
    episodes: int = 10  # a Gymnasium task (task: gym:...): whole episodes evaluated after training (policies unused)


@dataclass
class RunConfig:
    name: str = "run"  # run name: the run folder is out_dir/NAME-sSEED-TIMESTAMP
    seed: int = 0  # seed of the env, the networks and sampling
    out_dir: str = "runs"  # folder the run folder goes into
    resume: str = ""  # a last.ckpt to continue ('' = a fresh run)
    task: str = DC_TASK  # dc (the scenario's data centres) | gym:ENV_ID | gym:sparse:ENV_ID (a Gymnasium task; docs/tasks.md)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    replay_buffer: ReplayBufferConfig = field(default_factory=ReplayBufferConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    shaper: ShaperConfig = field(default_factory=ShaperConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


ENUMS: dict[str, tuple[str, ...]] = {
    "env.reward_mode": ("dense", "sparse", "episodic"),
    "env.action_encoding": ("continuous", "discrete"),
    "env.steps_mode": ("absolute", "headroom"),
    "env.split": ("train", "fit", "test", "all"),  # never val: the validation days stay unseen
    "env.dtype": ("float32", "float64"),
    "agent.critic_loss": ("l2", "smooth_l1", "l1"),
    "agent.constraint": ("none", "violation"),
    "shaper.per_agent": ("shared", "per_provider"),
    "logger.wandb_mode": ("offline", "disabled", "online"),
    "scenario.energy.control": ("heuristic", "learned"),
    "scenario.arrivals.shape": ("alibaba_gentd26", "flat"),
    "scenario.arrivals.daily_variation": ("none", "sustaindc"),
    "scenario.transfer.cost_matrix": ("aws",),
    "collector.backend": ("inprocess", "process", "ray"),
    "trainer.accelerator": ("cpu", "gpu", "auto"),
    "trainer.compile_mode": ("default", "reduce-overhead", "max-autotune"),
}

# inclusive numeric ranges (None: unbounded on that side), checked like ENUMS
RANGES: dict[str, tuple[float | None, float | None]] = {
    "env.num_envs": (1, None),
    "eval.episodes": (1, None),
    "env.transfer_chunks": (1, None),
    "env.violation_threshold": (0.0, 1.0),
    "seed": (0, 2**32 - 1),  # numpy's seed range (torch's is wider)
    # a sanity cap, not a physical one: 10^10 frames is weeks of training at the rates measured here
    # (docs/performance.md); a larger value is almost always a typo (1e12)
    "trainer.total_frames": (1, 10**10),
    "optim.lr_actor": (0.0, None),
    "optim.lr_critic": (0.0, None),
    "optim.lr_alpha": (0.0, None),
    "trainer.frames_per_batch": (1, None),
    "trainer.checkpoint_every_batches": (1, None),
    "eval.max_days": (0, None),
    "agent.gamma": (0.0, 1.0),
    "replay_buffer.batch_size": (1, None),
    "replay_buffer.size": (1, None),
    "optim.utd_ratio": (0.0, None),
    "agent.warmup_frames": (0, None),
    "agent.cost_limit": (0.0, 1.0),
    "agent.lr_lagrange": (0.0, None),
    "agent.lagrange_init": (0.0, None),
    "shaper.eta": (0.0, 1.0),
    "shaper.denoising_steps": (1, None),
    "shaper.latent_dim": (1, None),
    "collector.num_workers": (1, None),
}


def _moved_error(source: str, old: str) -> ConfigError:
    return ConfigError(source, old, f"this key moved to '{MOVED_KEYS[old]}' (the config groups replay_buffer, "
                       "optim and network are named as in TorchRL)", MOVED_KEYS[old])


def _move(data: dict, src: str, dst: str) -> None:
    """Move the value at dotted ``src`` of a plain nested dict to dotted ``dst`` (if present)."""
    *src_heads, src_leaf = src.split(".")
    node = data
    for part in src_heads:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    if src_leaf not in node:
        return
    value = node.pop(src_leaf)
    *dst_heads, dst_leaf = dst.split(".")
    node = data
    for part in dst_heads:
        node = node.setdefault(part, {})
    node[dst_leaf] = value


def migrate_moved_keys(data: dict) -> dict:
    """A stored run config (a checkpoint's, a run folder's) with the keys of :data:`MOVED_KEYS` at
    their old places, moved to the new ones (in place; returns ``data``)."""
    for old, new in MOVED_KEYS.items():
        _move(data, old, new)
    return data


def legacy_layout(data: dict) -> dict:
    """The inverse of :func:`migrate_moved_keys` (in place): the layout the experiment cells' config
    hashes were first taken in, so that a cell recorded before the move keeps its hash."""
    for old, new in MOVED_KEYS.items():
        _move(data, new, old)
    for group in {new.split(".")[0] for new in MOVED_KEYS.values()}:
        if data.get(group) == {}:
            data.pop(group)
    return data


def _range_text(lo, hi) -> str:
    if hi is None:
        return f">= {lo}"
    return f"{lo} to {hi}" if lo is not None else f"<= {hi}"


# --------------------------------------------------------------------------- loading
def _schema_keys(node_type: Any, key_path: str) -> list[str]:
    """Allowed keys at ``key_path`` (for error messages): the fields of ``node_type`` when the failing
    node's dataclass is known (e.g. the chosen algorithm's ``agent`` config), else of the RunConfig
    schema's dataclass at that path."""
    if dataclasses.is_dataclass(node_type):
        return [f.name for f in dataclasses.fields(node_type)]
    obj: Any = RunConfig
    for part in [p for p in key_path.split(".") if p][:-1]:
        if dataclasses.is_dataclass(obj):
            ftypes = {f.name: f for f in dataclasses.fields(obj)}
            if part not in ftypes:
                return []
            f = ftypes[part]
            obj = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if isinstance(obj, list) and part == "dcs":
                obj = DCConfig
        elif part.isdigit() and obj is DCConfig:
            continue
        else:
            return []
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    return []


def _moved_hint(key: str) -> str:
    """'; ... moved to ...' when ``key`` is (close to) a key of :data:`MOVED_KEYS`, else ''."""
    close = difflib.get_close_matches(key, list(MOVED_KEYS), n=1, cutoff=0.85)
    return f"; '{close[0]}' moved to '{MOVED_KEYS[close[0]]}'" if close else ""


def _allowed_hint(key: str, node_type: Any = None) -> str | None:
    keys = _schema_keys(node_type, key)
    if not keys:
        return None
    close = difflib.get_close_matches(key.split(".")[-1], keys, n=1)
    return ", ".join(keys) + (f"; closest: '{close[0]}'" if close else "") + _moved_hint(key)


def as_config_error(err: OmegaConfBaseException, source: str, prefix: str = "") -> ConfigError:
    """An OmegaConf error as a ConfigError naming ``source`` (a file or "command line") and the key
    (under ``prefix``), with the allowed keys or values where they are known."""
    key = getattr(err, "full_key", None) or "?"
    if prefix and not key.startswith(prefix):
        key = f"{prefix}.{key}" if key != "?" else prefix
    msg = getattr(err, "msg", None) or str(err).splitlines()[0]
    allowed = None
    if "not in" in msg or "Key '" in msg:
        allowed = _allowed_hint(key, getattr(err, "object_type", None))
        if allowed is not None:
            msg = "unknown key"
    elif "Value '" in msg:
        msg = msg.split("\n")[0]
    return ConfigError(source, key, msg, allowed)


def scenario_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    from dcsched.registry import SCENARIOS  # the shipped files, plus any a user registered

    if name_or_path in SCENARIOS:
        return Path(SCENARIOS.get(name_or_path))
    candidate = shipped_file(name_or_path, SCENARIO_DIR)
    if candidate.is_file() and candidate.suffix in (".yaml", ".yml"):
        return candidate
    allowed = SCENARIOS.names()
    close = difflib.get_close_matches(name_or_path, allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError("scenario", "scenario", f"unknown scenario '{name_or_path}'{hint}", ", ".join(allowed))


YAML_MAX_BYTES = 1_000_000  # a recipe, scenario or experiment file is a few kB; a 10 MB one took minutes to parse


def read_yaml(path: Path) -> DictConfig:
    """A YAML file holding a non-empty mapping; a ConfigError naming the file otherwise. Files over
    :data:`YAML_MAX_BYTES` and anchors / aliases (``&a`` / ``*a``: a few hundred bytes of nested
    aliases expand to billions of nodes and hang the loader) are refused before parsing."""
    import yaml

    if not path.exists():
        raise ConfigError(str(path), "<file>", "file not found")
    if path.is_file() and path.stat().st_size > YAML_MAX_BYTES:
        raise ConfigError(str(path), "<file>", f"{path.stat().st_size:,} bytes: too large for a recipe",
                          f"at most {YAML_MAX_BYTES:,} bytes")
    try:
        if any(isinstance(t, (yaml.AliasToken, yaml.AnchorToken)) for t in yaml.scan(path.read_text())):
            raise ConfigError(str(path), "<file>", "YAML anchors and aliases (&name, *name) are not supported",
                              "every value written out")
    except yaml.YAMLError:
        pass  # the loader below reports the syntax error
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # YAML syntax
        raise ConfigError(str(path), "<file>", f"not valid YAML: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(str(path), "<root>", "the file must hold a mapping")
    if len(cfg) == 0:
        raise ConfigError(str(path), "<file>", "the file is empty (a recipe or scenario needs at least one key)")
    return cfg


_SCHEMAS: dict[type, DictConfig] = {}


def schema(cls: type) -> DictConfig:
    """A fresh typed DictConfig of the dataclass ``cls`` holding its defaults: a copy of one built
    once per process (``OmegaConf.structured`` costs about 60 ms for RunConfig, a copy about 10 ms,
    and an experiment's expansion loads a recipe per cell)."""
    if cls not in _SCHEMAS:
        _SCHEMAS[cls] = OmegaConf.structured(cls)
    return copy.deepcopy(_SCHEMAS[cls])


def _merge_scenario_file(base: DictConfig, name_or_path: str, seen: tuple[str, ...] = ()) -> DictConfig:
    path = scenario_path(name_or_path)
    raw = read_yaml(path)
    parent = raw.get("base", "") or ""
    if parent:
        if parent in seen:
            raise ConfigError(str(path), "base", f"circular scenario base chain {seen + (parent,)}")
        base = _merge_scenario_file(base, parent, seen + (str(name_or_path),))
    try:
        return OmegaConf.merge(base, raw)
    except OmegaConfBaseException as err:
        raise as_config_error(err, str(path), "scenario") from err


def _validate_blaming_overrides(scenario: DictConfig, source: str, overrides: list[str]) -> None:
    """:func:`dcsched.scenarios.validate_scenario`, with a refused key that a command-line override
    set (``overrides``: ``scenario.KEY=VALUE`` items) blamed on the command line, not on the file."""
    from dcsched.scenarios import validate_scenario

    try:
        validate_scenario(scenario, source)
    except ConfigError as err:
        given = {o.partition("=")[0] for o in overrides}
        if err.key in given or any(err.key.startswith(g + ".") for g in given):
            raise ConfigError("command line", err.key, err.problem, err.allowed) from None
        raise


def load_scenario(name_or_path: str, overrides: list[str] | None = None) -> ScenarioConfig:
    """Load and validate a scenario by name (``recipes/scenario/NAME.yaml``) or path."""
    cfg = _merge_scenario_file(schema(ScenarioConfig), name_or_path)
    if overrides:
        cfg = _merge_overrides(cfg, overrides, prefix="scenario")
    given = [f"scenario.{o}" for o in overrides or []]
    cfg = _finish(cfg, str(scenario_path(name_or_path)), prefix="scenario",
                  overridden=tuple(o.partition("=")[0] for o in given))
    _validate_blaming_overrides(cfg, str(scenario_path(name_or_path)), given)
    return cfg


def override_value(node, leaf: str, value: str, key: str) -> Any:
    """The value of a ``key=value`` override of ``node.leaf``: a string field takes ``value``
    verbatim (a path such as ``[v3].csv`` or ``runs/a #1`` is not YAML to parse, nor a comment to
    cut) unless it is quoted whole (``""``, ``'a b'``: YAML unquotes it); any other is parsed as YAML (numbers, booleans, null, lists such as ``[64,64]``), and a
    value YAML cannot parse is a ConfigError naming ``key``."""
    import yaml
    from omegaconf.nodes import StringNode

    if isinstance(node, DictConfig) and leaf in node and isinstance(node._get_node(leaf), StringNode):
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        if not quoted:
            return value

    try:
        parsed = OmegaConf.from_dotlist([f"v={value}"])["v"]
    except yaml.YAMLError as err:
        raise ConfigError("command line", key, f"cannot parse '{value}' ({str(err).splitlines()[0]})",
                          "a number, true/false, a string, or a list such as [64,64]") from None
    return OmegaConf.to_container(parsed) if isinstance(parsed, (DictConfig, ListConfig)) else parsed


def _merge_overrides(cfg: DictConfig, overrides: list[str], prefix: str = "") -> DictConfig:
    for item in overrides:
        if "=" not in item:
            raise ConfigError("command line", item, "overrides must look like key=value")
        key, _, value = item.partition("=")
        if not prefix and key in MOVED_KEYS:
            raise _moved_error("command line", key)
        try:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            parsed = override_value(node, leaf, value, f"{prefix}.{key}" if prefix else key)
            if node is None or (isinstance(node, DictConfig) and leaf not in node):
                raise ConfigError("command line", f"{prefix}.{key}" if prefix else key, "unknown key",
                                  _allowed_hint(f"{prefix}.{key}" if prefix else key,
                                                OmegaConf.get_type(node) if isinstance(node, DictConfig) else None))
            if isinstance(node, ListConfig) and (not leaf.isdigit() or int(leaf) >= len(node)):
                raise ConfigError("command line", f"{prefix}.{key}" if prefix else key,
                                  f"list index out of range (length {len(node)})")
            OmegaConf.update(cfg, key, parsed, merge=True)
        except OmegaConfBaseException as err:
            raise as_config_error(err, "command line", prefix) from err
    return cfg


def _not_finite(node: Any, path: str = "") -> str | None:
    """The dotted key of the first NaN or infinite number in a config, or None."""
    import math

    if isinstance(node, dict):
        return next((bad for k, v in node.items() if (bad := _not_finite(v, f"{path}{k}."))), None)
    if isinstance(node, list):
        return next((bad for i, v in enumerate(node) if (bad := _not_finite(v, f"{path}{i}."))), None)
    return path[:-1] if isinstance(node, float) and not math.isfinite(node) else None


def _finish(cfg: DictConfig, source: str, prefix: str = "", overridden: tuple[str, ...] = ()) -> DictConfig:
    """Resolve interpolations, check MISSING values, NaN and infinite numbers, enum-like strings and
    ranges. A refused value set by a command-line override (``overridden``: its keys) is blamed on the
    command line, any other on ``source``."""
    def blame(key: str) -> str:
        return "command line" if key in overridden else source

    try:
        OmegaConf.resolve(cfg)
        missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as err:
        raise as_config_error(err, source, prefix) from err
    if missing:
        key = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise ConfigError(source, key, "required value is missing")
    bad = _not_finite(OmegaConf.to_container(cfg))
    if bad is not None:
        key = f"{prefix}.{bad}" if prefix else bad
        raise ConfigError(blame(key), key, f"{OmegaConf.select(cfg, bad)} is not a finite number", "a finite number")
    for path, allowed in ENUMS.items():
        rel = path
        if prefix:
            if not path.startswith(prefix + "."):
                continue
            rel = path[len(prefix) + 1 :]
        value = OmegaConf.select(cfg, rel)
        if value is not None and value not in allowed:
            raise ConfigError(blame(path), path, f"'{value}' is not allowed", ", ".join(allowed))
    if not prefix:
        for path, (lo, hi) in RANGES.items():
            value = OmegaConf.select(cfg, path)
            if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
                raise ConfigError(blame(path), path, f"{value} is out of range", _range_text(lo, hi))
    return cfg


def agent_config_class(name: str, source: str = "recipe") -> type:
    """The config dataclass algorithm ``name`` registered with (:class:`AgentConfig` when it declared
    none); an unknown name is a ConfigError naming ``source``, ``agent.name`` and the registered names."""
    from dcsched.errors import UnknownComponentError
    from dcsched.registry import AGENTS

    try:
        cls = AGENTS.config_of(name)
    except UnknownComponentError as err:
        raise ConfigError(source, "agent.name", f"unknown algorithm '{name}'", ", ".join(AGENTS.names())) from err
    cls = cls or AgentConfig
    if not (isinstance(cls, type) and issubclass(cls, AgentConfig)):
        raise ConfigError(source, "agent.name", f"algorithm '{name}' registered a config that is not a dataclass "
                          "derived from dcsched.config.AgentConfig", "a subclass of AgentConfig")
    return cls


def run_schema(agent_name: str, source: str = "recipe") -> DictConfig:
    """A fresh typed RunConfig holding its defaults, its ``agent`` group typed by the config
    dataclass of algorithm ``agent_name`` (so the group holds that algorithm's keys and no other's)."""
    cfg = schema(RunConfig)
    cfg.agent = schema(agent_config_class(agent_name, source))
    cfg.agent.name = agent_name
    return cfg


def chosen_agent(raw: DictConfig | dict, overrides: list[str]) -> str:
    """``agent.name`` as a recipe (``raw``) and its ``agent.name=`` overrides (the last wins) choose it."""
    name = (raw.get("agent") or {}).get("name", AgentConfig.name) if raw is not None else AgentConfig.name
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "agent.name":
            name = value
    return str(name)


def load_config_file(path: Path, schema_cls: type, overrides: list[str] | None = None) -> DictConfig:
    """The one loader of a typed config file other than a run recipe (e.g. a calibration recipe):
    ``schema_cls``'s defaults <- the YAML file <- ``key=value`` overrides, then interpolations
    resolved and required values checked. Every error names the file or the command line and the key."""
    raw = read_yaml(Path(path))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema_cls), raw)
    except OmegaConfBaseException as err:
        raise as_config_error(err, str(path)) from err
    cfg = _merge_overrides(cfg, list(overrides or []))
    return _finish(cfg, str(path))


def load_recipe(recipe: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """Load a run recipe, compose its scenario, apply overrides, validate. Returns a typed DictConfig."""
    path = shipped_file(recipe)
    raw = read_yaml(path)
    overrides = list(overrides or [])
    scenario_spec = raw.get("scenario", "paper3")
    for item in overrides:  # a scenario=NAME override swaps the whole scenario
        if item.startswith("scenario="):
            scenario_spec = item.partition("=")[2]
    overrides = [o for o in overrides if not o.startswith("scenario=")]
    scen_extra: Any = None
    if isinstance(scenario_spec, DictConfig):
        scen_extra = scenario_spec
        scenario_name = scenario_spec.get("base", "")
        if not scenario_name:
            raise ConfigError(str(path), "scenario.base", "a scenario mapping must name its base scenario")
    elif isinstance(scenario_spec, str):
        scenario_name = scenario_spec
    else:
        raise ConfigError(str(path), "scenario", "must be a scenario name or a mapping with 'base'")
    chosen_on_command_line = any(o.partition("=")[0] == "agent.name" for o in overrides)
    base = run_schema(chosen_agent(raw, overrides), "command line" if chosen_on_command_line else str(path))
    try:
        scen = _merge_scenario_file(schema(ScenarioConfig), scenario_name)
    except ConfigError as err:
        if err.source == "scenario":
            raise ConfigError(str(path), "scenario", err.problem, err.allowed) from err
        raise
    base.scenario = scen
    body = OmegaConf.masked_copy(raw, [k for k in raw.keys() if k != "scenario"])
    for old_key in MOVED_KEYS:
        group, leaf = old_key.split(".")
        if isinstance(body.get(group), DictConfig) and leaf in body[group]:
            raise _moved_error(str(path), old_key)
    try:
        cfg = OmegaConf.merge(base, body)
        if scen_extra is not None:
            extra = OmegaConf.masked_copy(scen_extra, [k for k in scen_extra.keys() if k != "base"])
            cfg = OmegaConf.merge(cfg, OmegaConf.create({"scenario": extra}))
    except OmegaConfBaseException as err:
        raise as_config_error(err, str(path)) from err
    cfg = _merge_overrides(cfg, overrides)
    cfg = _finish(cfg, str(path), overridden=tuple(o.partition("=")[0] for o in overrides))
    if not re.fullmatch(RUN_NAME_PATTERN, str(cfg.name)):  # the run folder's name: no path in it
        raise ConfigError(str(path) if "name" not in {o.partition("=")[0] for o in overrides} else "command line",
                          "name", f"'{cfg.name}' is not a folder name", "letters, digits, '.', '_', '-', '=' and "
                          "'+', not starting with '.' or '-' (out_dir= chooses the folder the run goes in)")

    _validate_blaming_overrides(cfg.scenario, str(path) if scen_extra is not None else str(scenario_path(scenario_name)),
                                overrides)
    return cfg


def save_resolved(cfg: DictConfig, out_dir: Path, filename: str = "config.yaml") -> Path:
    """Write the fully resolved config beside a run's outputs (atomically)."""
    from dcsched.io import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename
    atomic_write_text(target, OmegaConf.to_yaml(cfg, resolve=True))
    return target


def to_container(cfg: DictConfig | ListConfig) -> Any:
    return OmegaConf.to_container(cfg, resolve=True)


# --------------------------------------------------------------------------- key listing
def _field_comments(cls) -> dict[str, str]:
    """``name: type = default  # meaning`` -> {name: meaning}, read from the dataclass's source (the
    comment next to each default is the one place a key's meaning is written)."""
    import inspect
    import re

    comments = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):  # inherited keys too
        for line in inspect.getsource(klass).splitlines():
            m = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
    return comments


def describe_keys(cfg: DictConfig) -> list[tuple[str, Any, Any, str]]:
    """Every key of a run config: (dotted key, value in ``cfg``, schema default, meaning). List
    items of data centres appear as ``scenario.dcs.N.field``."""
    rows: list[tuple[str, Any, Any, str]] = []

    def walk(cls, node, prefix: str) -> None:
        comments = _field_comments(cls)
        defaults = cls()
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            value = node[f.name] if node is not None and f.name in node else None
            default = getattr(defaults, f.name, None)
            if dataclasses.is_dataclass(default):
                own = OmegaConf.get_type(value) if isinstance(value, DictConfig) else None
                walk(own if dataclasses.is_dataclass(own) else type(default), value, key + ".")
            elif f.name == "dcs":
                for i, dc in enumerate(value or []):
                    walk(DCConfig, dc, f"{key}.{i}.")
            else:
                if isinstance(value, (DictConfig, ListConfig)):
                    value = OmegaConf.to_container(value)
                rows.append((key, value, "???" if default is MISSING else default, comments.get(f.name, "")))

    walk(RunConfig, cfg, "")
    return rows