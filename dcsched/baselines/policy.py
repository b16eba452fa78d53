"""The one policy interface every method answers, learned or not.

A policy is bound to an environment once (it may read the env's parameters, action encoding and,
for planners, the days' exogenous data ``env.exo``), then called on the env's tensordict each
slot and returns an action in the env's encoding, shape [B, D].
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from dcsched.envs.actions import encode_continuous, encode_discrete
from dcsched.envs.dc_env import DCSchedEnv
from dcsched.sim.kernels import Decision


class Policy:
    """Base class. Subclasses implement :meth:`act` (or :meth:`decide` for decision-level rules)."""

    name = "policy"
    # What a results table calls it (docs/results.md, "The ladder"): "rule" (a fixed decision rule),
    # "planner" (an optimiser over what it can observe or forecast), "learned" (a trained checkpoint)
    family = "rule"
    # True when each env row (each evaluated day) is decided from that row and that day's data
    # alone, so that the days can be evaluated in any grouping with the same per-day outcomes
    # (dcsched.eval.chunked; tested per policy in tests/test_chunked_eval.py). Off by default.
    day_separable = False

    @property
    def clairvoyant(self) -> bool:
        """True when the policy reads days or slots it could not observe yet (a perfect-foresight
        oracle, an MPC on perfect forecasts): a bound's relative, not a baseline to beat."""
        return False

    @property
    def exact_levels(self) -> bool:
        """True when a planner decides in the env's own levels (one step level per DC and class,
        one frequency per DC), False when it rounds a relaxation's mixed levels."""
        return False

    def bind(self, env: DCSchedEnv) -> "Policy":
        self.env = env
        return self

    def reset(self) -> None:
        """Called at the start of each evaluation episode."""

    def act(self, td: TensorDictBase) -> torch.Tensor:
        return self.encode(self.decide(td))

    def decide(self, td: TensorDictBase) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, d: Decision) -> torch.Tensor:
        env = self.env
        if getattr(env, "steps_mode", "absolute") != "absolute":
            from dcsched.errors import ConfigError

            raise ConfigError("env config", "env.steps_mode", f"policy '{self.name}' gives absolute step levels; "
                              "evaluate it on an env with absolute steps", "absolute")
        if env.action_encoding == "continuous":
            return encode_continuous(env.params, d, env.transfer_logit_scale).to(env.device)
        return encode_discrete(env.params, d, env.transfer_chunks).to(env.device)
