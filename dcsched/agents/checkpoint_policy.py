"""Evaluate a trained agent's checkpoint like any other policy."""

from __future__ import annotations

from pathlib import Path

import copy

import torch

from dcsched.baselines.policy import Policy
from dcsched.errors import ConfigError


class CheckpointPolicy(Policy):
    """The deterministic (mean) action of a trained actor."""

    def __init__(self, module, path: Path):
        self.module = module.eval()
        self.name = Path(path).stem
        self.path = path

    def bind(self, env):
        super().bind(env)
        if env.obs_dim != self.module.obs_dim or env.action_spec.shape[-1] != self.module.act_dim:
            raise ConfigError(str(self.path), "scenario",
                              f"checkpoint was trained on '{self.module.cfg.scenario.name}' with obs/action sizes "
                              f"{self.module.obs_dim}/{self.module.act_dim}; this env has {env.obs_dim}/{env.action_spec.shape[-1]}")
        return self

    def act(self, td):
        return self.module.act(td).to(self.env.device)


def load_checkpoint_policy(path: Path, env) -> CheckpointPolicy:
    from dcsched.registry import AGENTS

    path = Path(path)
    if not path.exists():
        raise ConfigError("command line", "--policy", f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = copy.deepcopy(ckpt["hyper_parameters"]["cfg"])
    cls = AGENTS.get(cfg["agent"]["name"])
    # the policy runs where the evaluation env runs, whichever device it was trained on
    cfg["env"]["device"] = str(env.device)
    cfg["trainer"]["accelerator"] = "auto"
    module = cls.load_from_checkpoint(path, map_location=env.device, weights_only=False, cfg=cfg)
    return CheckpointPolicy(module, path).bind(env)
