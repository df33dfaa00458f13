"""MetricCache: everything the scorers need about one scene, precomputed once, as numpy arrays.

All geometry is in the scene's ego frame (origin = the current rear axle, x forward, y left), so planner
trajectories (ego frame) need no transform and numbers stay small. `origin` (global pose) converts back.
Polygons are stored flat: vertices (V, 2) + offsets (P + 1,), polygon p = vertices[offsets[p]:offsets[p+1]]
(exterior ring, not closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter

import numpy as np

from drivefine_core.metrics.constants import NUM_OBS_STEPS, NUM_PAST_STATES, PLAN_POSES

DRIVABLE_LAYERS = ("roadblock", "roadblock_connector", "intersection", "carpark")
INTERSECTION_LAYER = DRIVABLE_LAYERS.index("intersection")
LANE_LAYERS = ("lane", "lane_connector")


@dataclass
class MetricCache:
    token: str
    log_name: str
    timestamp_us: int
    map_location: str
    origin: np.ndarray  # (3,) global [x, y, heading] of the current rear axle
    ego_velocity: np.ndarray  # (2,) body frame [vx, vy]
    ego_acceleration: np.ndarray  # (2,) body frame [ax, ay]
    driving_command: np.ndarray  # (4,) one-hot int
    human_future: np.ndarray  # (8, 3) logged future poses at 0.5 s; nan rows if the log ends early
    past_states: np.ndarray  # (14, 7) [x, y, heading, vx, vy, ax, ay] at -1.5..-0.2 s (10 Hz), body v/a
    reference: np.ndarray  # (51, 3) PDM-Closed poses at 0..5 s (10 Hz); row 0 = rear axle projected on its path
    centerline: np.ndarray  # (K, 2) route centerline in the driving direction
    drivable_vertices: np.ndarray  # (V, 2)
    drivable_offsets: np.ndarray  # (P + 1,) int64
    drivable_layers: np.ndarray  # (P,) int8 index into DRIVABLE_LAYERS
    drivable_ids: list[str]
    lane_vertices: np.ndarray  # (V, 2)
    lane_offsets: np.ndarray  # (P + 1,) int64
    lane_is_connector: np.ndarray  # (P,) bool
    lane_on_route: np.ndarray  # (P,) bool
    lane_ids: list[str]
    light_lane_index: np.ndarray  # (L,) int64 index into the lane polygons (on-route connectors with a light)
    light_red: np.ndarray  # (L, 51) bool per 0.1 s step (2 Hz states held)
    agent_boxes: np.ndarray  # (N, 51, 5) [x, y, heading, length, width]; nan where not observed
    agent_valid: np.ndarray  # (N, 51) bool
    agent_velocity: np.ndarray  # (N, 51, 2) ego-frame velocity; nan where not observed
    agent_names: list[str]
    agent_tokens: list[str]
    speed_limit: float = float("nan")  # m/s of the route lane at the start; nan = unknown
    ego_steering: float = 0.0
    ego_yaw_rate: float = 0.0
    is_synthetic: bool = False
    # (N,) bool: detected in the current frame (what PDM-Closed observes); empty = unknown, agent_valid[:, 0]
    agent_seen_at_start: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    _runtime: dict = field(default_factory=dict, repr=False, compare=False)  # lazily built indexes

    # ---- convenience -------------------------------------------------------------------------
    @property
    def num_agents(self) -> int:
        return int(self.agent_boxes.shape[0])

    def runtime(self, name: str, make):
        """Lazily built derived data (indexes, reference rows), rebuilt when any field was reassigned.
        Edit arrays by assignment (cache.x = new), not in place, or call invalidate()."""
        key = tuple(map(id, _GET_PUBLIC(self)))
        entry = self._runtime.get(name)
        if entry is None or entry[0] != key:
            entry = (key, make())
            self._runtime[name] = entry
        return entry[1]

    def remember(self, name: str, value):
        """Store derived data built elsewhere (precomputed tables), valid until a field is reassigned."""
        self._runtime[name] = (tuple(map(id, _GET_PUBLIC(self))), value)
        return value

    def recalled(self, name: str):
        """The derived data `name` if it is built and still valid, else None (nothing is built)."""
        entry = self._runtime.get(name)
        return entry[1] if entry is not None and entry[0] == tuple(map(id, _GET_PUBLIC(self))) else None

    def invalidate(self) -> None:
        self._runtime.clear()

    def forget(self, name: str) -> None:
        """Drop one piece of derived data (it is rebuilt when next needed): scorers that hold thousands of
        scenes drop each scene's unpacked grids once its batch is scored."""
        self._runtime.pop(name, None)

    def history_poses(self) -> np.ndarray:
        """(4, 3) the ego poses at -1.5, -1.0, -0.5 s and now (the origin), ego frame: the 2 Hz history the
        feature builder gives the planners, read from the 10 Hz past states."""
        return np.concatenate([self.past_states[[0, 5, 10], :3], np.zeros((1, 3))])

    def drivable_polygon(self, p: int) -> np.ndarray:
        return self.drivable_vertices[self.drivable_offsets[p] : self.drivable_offsets[p + 1]]

    def lane_polygon(self, p: int) -> np.ndarray:
        return self.lane_vertices[self.lane_offsets[p] : self.lane_offsets[p + 1]]

    def validate(self, source: str = "<memory>") -> "MetricCache":
        """Raise ValueError naming the source, scene token and field on any inconsistent shape."""

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{source}: metric cache {self.token!r} (log {self.log_name!r}) field {name!r}: {why}")

        expect = {
            "origin": (3,),
            "ego_velocity": (2,),
            "ego_acceleration": (2,),
            "driving_command": (4,),
            "human_future": (PLAN_POSES, 3),
            "past_states": (NUM_PAST_STATES, 7),
            "reference": (NUM_OBS_STEPS, 3),
        }
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise bad(name, f"shape {getattr(self, name).shape}, expected {shape}")
        for name in ("origin", "ego_velocity", "ego_acceleration", "reference"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise bad(name, "contains non-finite values")
        if self.centerline.ndim != 2 or self.centerline.shape[1] != 2 or len(self.centerline) < 2:
            raise bad("centerline", f"needs (K>=2, 2), got {self.centerline.shape}")
        for prefix, n_ids in (("drivable", len(self.drivable_ids)), ("lane", len(self.lane_ids))):
            verts, offs = getattr(self, f"{prefix}_vertices"), getattr(self, f"{prefix}_offsets")
            if verts.ndim != 2 or verts.shape[1] != 2:
                raise bad(f"{prefix}_vertices", f"needs (V, 2), got {verts.shape}")
            if len(offs) != n_ids + 1 or offs[0] != 0 or offs[-1] != len(verts) or np.any(np.diff(offs) < 3):
                raise bad(f"{prefix}_offsets", "must run 0..V with >= 3 vertices per polygon, one per id")
        n_lanes = len(self.lane_ids)
        for name in ("lane_is_connector", "lane_on_route"):
            if getattr(self, name).shape != (n_lanes,):
                raise bad(name, f"needs ({n_lanes},)")
        if self.drivable_layers.shape != (len(self.drivable_ids),):
            raise bad("drivable_layers", "one layer code per drivable polygon")
        if np.any(self.light_lane_index >= n_lanes) or np.any(self.light_lane_index < 0):
            raise bad("light_lane_index", "index outside the lane polygons")
        if self.light_red.shape != (len(self.light_lane_index), NUM_OBS_STEPS):
            raise bad("light_red", f"needs ({len(self.light_lane_index)}, {NUM_OBS_STEPS})")
        n = self.num_agents
        if self.agent_boxes.shape != (n, NUM_OBS_STEPS, 5):
            raise bad("agent_boxes", f"needs (N, {NUM_OBS_STEPS}, 5), got {self.agent_boxes.shape}")
        if self.agent_valid.shape != (n, NUM_OBS_STEPS) or self.agent_velocity.shape != (n, NUM_OBS_STEPS, 2):
            raise bad("agent_valid/agent_velocity", "shape does not match agent_boxes")
        if len(self.agent_seen_at_start) not in (0, n):
            raise bad("agent_seen_at_start", f"needs 0 or {n} entries, got {len(self.agent_seen_at_start)}")
        if len(self.agent_names) != n or len(self.agent_tokens) != n:
            raise bad("agent_names/agent_tokens", "one entry per agent")
        if not np.all(np.isfinite(self.agent_boxes[self.agent_valid])):
            raise bad("agent_boxes", "non-finite box at an observed step")
        return self


_PUBLIC_FIELDS = tuple(f.name for f in fields(MetricCache) if not f.name.startswith("_"))
_GET_PUBLIC = attrgetter(*_PUBLIC_FIELDS)


def array_fields() -> list[str]:
    return [f.name for f in fields(MetricCache) if f.type in ("np.ndarray",)]


def flatten_polygons(polygons: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """list of (M_i, 2) rings -> (vertices (V, 2), offsets (P + 1,))."""
    rings = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    rings = [r[:-1] if len(r) > 3 and np.allclose(r[0], r[-1]) else r for r in rings]
    offsets = np.zeros(len(rings) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rings])
    verts = np.concatenate(rings, axis=0) if rings else np.zeros((0, 2))
    return verts, offsets
