"""Training: the one LightningModule harness that trains any registered Algorithm
(:class:`dcsched.training.harness.Agent`), its collectors (in-process, worker processes, Ray),
device placement, loss compilation, atomic checkpoint writes and `dcsched train` itself
(:func:`dcsched.training.train.train_from_config`). The algorithms live one floor down in
:mod:`dcsched.agents`; evaluation of a finished run in :mod:`dcsched.eval`."""
