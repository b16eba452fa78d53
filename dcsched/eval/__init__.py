"""Evaluation: run any policy on chosen days, write the per-slot trace, the summary and plots."""
