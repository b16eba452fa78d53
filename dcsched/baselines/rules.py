"""Rule policies: random, local_only (the status quo) and fixed-setting variants."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from dcsched.baselines.policy import Policy
from dcsched.envs.actions import discrete_nvec
from dcsched.envs.headroom import project_steps
from dcsched.registry import POLICIES
from dcsched.sim.kernels import Decision


def nearest_level(levels: torch.Tensor, value: float) -> int:
    return int((levels - value).abs().argmin())


def local_decision(env, steps: float, freq: float, batch: int) -> Decision:
    """Keep every job at its origin, one step count for all classes, one frequency."""
    p = env.params
    N, K = p.num_dcs, p.num_classes
    s_idx = nearest_level(p.steps_grid, steps)
    if float(p.steps_grid[s_idx]) != steps:
        raise ValueError(f"steps={steps} is not on the step grid {p.steps_grid.tolist()}")
    f_idx = nearest_level(p.freq_levels, freq)
    eye = torch.eye(N, dtype=p.capacity_gpu_s.dtype, device=env.device).unsqueeze(-1).expand(N, N, K)
    return Decision(
        transfer=eye.expand(batch, N, N, K).clone(),
        steps_idx=torch.full((batch, N, K), s_idx, dtype=torch.long, device=env.device),
        freq_idx=torch.full((batch, N), f_idx, dtype=torch.long, device=env.device),
        battery_frac=torch.zeros(batch, N, dtype=p.capacity_gpu_s.dtype, device=env.device),
    )


@POLICIES.register("local_only", "status quo: no transfer, fixed 30 denoising steps, full GPU frequency")
class LocalOnly(Policy):
    name = "local_only"
    day_separable = True

    def __init__(self, steps: float = 30, freq: float = 1.0):
        self.steps, self.freq = steps, freq

    def decide(self, td: TensorDictBase) -> Decision:
        return local_decision(self.env, self.steps, self.freq, td.batch_size[0])


@POLICIES.register("random", "uniform random action in the env's encoding (seeded, vectorised)")
class RandomPolicy(Policy):
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def bind(self, env) -> "RandomPolicy":
        super().bind(env)
        self.gen = torch.Generator(device=env.device).manual_seed(self.seed)
        if env.action_encoding == "discrete":
            self.nvec = torch.as_tensor(discrete_nvec(env.params, env.transfer_chunks), device=env.device)
        return self

    def reset(self) -> None:
        self.gen.manual_seed(self.seed)

    def act(self, td: TensorDictBase) -> torch.Tensor:
        B = td.batch_size[0]
        shape = self.env.action_spec.shape[-1]
        u = torch.rand(B, shape, generator=self.gen, device=self.env.device)
        if self.env.action_encoding == "continuous":
            return u * 2.0 - 1.0
        return (u * self.nvec).floor().long().clamp(max=self.nvec - 1)


@POLICIES.register("centre_action", "the centre of the continuous action box (a = 0): about what an untrained "
                                    "actor's mean action does; a learned policy must beat it")
class CentreAction(Policy):
    name = "centre_action"
    day_separable = True

    def bind(self, env) -> "CentreAction":
        super().bind(env)
        if env.action_encoding != "continuous":
            from dcsched.errors import ConfigError

            raise ConfigError("command line", "--encoding", "centre_action needs the continuous encoding", "continuous")
        return self

    def act(self, td: TensorDictBase) -> torch.Tensor:
        return torch.zeros(td.batch_size[0], self.env.action_spec.shape[-1], device=self.env.device)


@POLICIES.register("headroom_fill", "no transfer, one frequency, and the headroom projection's steps: the highest "
                                    "level each DC completes on time this slot, minus margin levels (the hybrid's floor)")
class HeadroomFill(Policy):
    """local_only with the step choice of the hybrid agent's projection (dcsched/envs/headroom.py):
    what the projection alone is worth, with no learned routing, frequency or margin."""

    name = "headroom_fill"
    day_separable = True

    def __init__(self, freq: float = 1.0, margin: int = 0):
        if margin < 0:
            raise ValueError(f"headroom_fill margin must be >= 0 levels, got {margin}")
        self.freq, self.margin = freq, int(margin)

    def decide(self, td: TensorDictBase) -> Decision:
        env = self.env
        d = local_decision(env, float(env.params.steps_grid[0]), self.freq, td.batch_size[0])
        exo = env._exo_slot(td["day_idx"], td["t"].squeeze(-1))
        return project_steps(env.params, d, torch.full_like(d.steps_idx, self.margin), td["arrivals"],
                             td["backlog_work_gpu_s"], exo)
