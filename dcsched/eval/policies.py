"""Resolve a policy for evaluation: a registered name with options (`greedy_myopic:levels=milp`) or a
training checkpoint path, bound to an env as a :class:`~dcsched.baselines.policy.Policy`."""

from __future__ import annotations

import inspect
from pathlib import Path

from dcsched.baselines.policy import Policy
from dcsched.registry import POLICIES


def make_policy(name_or_path: str, env, seed: int = 0) -> Policy:
    """A registered policy with its options, or a training checkpoint, bound to ``env``."""
    path = Path(name_or_path)
    if path.suffix == ".ckpt":
        from dcsched.agents.checkpoint_policy import load_checkpoint_policy

        return load_checkpoint_policy(path, env)
    return construct_policy(name_or_path, seed).bind(env)


def construct_policy(name_and_options: str, seed: int = 0) -> Policy:
    """``NAME[:key=value,...]`` of the policy registry, constructed but not bound to an env (what
    it is, e.g. its ``family`` and ``clairvoyant``, without data); an unknown name or option is a
    ConfigError naming the allowed ones."""
    name, _, opts = name_and_options.partition(":")
    cls = POLICIES.get(name)
    params = [q for q in inspect.signature(cls).parameters if q not in ("args", "kwargs")]
    kwargs = {"seed": seed} if "seed" in params else {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        if key not in params or key == "seed":
            from dcsched.errors import ConfigError

            allowed = [q for q in params if q != "seed"]
            raise ConfigError("command line", f"--policy {name}:{key}", "unknown option", ", ".join(allowed) or "none")
        default = inspect.signature(cls).parameters[key].default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            try:
                kwargs[key] = type(default)(value)
            except ValueError:
                from dcsched.errors import ConfigError

                raise ConfigError("command line", f"--policy {name}:{key}",
                                  f"'{value}' is not a number", f"a {type(default).__name__}, e.g. {default}") from None
        else:
            kwargs[key] = int(value) if value.lstrip("-").isdigit() else value
    return cls(**kwargs)
