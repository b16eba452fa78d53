"""Benchmarks shipped with the package: `dcsched bench env|train|gpu` (benchmarks/ holds thin entry points)."""
