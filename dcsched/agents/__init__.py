"""Learning agents (LightningModules on TorchRL collectors). Importing registers them."""

from dcsched.registry import AGENTS


class _LazyAgent:
    """Registry entry that imports Lightning/TorchRL only when an agent is used."""

    def __init__(self, module: str, cls: str):
        self.module, self.cls = module, cls

    def resolve(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def load_from_checkpoint(self, *args, **kwargs):
        return self.resolve().load_from_checkpoint(*args, **kwargs)

    def train_from_config(self, cfg, console=None) -> int:
        from dcsched.agents.train import train_from_config

        train_from_config(cfg, console=console, agent_cls=self.resolve())
        return 0


AGENTS.add("sac", _LazyAgent("dcsched.agents.off_policy", "SACAgent"), "Soft actor-critic (TorchRL SACLoss), optional shaper")
AGENTS.add("ppo", _LazyAgent("dcsched.agents.ppo", "PPOAgent"), "PPO (TorchRL ClipPPOLoss + GAE), on-policy")
AGENTS.add("mappo", _LazyAgent("dcsched.agents.mappo", "MultiAgentPPOAgent"),
           "MAPPO: one PPO agent per DC on its own observation, a centralised critic in training")
AGENTS.add("ippo", _LazyAgent("dcsched.agents.mappo", "IndependentPPOAgent"),
           "IPPO: one PPO agent per DC, each critic on its own observation")
AGENTS.add("td3", _LazyAgent("dcsched.agents.off_policy", "TD3Agent"), "TD3 (TorchRL TD3Loss), optional shaper")
