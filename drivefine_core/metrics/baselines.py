"""Baseline agents: constant velocity, human log replay and a tiny ego-status MLP.

An agent is a callable `agent(caches) -> (S, 8, 3)` ego-frame trajectories, one per cache."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.params import BaselineParams

Agent = Callable[[Sequence[MetricCache]], np.ndarray]
_T = np.arange(1, K.PLAN_POSES + 1) * K.PLAN_DT


def constant_velocity_agent(caches: Sequence[MetricCache]) -> np.ndarray:
    """Straight ahead at the current speed."""
    speed = np.array([np.linalg.norm(c.ego_velocity) for c in caches])
    out = np.zeros((len(caches), K.PLAN_POSES, 3))
    out[..., 0] = speed[:, None] * _T[None]
    return out


def human_agent(caches: Sequence[MetricCache]) -> np.ndarray:
    """Log replay; scenes whose log ends early fall back to constant velocity."""
    cv = constant_velocity_agent(caches)
    return np.stack([c.human_future if np.all(np.isfinite(c.human_future)) else cv[i] for i, c in enumerate(caches)])


def ego_status_features(caches: Sequence[MetricCache]) -> np.ndarray:
    return np.stack([np.concatenate([c.ego_velocity, c.ego_acceleration, c.driving_command]) for c in caches]).astype(np.float32)


class EgoStatusMLP:
    """Ego velocity, acceleration and driving command -> 8 future poses. Deterministic for a given seed."""

    def __init__(self, params: BaselineParams | None = None):
        self.params = params or BaselineParams()
        torch.manual_seed(self.params.seed)
        h = self.params.mlp_hidden
        self.net = nn.Sequential(nn.Linear(8, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, K.PLAN_POSES * 3))
        self.scale = np.ones(K.PLAN_POSES * 3, dtype=np.float32)
        self.x_mean = np.zeros(8, dtype=np.float32)
        self.x_std = np.ones(8, dtype=np.float32)

    def fit(self, caches: Sequence[MetricCache]) -> list[float]:
        """Full-batch Adam on the scenes with a complete logged future; returns the loss curve."""
        usable = [c for c in caches if np.all(np.isfinite(c.human_future))]
        if not usable:
            raise ValueError("EgoStatusMLP.fit: no scene has a complete human future (field 'human_future')")
        feats = ego_status_features(usable)
        self.x_mean, self.x_std = feats.mean(axis=0), np.maximum(feats.std(axis=0), 1e-3).astype(np.float32)
        x = torch.from_numpy((feats - self.x_mean) / self.x_std)
        y_np = np.stack([c.human_future.reshape(-1) for c in usable]).astype(np.float32)
        self.scale = np.maximum(np.abs(y_np).max(axis=0), 1e-3).astype(np.float32)
        y = torch.from_numpy(y_np / self.scale)
        torch.manual_seed(self.params.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.params.mlp_lr)
        losses = []
        for _ in range(self.params.mlp_epochs):
            opt.zero_grad()
            loss = nn.functional.mse_loss(self.net(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses

    @torch.no_grad()
    def predict(self, caches: Sequence[MetricCache]) -> np.ndarray:
        x = (ego_status_features(caches) - self.x_mean) / self.x_std
        out = self.net(torch.from_numpy(x.astype(np.float32))).numpy() * self.scale
        return out.reshape(len(caches), K.PLAN_POSES, 3).astype(np.float64)

    def __call__(self, caches: Sequence[MetricCache]) -> np.ndarray:
        return self.predict(caches)
