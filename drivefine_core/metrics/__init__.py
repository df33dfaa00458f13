"""NAVSIM scoring engine: metric cache, batched LQR + bicycle simulator, PDMS v1, EPDMS v2, navhard,
PDM-Closed reference planner and baseline agents. Results are always labelled "v1/..." or "v2/...".

Public entry points (import from the submodules; nothing is imported here so the package stays light):
  cache.MetricCache, cache_io.write_metric_caches / read_metric_caches
  cache_builder.build_metric_cache(scene, map_api, params) ; cache_stage.build_metric_cache_dir(...)
  scorer.score_trajectories(caches, trajectories (S, G, 8, 3), version) -> {"v1/pdms": (S, G), ...}
  evaluate.evaluate_agents(caches, {name: agent}) -> (split means, per-scene DataFrame)
  navhard.score_navhard(groups, agent, reactive) ; navhard_scenes.synthetic_scene(frames, start, ...)
  reactive_agents.simulate_reactive(cache, ego_states, placements) ; reactive_scoring.score_reactive(...)
  pdm_closed.pdm_closed(cache) ; baselines.constant_velocity_agent / human_agent / EgoStatusMLP
  reference_scorer.reference_score(cache, plan, version)  (plain, slow; for cross-checks)
"""
