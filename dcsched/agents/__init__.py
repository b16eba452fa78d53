"""Learning agents (LightningModules on TorchRL collectors). Importing registers them."""
