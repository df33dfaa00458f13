"""Random and adversarial toy scenes and candidate plans, for the fast-vs-plain cross-check and bench/scorer.py."""

from __future__ import annotations

import numpy as np

from tests.metrics import toy_scenes as T

T_PLAN = np.arange(1, 9) * 0.5


def random_agents(rng: np.random.Generator, n: int, kind: str) -> list[T.ToyAgent]:
    agents = []
    for _ in range(n):
        x = rng.uniform(-15, 70)
        y = rng.choice([0.0, 3.6, -3.6]) + rng.normal(0, 0.5)
        if kind == "intersection" and rng.random() < 0.4:
            x, y = 50 + rng.normal(0, 1), rng.uniform(-40, 40)
        heading = rng.choice([0.0, np.pi, np.pi / 2, -np.pi / 2]) + rng.normal(0, 0.2)
        speed = 0.0 if rng.random() < 0.3 else rng.uniform(0, 12)
        name = rng.choice(["vehicle", "vehicle", "pedestrian", "bicycle", "traffic_cone", "barrier", "generic_object"])
        first = int(rng.integers(0, 30)) if rng.random() < 0.2 else 0
        last = int(rng.integers(first, 51)) if rng.random() < 0.2 else 50
        if rng.random() < 0.1:
            first = last = int(rng.integers(0, 51))
        agents.append(T.ToyAgent(x, y, heading, speed, name, rng.uniform(0.5, 5.5), rng.uniform(0.5, 2.5), first, last))
    return agents


def random_scenes(seed: int, count: int):
    """`count` scenes over the three toy maps; scenes 6k and 6k+1 share a log 0.5 s apart (EC pairs)."""
    rng = np.random.default_rng(seed)
    caches = []
    for i in range(count):
        kind = ("straight", "curve", "intersection")[i % 3]
        agents = random_agents(rng, int(rng.integers(0, 9)), kind)
        speed = float(rng.choice([0.0, rng.uniform(0, 15)]))
        log = f"pair{i // 6}" if i % 6 in (0, 1) else f"log_{i}"
        ts = (i % 6) * 500_000 if i % 6 in (0, 1) else 0
        if kind == "straight":
            c = T.straight_road(agents, ego_speed=speed, ego_accel=float(rng.normal(0, 1)), token=f"s{i}", log_name=log, timestamp_us=ts)
        elif kind == "curve":
            c = T.curved_road(agents, ego_speed=speed, radius=float(rng.uniform(25, 60)), token=f"c{i}", log_name=log, timestamp_us=ts)
        else:
            red = None if rng.random() < 0.3 else int(rng.integers(0, 51))
            c = T.intersection(agents, ego_speed=speed, red_from_step=red, token=f"x{i}", log_name=log, timestamp_us=ts)
        if rng.random() < 0.3:
            c.human_future = c.human_future * rng.uniform(0.0, 1.0)  # a hesitant human: EP / filter paths
        caches.append(c)
    return caches


def random_candidates(rng: np.random.Generator, cache, g: int) -> np.ndarray:
    """Mix of plausible and adversarial plans: scaled human, lane changes, swerves, reversing, spins, noise."""
    out = np.zeros((g, 8, 3))
    for j in range(g):
        mode = j % 8
        base = cache.human_future.copy()
        if mode == 0:
            p = base * rng.uniform(0, 1.6)
        elif mode == 1:  # lane change left / right
            p = base.copy()
            p[:, 1] += rng.choice([-3.6, 3.6]) * np.clip(T_PLAN / rng.uniform(1, 4), 0, 1)
        elif mode == 2:  # straight line at a random speed and heading
            v, h = rng.uniform(0, 20), rng.normal(0, 0.3)
            p = np.stack([v * T_PLAN * np.cos(h), v * T_PLAN * np.sin(h), np.full(8, h)], -1)
        elif mode == 3:  # hard brake
            v = rng.uniform(2, 15)
            s = np.minimum(v * T_PLAN - 0.5 * 6 * T_PLAN**2, v**2 / 12)
            p = np.stack([s, np.zeros(8), np.zeros(8)], -1)
        elif mode == 4:  # reversing / standing still
            p = np.stack([-rng.uniform(0, 2) * T_PLAN, np.zeros(8), np.zeros(8)], -1)
        elif mode == 5:  # wild noise
            p = base + rng.normal(0, [2.0, 2.0, 0.8], size=(8, 3))
        elif mode == 6:  # spin
            p = base.copy()
            p[:, 2] += np.cumsum(rng.normal(0, 1.5, 8))
        else:  # sharp swerve into the oncoming lane
            p = base.copy()
            p[:, 1] -= 4.0 * np.sin(np.pi * T_PLAN / 4)
        out[j] = p
    return out
