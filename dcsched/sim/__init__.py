"""Simulation kernels: the system model of MODEL.md as pure, batched torch functions."""
