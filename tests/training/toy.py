"""Feature samples derived from metric caches: training data for tests and benchmarks without the feature
pipeline (random image at the model's size; ego state, history and target from the cache)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from drivefine_core.features.tokenizer import encode
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import ModelParams


def sample_from_cache(cache: MetricCache, p: ModelParams, generator: torch.Generator | None = None) -> dict[str, Any]:
    """History = the cache's 2 Hz history poses (MetricCache.history_poses);
    target = the logged human future (nan rows, when the log ends early, become 0)."""
    hist = cache.history_poses()
    target = np.nan_to_num(np.asarray(cache.human_future, dtype=np.float64))
    return {
        "token": cache.token,
        "log_name": cache.log_name,
        "image": torch.rand(3 * p.num_views, p.image_height, p.image_width, generator=generator),
        "command": torch.as_tensor(cache.driving_command, dtype=torch.float32),
        "velocity": torch.as_tensor(cache.ego_velocity, dtype=torch.float32),
        "acceleration": torch.as_tensor(cache.ego_acceleration, dtype=torch.float32),
        "history": torch.as_tensor(hist, dtype=torch.float32),
        "target": torch.as_tensor(target, dtype=torch.float32),
        "target_tokens": torch.as_tensor(encode(target), dtype=torch.long),
    }
