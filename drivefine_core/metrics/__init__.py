"""NAVSIM scoring engine: metric cache, batched LQR + bicycle simulator, PDMS v1, EPDMS v2, navhard,
PDM-Closed reference planner and baseline agents. Results are always labelled "v1/..." or "v2/..."."""
