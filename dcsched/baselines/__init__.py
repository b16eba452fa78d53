"""Baselines and bounds: rule policies, the perfect-foresight LP, MPC."""
