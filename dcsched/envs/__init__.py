"""TorchRL environments over the simulation kernels."""

from dcsched.envs.dc_env import DCSchedEnv, make_env

__all__ = ["DCSchedEnv", "make_env"]
