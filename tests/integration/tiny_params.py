"""params.yaml overrides that make the whole pipeline run in a couple of minutes on 2 cores."""

TINY = {
    "generate.num_logs": 3, "generate.frames_per_log": 40, "generate.grid_nodes_x": 3, "generate.grid_nodes_y": 3,
    "generate.image_width": 128, "generate.image_height": 72, "generate.splits": {"train": 0.67, "test": 0.33},
    "generate.workers": 1,
    "ingest.scene_filter.frame_interval": 4,
    "features.image_width": 64, "features.image_height": 32, "features.build_workers": 1,
    "model.width": 32, "model.depth": 2, "model.heads": 2, "model.image_width": 64, "model.image_height": 32,
    "model.vision_width": 16, "model.vision_depth": 1, "model.vision_heads": 2, "model.flow_width": 16,
    "model.mdm_steps": 4,
    "sft.drivefine.steps": 3, "sft.ar.steps": 3, "sft.flow.steps": 3,
    "sft.drivefine.batch_size": 4, "sft.ar.batch_size": 4, "sft.flow.batch_size": 4,
    "sft.drivefine.warmup_steps": 0, "sft.ar.warmup_steps": 0, "sft.flow.warmup_steps": 0,
    "rl.optim.steps": 1, "rl.optim.batch_size": 2, "rl.eval_scenes": 2, "rl.max_samples": 4,
    "rl.validation_logs": 0,  # the 4 RL scenes come from one log: none would be left to hold out
    "rl.grpo.group_size": 2, "rl.grpo.decode_steps": 2, "rl.grpo.merge_tau": 1,
    "rl.refine.online_k": 1, "rl.refine.max_pairs": 2, "rl.flow.group_size": 2,
    "evaluate.modes": ["mdm+refine", "flow"], "evaluate.baselines": ["constant_velocity", "human"],
    "evaluate.report_scenes": 1,
}
