"""Calibration (`dcsched calibrate`): run diffusion pipelines over a grid of step counts, score the
images, time them (and measure energy on NVIDIA GPUs), and fit the quality curve that
:mod:`dcsched.quality` stores as an artifact for the simulator. The application lives here; the
artifact format, the curve families and the metric registry stay in :mod:`dcsched.quality`."""
