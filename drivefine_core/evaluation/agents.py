"""Planner variants and baselines as scorer agents: callables from metric caches to (N, 8, 3) plans."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from drivefine_core.features.dataset import InMemoryFeatureDataset, collate_features
from drivefine_core.features.row_groups import list_row_groups, read_row_group
from drivefine_core.metrics.baselines import EgoStatusMLP, constant_velocity_agent, human_agent
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.params import BaselineParams
from drivefine_core.models.batch import PlannerBatch
from drivefine_core.models.planner import Planner

Agent = Callable[[Sequence[MetricCache]], np.ndarray]


def reference_plan(cache: MetricCache) -> np.ndarray:
    """The cached PDM-Closed reference (10 Hz, 0..5 s) sampled at the 8 plan times 0.5..4.0 s."""
    return cache.reference[5:41:5]


def pdm_closed_agent(caches: Sequence[MetricCache]) -> np.ndarray:
    return np.stack([reference_plan(c) for c in caches])


class FeatureIndex:
    """Feature rows of a split by scene token, decoded on demand into model batches."""

    def __init__(self, store_uri: str) -> None:
        self.dataset = InMemoryFeatureDataset(store_uri)
        tokens = [t for g in list_row_groups(store_uri) for t in read_row_group(g)["token"].to_pylist()]
        self.row_of = {t: i for i, t in enumerate(tokens)}

    def __contains__(self, token: str) -> bool:
        return token in self.row_of

    def batch(self, tokens: Sequence[str], images_from: dict[str, str] | None = None) -> PlannerBatch:
        """images_from: token -> the token whose camera images replace this scene's (the camera ablation)."""
        missing = [t for t in tokens if t not in self.row_of]
        if missing:
            raise KeyError(f"no features for scene token(s) {missing[:3]} (of {len(missing)})")
        rows = collate_features([self.dataset[self.row_of[t]] for t in tokens])
        if images_from is not None:
            rows["image"] = self.images([images_from[t] for t in tokens])
        return PlannerBatch.of(rows)

    def images(self, tokens: Sequence[str]) -> torch.Tensor:
        """(B, V, 3, H, W) camera views of the feature rows of `tokens`."""
        return torch.stack([self.dataset[self.row_of[t]]["image"] for t in tokens])

    def batch_from_caches(self, caches: Sequence[MetricCache], cameras: dict[str, str]) -> PlannerBatch:
        """Scenes that have no feature row (navhard's stage-2 starts): ego state, command and history poses
        from each metric cache, the camera of the feature row `cameras[token]`."""
        hist = np.stack([c.history_poses() for c in caches])
        return PlannerBatch.of({
            "image": self.images([cameras[c.token] for c in caches]),
            "command": torch.as_tensor(np.stack([c.driving_command for c in caches]), dtype=torch.float32),
            "velocity": torch.as_tensor(np.stack([c.ego_velocity for c in caches]), dtype=torch.float32),
            "acceleration": torch.as_tensor(np.stack([c.ego_acceleration for c in caches]), dtype=torch.float32),
            "history": torch.as_tensor(hist, dtype=torch.float32),
        })


def shuffled_images(caches: Sequence[MetricCache]) -> dict[str, str]:
    """Each scene's camera from a scene of another log (a fixed derangement: logs in a seeded order, every
    scene takes the scene at the same position, modulo, of the next log), so that ego status, history and
    command stay the scene's own while the camera shows somewhere else. With a single log, from the scene
    half the log away."""
    by_log: dict[str, list[str]] = {}
    for c in caches:
        by_log.setdefault(c.log_name, []).append(c.token)
    logs = sorted(by_log)
    np.random.default_rng(0).shuffle(logs)
    if len(logs) == 1:
        tokens = by_log[logs[0]]
        if len(tokens) < 2:
            raise ValueError("the camera ablation needs at least two scenes")
        return {t: tokens[(i + len(tokens) // 2) % len(tokens)] for i, t in enumerate(tokens)}
    out = {}
    for k, log in enumerate(logs):
        other = by_log[logs[(k + 1) % len(logs)]]
        out.update({t: other[i % len(other)] for i, t in enumerate(by_log[log])})
    return out


def planner_agent(planner: Planner, mode: str, features: FeatureIndex, batch_size: int = 32,
                  seed: int = 0, images_from: dict[str, str] | None = None,
                  cameras: dict[str, str] | None = None) -> Agent:
    """The planner as a scorer agent on the feature rows of the scenes; `cameras` (token -> feature token)
    lets it plan scenes without a feature row from their metric caches (FeatureIndex.batch_from_caches)."""
    planner.eval()

    def plan(batch: PlannerBatch, seed_: int) -> np.ndarray:
        on_device = batch.map(lambda t: t.to(planner.device))  # features decode on the CPU; the planner may sit on a GPU
        with torch.no_grad():
            return planner.plan(on_device, mode, seed=seed_).poses.cpu().numpy().astype(np.float64)

    def agent(caches: Sequence[MetricCache]) -> np.ndarray:
        out = np.empty((len(caches), 8, 3))
        for i in range(0, len(caches), batch_size):
            chunk = caches[i : i + batch_size]
            moved = [j for j, c in enumerate(chunk) if cameras is not None and c.token not in features]
            own = [j for j in range(len(chunk)) if j not in set(moved)]
            if own:
                out[[i + j for j in own]] = plan(features.batch([chunk[j].token for j in own], images_from), seed + i)
            if moved:
                out[[i + j for j in moved]] = plan(features.batch_from_caches([chunk[j] for j in moved], cameras or {}),
                                                   seed + i)
        return out

    return agent


class Recorded:
    """Wraps an agent and keeps every plan it made by scene token, so a report draws exactly the
    trajectory that was scored (sampled modes depend on the batch they were planned in)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.plans: dict[str, np.ndarray] = {}

    def __call__(self, caches: Sequence[MetricCache]) -> np.ndarray:
        plans = self.agent(caches)
        self.plans.update({c.token: p for c, p in zip(caches, plans)})
        return plans


def baseline_agents(names: Sequence[str], train_caches: Sequence[MetricCache],
                    params: BaselineParams) -> dict[str, Agent]:
    agents: dict[str, Agent] = {}
    for name in names:
        if name == "constant_velocity":
            agents[name] = constant_velocity_agent
        elif name == "human":
            agents[name] = human_agent
        elif name == "pdm_closed":
            agents[name] = pdm_closed_agent
        elif name == "ego_mlp":
            mlp = EgoStatusMLP(params)
            mlp.fit(train_caches)
            agents[name] = mlp
        else:
            raise ValueError(f"unknown baseline {name!r}")
    return agents
