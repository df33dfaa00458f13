"""SFT and hybrid RL for the planners on one accelerate-based loop (no MLflow here: curves leave through a
`log_metrics(dict, step)` callback the stage wires to drivefine_core.tracking)."""
