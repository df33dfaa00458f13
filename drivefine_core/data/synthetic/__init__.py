"""Synthetic NAVSIM-format world: nuPlan-style maps, OpenScene logs and camera images."""
