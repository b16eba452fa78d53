"""Learning algorithms (dcsched.agents.algorithm.Algorithm subclasses), each registered with its
config dataclass (dcsched.agents.configs) and trained by one harness (dcsched.training.harness.Agent,
a LightningModule on a TorchRL collector). Importing registers them."""

from dcsched.agents.configs import MAPPOConfig, PPOConfig, SACConfig, TD3Config
from dcsched.registry import AGENTS


class _LazyAlgorithm:
    """Registry entry that imports Lightning/TorchRL only when an algorithm is used."""

    def __init__(self, module: str, cls: str):
        self.module, self.cls = module, cls

    def resolve(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)


AGENTS.add("sac", _LazyAlgorithm("dcsched.agents.off_policy", "SAC"), "Soft actor-critic (TorchRL SACLoss), optional shaper",
           config=SACConfig)
AGENTS.add("ppo", _LazyAlgorithm("dcsched.agents.ppo", "PPO"), "PPO (TorchRL ClipPPOLoss + GAE), on-policy",
           config=PPOConfig)
AGENTS.add("mappo", _LazyAlgorithm("dcsched.agents.mappo", "MAPPO"),
           "MAPPO: one PPO agent per DC on its own observation, a centralised critic in training", config=MAPPOConfig)
AGENTS.add("ippo", _LazyAlgorithm("dcsched.agents.mappo", "IPPO"),
           "IPPO: one PPO agent per DC, each critic on its own observation", config=MAPPOConfig)
AGENTS.add("td3", _LazyAlgorithm("dcsched.agents.off_policy", "TD3"), "TD3 (TorchRL TD3Loss), optional shaper",
           config=TD3Config)
