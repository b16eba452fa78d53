"""Each built-in algorithm's ``agent`` keys: one dataclass per algorithm, registered with it in
:mod:`dcsched.agents` (``AGENTS.add("sac", ..., config=SACConfig)``). A key's comment is its
documentation (`dcsched list --keys RECIPE` prints it). A plugin declares its own the same way
(``examples/custom_algorithm/a2c.py``). Plain dataclasses: no torch import, so loading a recipe
does not load the learning stack.

The classes form a small tree: what SAC and TD3 share (:class:`OffPolicyConfig`), what the
harness's on-policy loop reads (:class:`OnPolicyConfig`: PPO, MAPPO, IPPO and on-policy plugins
derive from it), and each algorithm's own keys below."""

from __future__ import annotations

from dataclasses import dataclass, fields

from dcsched.config import AgentConfig


@dataclass
class OffPolicyConfig(AgentConfig):
    """Keys shared by the off-policy actor-critics (twin Q, soft target update)."""

    tau: float = 0.005  # soft target update rate
    critic_loss: str = "l2"  # l2 (squared TD error, as SAC, TD3 and DRESS) | smooth_l1 (TorchRL's default) | l1


@dataclass
class SACConfig(OffPolicyConfig):
    """Soft actor-critic (MODEL.md section 8 defaults)."""

    alpha_init: float = 1.0  # SAC entropy temperature at the start, auto-tuned (target entropy -dim(a))
    fixed_alpha: bool = False  # True: keep alpha at alpha_init


@dataclass
class TD3Config(OffPolicyConfig):
    """Twin delayed DDPG."""

    policy_noise: float = 0.2  # TD3 target smoothing noise std
    noise_clip: float = 0.5  # TD3 target smoothing noise clip
    exploration_noise: float = 0.1  # TD3 Gaussian exploration std
    policy_delay: int = 2  # TD3: critic updates per actor update


@dataclass
class OnPolicyConfig(AgentConfig):
    """Keys of the harness's on-policy loop (GAE advantages, epochs of shuffled minibatches); an
    on-policy algorithm's config derives from this class."""

    gae_lambda: float = 0.95  # GAE lambda
    entropy_coef: float = 0.01  # entropy bonus weight
    ppo_epochs: int = 4  # passes over each collected batch
    minibatch_size: int = 256  # rows per minibatch


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO, and Lagrangian PPO with ``constraint: violation``."""

    clip_epsilon: float = 0.2  # PPO ratio clip
    constraint: str = "none"  # none | violation (Lagrangian PPO: mean late+dropped share per slot <= cost_limit)
    cost_limit: float = 0.05  # Lagrangian PPO: the limit on the mean per-slot late+dropped share
    lr_lagrange: float = 1.0  # Lagrangian PPO: dual-ascent step of the multiplier per batch (reward units per unit share)
    lagrange_init: float = 0.0  # Lagrangian PPO: the multiplier at the start


@dataclass
class MAPPOConfig(PPOConfig):
    """MAPPO and IPPO: one PPO agent per DC (dcsched/envs/multi_agent.py); no constraint (their
    capabilities refuse one)."""

    share_params: bool = True  # one actor (and critic) network for every agent; False: one per agent


# The configs whose union was the one flat ``agent`` group before each algorithm declared its own
# (2026-12-07). Experiment cells are hashed in that layout, so recorded cells stay valid.
FLAT_LAYOUT = (SACConfig, TD3Config, MAPPOConfig)


def flat_agent_defaults() -> dict:
    """The flat ``agent`` group's defaults: the union of :data:`FLAT_LAYOUT`'s fields (each key's
    default is the same in every class that has it)."""
    out: dict = {}
    for cls in FLAT_LAYOUT:
        defaults = cls()
        for f in fields(cls):
            value = getattr(defaults, f.name)
            if f.name != "name" and out.setdefault(f.name, value) != value:
                raise ValueError(f"agent.{f.name} has two defaults: {out[f.name]} and {value}")
    return out
