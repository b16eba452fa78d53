"""Reward shaping (MODEL.md section 8): the DRESS-style diffusion reward agent and its variants."""
