"""What a learning method is, apart from how it is trained: the Algorithm interface.

An :class:`Algorithm` owns its networks and its TorchRL loss module and knows how to turn a
collector batch into gradient updates. It does not own the env, the collector, the replay buffer,
the counters, the checkpoints or the logging: the training harness
(:class:`dcsched.training.harness.Agent`, a LightningModule) does, for every algorithm alike. The
split follows BenchMARL's Algorithm / Experiment and TorchRL sota-implementations' visible update.

An algorithm declares what it can do in :class:`Capabilities` (on- or off-policy, the action
encodings and constraints it implements, the collector backends it runs on, how a shaper plugs
in, which view of the env it acts on); the harness refuses a recipe outside them by key and value.

To add a method: subclass :class:`Algorithm`, implement ``__init__`` (networks, ``self.loss``),
``make_optimizers`` and ``update`` (and ``prepare`` / ``before_epochs`` / ``minibatch_keys`` for an
on-policy method), then ``AGENTS.add("name", MyAlgorithm, "description")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from tensordict import TensorDictBase
from torch import nn


@dataclass(frozen=True)
class Capabilities:
    """What an algorithm implements. The harness checks a recipe against it before building anything.

    on_policy: batches are used for a few epochs and dropped (True), or replayed (False).
    action_encodings: ``env.action_encoding`` values it can act in.
    constraints: ``agent.constraint`` values it implements.
    collector_backends: ``collector.backend`` values it runs on.
    shaping: how ``shaper.name`` plugs in: ``off_policy`` (a shaper on sampled batches, injected by
        the harness), ``per_agent`` (reward agents per provider, built by the algorithm) or ``none``.
    view: the env it acts on: ``central`` (the batched env) or ``per_provider``
        (:class:`dcsched.envs.multi_agent.MultiAgentDCSchedEnv` over it).
    reward_key: the env reward key the episode statistics sum.
    """

    on_policy: bool
    action_encodings: tuple[str, ...] = ("continuous",)
    constraints: tuple[str, ...] = ("none",)
    collector_backends: tuple[str, ...] = ("inprocess", "process", "ray")
    shaping: str = "off_policy"
    view: str = "central"
    reward_key: str | tuple = "reward"


@dataclass
class UpdateContext:
    """What one gradient update may use from the harness.

    optimizers: the optimizers ``make_optimizers`` returned (Lightning-wrapped), in that order.
    backward: the harness's backward (Lightning's ``manual_backward``).
    frames: environment frames collected so far. updates: gradient updates done before this one.
    diagnose: this update is the last of its logging window (compute diagnostics once per window).
    """

    optimizers: list
    backward: Callable[[torch.Tensor], None]
    frames: int
    updates: int
    diagnose: bool = False


ShaperFactory = Callable[[int, int, int], nn.Module]  # (obs_dim, act_dim, seed) -> a registered shaper


class Algorithm(nn.Module):
    """Networks + loss + update rule of one method. Subclasses set ``name`` and ``capabilities``.

    Built as ``cls(cfg, env, device, make_shaper)``: ``cfg`` the typed run config, ``env`` the env
    of its ``capabilities.view`` (read for specs and one reset; never stepped here), ``device`` the
    training device, ``make_shaper`` a factory of the recipe's registered shaper or None.
    After ``__init__``: ``self.actor``, ``self.loss``, ``self.obs_dim``, ``self.act_dim``.
    """

    name: ClassVar[str] = "algorithm"
    capabilities: ClassVar[Capabilities] = Capabilities(on_policy=False)

    shaper: nn.Module | None

    def __init__(self, cfg, env, device: torch.device, make_shaper: ShaperFactory | None = None):
        super().__init__()
        self.cfg = cfg
        self.train_device = device
        self.shaper = None

    # ------------------------------------------------------------------ acting
    @classmethod
    def actor_for_evaluation(cls, cfg, env) -> nn.Module:
        """The actor network a checkpoint of this algorithm holds (its ``algorithm.actor.*`` weights),
        built for ``env`` (the env of the algorithm's view) with throw-away weights the loader
        replaces. This default builds the whole algorithm on ``env`` (its loss and optimisers are
        never used) and keeps the actor; the built-in algorithms build the actor alone."""
        return cls(cfg, env, torch.device(env.device), None).actor

    def exploration_module(self) -> nn.Module:
        """The module the collector acts with (stochastic)."""
        return self.actor

    def act(self, td: TensorDictBase) -> torch.Tensor:
        """Deterministic action (policy mean) for evaluation."""
        from dcsched.agents import networks

        return networks.mean_action(self.actor, td)

    # ------------------------------------------------------------------ training
    @property
    def loss_call(self) -> Callable:
        """What an update calls the loss through: ``self.loss``, or its ``torch.compile``'d wrapper
        when ``trainer.compile`` is true (built at the first use; kept beside the module, not
        registered as a child, so a checkpoint has the same keys with the switch on or off)."""
        fn = self.__dict__.get("_loss_fn")
        if fn is None:
            from dcsched.agents.compilation import compiled_loss

            trainer = self.cfg.trainer
            fn = compiled_loss(self.loss, bool(trainer.compile), str(trainer.compile_mode))
            object.__setattr__(self, "_loss_fn", fn)
        return fn

    def make_optimizers(self, optim) -> list[torch.optim.Optimizer]:
        """The optimizers of ``optim`` (the recipe's optim group), in a fixed order (checkpoints)."""
        raise NotImplementedError

    def prepare(self, batch: TensorDictBase, frames: int) -> tuple[TensorDictBase, dict[str, float]]:
        """A collector batch [num_envs, steps] -> (what the updates read, metrics). Off-policy: the
        rows the replay buffer stores; on-policy: the batch the minibatches come from."""
        return batch.exclude("outcome", ("next", "outcome")), {}

    def update(self, sample: TensorDictBase, ctx: UpdateContext) -> dict[str, float]:
        """One gradient update on ``sample`` (a replay sample or a minibatch); returns its metrics."""
        raise NotImplementedError

    # on-policy only
    def before_epochs(self, data: TensorDictBase, frames: int) -> dict[str, float]:
        """Write what the minibatches need into ``data`` (advantages, value targets); metrics."""
        return {}

    def minibatch_keys(self) -> list:
        """The keys the loss reads from a minibatch."""
        raise NotImplementedError

    def parameters_to_clip(self) -> list[torch.Tensor]:
        return []

    # ------------------------------------------------------------------ checkpoints
    def extra_state(self) -> dict:
        """State outside the module's parameters and buffers (e.g. a shaper's optimizer)."""
        if self.shaper is not None and hasattr(self.shaper, "optimizer_state"):
            return {"shaper_opt": self.shaper.optimizer_state()}
        return {}

    def load_extra_state(self, extra: dict) -> None:
        if self.shaper is not None and "shaper_opt" in extra:
            self.shaper.load_optimizer_state(extra["shaper_opt"])
