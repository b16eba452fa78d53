"""Standard control tasks as training envs (``task: gym:ENV_ID`` in a recipe): Gymnasium through
TorchRL's GymWrapper, so that the single-agent recipes (SAC, DRESS-SAC, the shaping controls, TD3,
PPO) run where the reward-shaping papers report their gains (issue #41).

What the DC env gives that such a task has not (the scenario, the LP bound, the day splits, the
outcome record) is simply absent: the run trains on the task's own reward and is evaluated by its
return and success rate (:mod:`dcsched.eval.task_eval`).

Built per env: ``gymnasium.make(ENV_ID)`` (the task's own time limit kept), then
``RescaleAction`` onto [-1, 1] (every dcsched actor acts in that box), optionally
:class:`SparseGoalReward` (``gym:sparse:ENV_ID``: reward 1 on reaching the goal, else 0), wrapped by
TorchRL's GymWrapper. ``num_envs`` copies step in one :class:`torchrl.envs.SerialEnv`; copy ``w``
is seeded with ``seed + w`` (TorchRL's ``set_seed``).
"""

from __future__ import annotations

import torch

from dcsched.config import DC_TASK
from dcsched.errors import ConfigError
GYM_PREFIX = "gym:"
SPARSE_PREFIX = "sparse:"  # gym:sparse:ENV_ID: reward 1 when the episode terminates at the goal, else 0
TASK_ALLOWED = f"{DC_TASK} | gym:ENV_ID | gym:sparse:ENV_ID (ENV_ID a Gymnasium id with a Box action space, e.g. MountainCarContinuous-v0)"


def is_gym_task(task: str) -> bool:
    return str(task).startswith(GYM_PREFIX)


def parse_task(task: str, source: str = "recipe") -> tuple[str, bool]:
    """``gym:[sparse:]ENV_ID`` -> (ENV_ID, sparse); a ConfigError naming ``task`` otherwise."""
    if not is_gym_task(task) or not task[len(GYM_PREFIX):]:
        raise ConfigError(source, "task", f"'{task}' is not a task", TASK_ALLOWED)
    env_id = task[len(GYM_PREFIX):]
    sparse = env_id.startswith(SPARSE_PREFIX)
    env_id = env_id[len(SPARSE_PREFIX):] if sparse else env_id
    if not env_id:
        raise ConfigError(source, "task", f"'{task}' names no Gymnasium id", TASK_ALLOWED)
    return env_id, sparse


def _gymnasium():
    try:
        import gymnasium
    except ImportError as err:  # pinned in pyproject.toml: a broken install, not a user choice
        raise ConfigError("recipe", "task", "gymnasium is not installed (pip install -e . installs it)") from err
    return gymnasium


def check_task(task: str, source: str = "recipe") -> tuple[str, bool]:
    """Refuse an unregistered id or one whose action space is not a Box (by key ``task``)."""
    gym = _gymnasium()
    env_id, sparse = parse_task(task, source)
    if env_id not in gym.registry:
        import difflib

        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        raise ConfigError(source, "task", f"'{env_id}' is not a registered Gymnasium id"
                          + (f" (closest: {', '.join(close)})" if close else ""), TASK_ALLOWED)
    probe = gym.make(env_id)
    try:
        if not isinstance(probe.action_space, gym.spaces.Box):
            raise ConfigError(source, "task", f"'{env_id}' has a {type(probe.action_space).__name__} action space; "
                              "the single-agent recipes act in a continuous box", TASK_ALLOWED)
        if not isinstance(probe.observation_space, gym.spaces.Box) or len(probe.observation_space.shape) != 1:
            raise ConfigError(source, "task", f"'{env_id}' has no flat Box observation", TASK_ALLOWED)
    finally:
        probe.close()
    return env_id, sparse


def _sparse_goal_wrapper_class():
    gym = _gymnasium()

    class SparseGoalReward(gym.Wrapper):
        """Reward 1.0 on the step that terminates the episode (the task's goal: MountainCar's flag,
        a reached target), 0.0 on every other step: the task's shaping terms (action cost, distance)
        are removed, so only reaching the goal is rewarded."""

        def step(self, action):
            obs, _, terminated, truncated, info = self.env.step(action)
            return obs, float(bool(terminated)), terminated, truncated, info

    return SparseGoalReward


def _make_one(env_id: str, sparse: bool):
    """One wrapped task (a picklable factory's body)."""
    from torchrl.envs import GymWrapper

    import numpy as np

    gym = _gymnasium()
    env = gym.make(env_id)
    shape = env.action_space.shape
    env = gym.wrappers.RescaleAction(env, np.full(shape, -1.0, np.float32), np.full(shape, 1.0, np.float32))
    if sparse:
        env = _sparse_goal_wrapper_class()(env)
    return GymWrapper(env, device="cpu")


def make_task_env(task: str, num_envs: int, seed: int, device: str | torch.device = "cpu",
                  source: str = "recipe"):
    """``num_envs`` copies of ``task`` stepped together ([num_envs] batch), float32 observations,
    actions in [-1, 1]^A. The returned env carries ``obs_dim`` and ``task`` like the DC env carries
    its own. CPU only (Gymnasium steps on the CPU; a cuda ``device`` is refused by key)."""
    from functools import partial

    from torchrl.envs import DoubleToFloat, SerialEnv, TransformedEnv

    if torch.device(device).type != "cpu":
        raise ConfigError(source, "env.device", f"a Gymnasium task steps on the CPU, got '{device}'", "cpu")
    env_id, sparse = check_task(task, source)
    env = TransformedEnv(SerialEnv(int(num_envs), partial(_make_one, env_id, sparse), device="cpu"), DoubleToFloat())
    env.set_seed(int(seed))
    obs_dim = int(env.observation_spec["observation"].shape[-1])
    object.__setattr__(env, "obs_dim", obs_dim)
    object.__setattr__(env, "task", task)
    return env


def max_episode_steps(task: str) -> int:
    """The task's own time limit (Gymnasium's ``max_episode_steps``); a task without one is refused."""
    env_id, _ = parse_task(task)
    limit = _gymnasium().spec(env_id).max_episode_steps
    if not limit:
        raise ConfigError("recipe", "task", f"'{env_id}' has no time limit (max_episode_steps)",
                          "a Gymnasium id registered with max_episode_steps")
    return int(limit)


def success(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """Whether an ended episode reached its goal: it terminated (the task's own end) rather than
    being cut by the time limit. Right for goal tasks (MountainCar*, sparse goal variants); a task
    whose termination is a failure (a fall) reports its falls here, and its return says which."""
    return terminated & ~truncated
