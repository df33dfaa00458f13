"""Synthetic NAVSIM-format world: nuPlan-style maps, OpenScene logs and camera images.

Public entry points (import them from their modules; this package imports nothing on its own):
  world.generate_world(root, GenerateParams, progress) -> WorldSummary   everything on disk
  map_gen.generate_map(GenerateParams, index) -> SyntheticMap             one town (.network is a RoadNetwork)
  navhard.perturbed_starts(frames, current_index, NavhardStartParams)     stage-2 starts, data only
Pipeline inside one log: agents.cast_log -> simulate.simulate (10 Hz, logged at 2 Hz)
-> log_frames.build_frames (OpenScene dicts) -> render.render (JPEGs).
"""
