"""PDM-Closed, the privileged reference planner, computed the way NAVSIM v1.1 builds its metric cache
(docs/navsim-rules.md, last section, lists every rule and what still differs).

Outline: 3 paths (route centreline, then -1 m and +1 m parallel paths) x 5 IDM policies (0.2 .. 1.0 of the
starting lane's speed limit) = 15 proposals, lateral-major. Each proposal is unrolled 40 steps of 0.1 s by
the IDM behind a leading obstacle searched in the path's corridor of the forecast, tracked by the LQR +
bicycle simulator, scored with PDMS v1 against the same forecast; the best one alone is unrolled on to
50 steps. The forecast holds the objects present at t = 0 (100 m radius, per-class caps), agents moving at
constant speed along their box heading, sampled every 0.2 s; red on-route lights at t = 0 are obstacles."""

from __future__ import annotations

import copy

import numpy as np
import shapely
from shapely.ops import substring

from drivefine_core.metrics import constants as K
from drivefine_core.metrics.cache import MetricCache
from drivefine_core.metrics.scene_index import with_agents
from drivefine_core.metrics.scorer import raw_scene_metrics
from drivefine_core.metrics.simulator import initial_states, simulate

PROPOSAL_STEPS = 40  # proposals: 4 s at 0.1 s
TRAJECTORY_STEPS = 50  # the chosen proposal is unrolled to 5 s
LEAD_UPDATE_RATE = 2  # the leading obstacle is searched on even steps only
OBS_SAMPLE_RES = 2  # the forecast is sampled every 2 steps (0.2 s)
MAP_RADIUS = 100.0  # objects farther from the ego centre are not observed
MAX_OBJECTS = {"vehicle": 50, "pedestrian": 25, "bicycle": 10}
MAX_STATIC_OBJECTS = 50
EGO_LENGTH = K.EGO_FRONT + K.EGO_REAR
N_STEPS = TRAJECTORY_STEPS  # kept for callers that size arrays by it


def _wrap(a):
    return np.arctan2(np.sin(a), np.cos(a))


class PDMPath:
    """A discrete path of (x, y, heading) vertices: progress = cumulative vertex distance, poses by linear
    interpolation of x, y and the unwrapped heading, progress clipped to [1e-5, length]."""

    def __init__(self, xy: np.ndarray, heading: np.ndarray):
        self.xy = np.asarray(xy, dtype=np.float64)
        self.heading = np.unwrap(np.asarray(heading, dtype=np.float64))
        self.progress = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.xy, axis=0), axis=1))])
        self.length = float(self.progress[-1])
        self.line = shapely.LineString(self.xy)

    @classmethod
    def from_polyline(cls, xy: np.ndarray) -> "PDMPath":
        """Lanes' discrete paths joined end to start, as NAVSIM concatenates them: a vertex's heading points to
        the next vertex and a lane's last vertex repeats the heading before it (nuplan-devkit's
        compute_linestring_heading per lane). A joint is a repeated point: its first copy (the end of one lane)
        keeps the heading before it, its second copy (the start of the next lane) points to the next vertex."""
        xy = np.asarray(xy, dtype=np.float64)
        d = np.diff(xy, axis=0)
        h = np.arctan2(d[:, 1], d[:, 0])
        for k in np.flatnonzero(np.all(np.abs(d) <= 1e-9, axis=1)):  # zero-length joint segments, in order
            h[k] = h[k - 1] if k > 0 else h[k]
        return cls(xy, np.append(h, h[-1]))

    def parallel(self, offset: float) -> "PDMPath":
        """Every vertex moved by `offset` (left positive) along its own heading normal; headings kept."""
        n = np.stack([np.cos(self.heading + np.pi / 2), np.sin(self.heading + np.pi / 2)], axis=1)
        return PDMPath(self.xy + offset * n, self.heading)

    def project(self, points: np.ndarray) -> np.ndarray:
        return shapely.line_locate_point(self.line, shapely.points(np.asarray(points, dtype=np.float64)))

    def interpolate(self, s) -> np.ndarray:
        s = np.clip(np.asarray(s, dtype=np.float64), 1e-5, self.length)
        out = np.stack([np.interp(s, self.progress, self.xy[:, 0]), np.interp(s, self.progress, self.xy[:, 1]),
                        np.interp(s, self.progress, self.heading)], axis=-1)
        out[..., 2] = _wrap(out[..., 2])
        return out

    def corridor(self, start: float, end: float) -> shapely.Polygon:
        """The vertices whose progress lies in [start, end] (shapely's substring when fewer than two),
        buffered by half the ego width with square caps."""
        start, end = float(np.clip(start, 0.0, self.length)), float(np.clip(end, 0.0, self.length))
        inside = (start <= self.progress) & (self.progress <= end)
        line = shapely.LineString(self.xy[inside]) if inside.sum() > 1 else substring(self.line, start, end)
        return line.buffer(K.EGO_HALF_WIDTH, cap_style="square")


def _box_corners(boxes: np.ndarray) -> np.ndarray:
    """(..., 5) [x, y, heading, length, width] -> (..., 4, 2) corners."""
    c, s = np.cos(boxes[..., 2]), np.sin(boxes[..., 2])
    hl, hw = boxes[..., 3] / 2.0, boxes[..., 4] / 2.0
    lon = np.stack([hl, -hl, -hl, hl], axis=-1)
    lat = np.stack([hw, hw, -hw, -hw], axis=-1)
    x = boxes[..., None, 0] + lon * c[..., None] - lat * s[..., None]
    y = boxes[..., None, 1] + lon * s[..., None] + lat * c[..., None]
    return np.stack([x, y], axis=-1)


def _ego_polygons(poses: np.ndarray) -> np.ndarray:
    """(M, 3) rear-axle poses -> (M,) ego footprints."""
    poses = np.atleast_2d(poses)
    boxes = np.empty((len(poses), 5))
    boxes[:, 0] = poses[:, 0] + K.REAR_AXLE_TO_CENTER * np.cos(poses[:, 2])
    boxes[:, 1] = poses[:, 1] + K.REAR_AXLE_TO_CENTER * np.sin(poses[:, 2])
    boxes[:, 2], boxes[:, 3], boxes[:, 4] = poses[:, 2], EGO_LENGTH, K.EGO_WIDTH
    return shapely.polygons(_box_corners(boxes))


class Forecast:
    """What PDM-Closed observes at t = 0 and how it forecasts it.

    `cache` is a copy of the scene's cache whose agents are the forecast (10 Hz rows, odd steps holding the
    previous even one), without the objects the ego already touches at t = 0 (NAVSIM's PDM scorer ignores
    those), and whose lights hold their t = 0 state. `polygons[k]` are the obstacles of sample k (objects,
    then red on-route connectors), `collided` marks obstacles the leading-agent search skips."""

    def __init__(self, cache: MetricCache):
        n_steps = K.NUM_OBS_STEPS
        ego_centre = np.array([K.REAR_AXLE_TO_CENTER, 0.0])
        # PDM-Closed observes the current frame's detections only (NAVSIM: scenario.initial_tracked_objects); a
        # track seen in one later frame is held from t = 0 on for scoring but is not observed here.
        at_start = cache.agent_valid[:, 0] if cache.num_agents else np.zeros(0, dtype=bool)
        if len(cache.agent_seen_at_start):
            at_start = at_start & cache.agent_seen_at_start
        present = np.flatnonzero(at_start)
        box0 = cache.agent_boxes[present, 0]
        dist = np.linalg.norm(box0[:, :2] - ego_centre, axis=1)
        names = np.array([cache.agent_names[i] for i in present], dtype=object)
        keep = []
        for cls, cap in (*MAX_OBJECTS.items(), (None, MAX_STATIC_OBJECTS)):
            mine = ~np.isin(names, K.AGENT_CLASSES) if cls is None else names == cls
            idx = np.flatnonzero(mine & (dist <= MAP_RADIUS))
            keep.extend(idx[np.argsort(dist[idx], kind="stable")][:cap].tolist())
        keep = np.array(sorted(keep), dtype=int)
        rows, box0, names = present[keep], box0[keep], names[keep]
        is_agent = np.isin(names, K.AGENT_CLASSES) if len(names) else np.zeros(0, dtype=bool)
        vel0 = np.nan_to_num(cache.agent_velocity[rows, 0]) if len(rows) else np.zeros((0, 2))
        speed = np.linalg.norm(vel0, axis=1)
        backwards = np.abs(_wrap(box0[:, 2] - np.arctan2(vel0[:, 1], vel0[:, 0]))) >= np.pi / 2
        track_heading = np.where(backwards, _wrap(box0[:, 2] + np.pi), box0[:, 2])
        dxy = np.where(is_agent[:, None], speed[:, None] * np.stack([np.cos(track_heading), np.sin(track_heading)], 1), 0.0)
        sample_t = (np.arange(n_steps) // OBS_SAMPLE_RES) * OBS_SAMPLE_RES * K.DT  # time each step's sample shows
        boxes = np.repeat(box0[:, None], n_steps, axis=1)
        boxes[..., :2] += dxy[:, None] * sample_t[None, :, None]
        self.speed, self.heading0, self.is_agent = speed, box0[:, 2], is_agent
        n_obj = len(rows)

        red0 = cache.light_red[:, 0] if len(cache.light_lane_index) else np.zeros(0, dtype=bool)
        light_rings = [cache.lane_polygon(int(i)) for i, r in zip(cache.light_lane_index, red0) if r]
        light_polys = np.array([shapely.Polygon(r) for r in light_rings], dtype=object)
        self.is_light = np.concatenate([np.zeros(n_obj, dtype=bool), np.ones(len(light_polys), dtype=bool)])
        n_samples = (n_steps - 1) // OBS_SAMPLE_RES + 1
        obj_polys = shapely.polygons(_box_corners(boxes[:, ::OBS_SAMPLE_RES])) if n_obj else np.zeros((0, n_samples), object)
        self.polygons = [np.concatenate([obj_polys[:, k], light_polys]) for k in range(n_samples)]
        self.centroids = [shapely.get_coordinates(shapely.centroid(p)) for p in self.polygons]

        ego0 = _ego_polygons(np.zeros(3))[0]
        touched = shapely.intersects(self.polygons[0], ego0) if len(self.polygons[0]) else np.zeros(0, dtype=bool)
        if len(light_polys):  # a red light only counts as collided when the ego lies within its connector
            touched[n_obj:] &= shapely.within(ego0, light_polys)
        self.collided = touched

        out = copy.copy(cache)
        out._runtime = {}
        shared_map = cache.recalled("index")  # same map fields: its grids are reused, not built again
        free = ~touched[:n_obj]
        out.agent_boxes = boxes[free]
        out.agent_valid = np.ones(out.agent_boxes.shape[:2], dtype=bool)
        out.agent_velocity = np.repeat(dxy[free, None], n_steps, axis=1)
        out.agent_names = [str(n) for n in names[free]]
        out.agent_tokens = [cache.agent_tokens[i] for i in rows[free]]
        out.agent_seen_at_start = np.ones(len(out.agent_tokens), dtype=bool)
        out.light_red = np.repeat(cache.light_red[:, :1], n_steps, axis=1)
        if shared_map is not None:
            out.remember("index", with_agents(out, shared_map))
        self.cache = out

    def at(self, step: int) -> int:
        return step // OBS_SAMPLE_RES


class _Unroller:
    """IDM unrolling of the proposals that share one path (NAVSIM's PDMGenerator for one lateral batch)."""

    def __init__(self, path: PDMPath, forecast: Forecast, targets: np.ndarray, v0: float, max_target: float):
        self.path, self.fc, self.targets = path, forecast, np.asarray(targets, dtype=np.float64)
        b = len(self.targets)
        self.s = np.zeros((b, TRAJECTORY_STEPS + 1))
        self.v = np.zeros((b, TRAJECTORY_STEPS + 1))
        self.poses = np.zeros((b, TRAJECTORY_STEPS + 1, 3))
        self.lead = np.zeros((b, TRAJECTORY_STEPS + 1, 3))  # progress, speed, rear length; row 0 stays zero
        s0 = float(path.project(np.zeros((1, 2)))[0])
        self.s[:, 0], self.v[:, 0] = s0, v0
        self.poses[:, 0] = path.interpolate(s0)
        self.corridor = path.corridor(s0, s0 + abs(max_target) * TRAJECTORY_STEPS * K.DT)

    def _update_leads(self, rows: list[int], t: int) -> None:
        if t % LEAD_UPDATE_RATE:
            self.lead[rows, t] = self.lead[rows, t - 1]  # odd steps (step 1 included) reuse the previous row
            return
        polys = self.fc.polygons[self.fc.at(t)]
        hit = np.flatnonzero(shapely.intersects(polys, self.corridor) & ~self.fc.collided) if len(polys) else []
        prog = self.path.project(self.fc.centroids[self.fc.at(t)][hit]) if len(hit) else np.zeros(0)
        row = np.zeros(3)  # one row shared by the batch: fields a proposal does not set carry over to the next
        for j in rows:
            ego_s = self.s[j, t - 1]
            ahead = prog > ego_s
            if ahead.any():
                ego_pose = self.poses[j, t - 1]
                cand = hit[ahead]
                d = shapely.distance(_ego_polygons(ego_pose)[0], polys[cand])
                k = int(cand[int(np.argmin(d))])
                row[0] = ego_s + float(d.min())
                if not self.fc.is_light[k]:
                    row[1] = (self.fc.speed[k] * np.cos(_wrap(self.fc.heading0[k] - ego_pose[2]))
                              if self.fc.is_agent[k] else 0.0)
            else:  # nothing ahead: the end of the path, seen from half the ego length
                row[0], row[2] = self.path.length, EGO_LENGTH / 2.0
            self.lead[j, t] = row

    def _propagate(self, rows: list[int], t: int) -> None:
        x, v = self.s[rows, t - 1], self.v[rows, t - 1]
        x_lead, v_lead, rear = self.lead[rows, t].T
        s_star = K.IDM_MIN_GAP + v * K.IDM_HEADWAY + v * (v - v_lead) / (2 * np.sqrt(K.IDM_A_MAX * K.IDM_B))
        s_alpha = np.maximum(x_lead - x - rear, K.IDM_MIN_GAP)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = K.IDM_A_MAX * (1 - (v / self.targets[rows]) ** K.IDM_EXPONENT - (s_star / s_alpha) ** 2)
        acc = np.clip(acc, -K.IDM_B, K.IDM_A_MAX)
        self.s[rows, t] = x + K.DT * v  # explicit Euler: progress moves with the old speed
        self.v[rows, t] = v + K.DT * acc  # not clamped at zero
        self.poses[rows, t] = self.path.interpolate(self.s[rows, t])

    def unroll(self, rows: list[int], first: int, last: int) -> None:
        for t in range(first, last + 1):
            self._update_leads(rows, t)
            self._propagate(rows, t)


def _paths(cache: MetricCache) -> list[PDMPath]:
    centre = PDMPath.from_polyline(cache.centerline)
    return [centre if off == 0 else centre.parallel(off) for off in K.LATERAL_OFFSETS]


def _targets(cache: MetricCache) -> np.ndarray:
    limit = cache.speed_limit if np.isfinite(cache.speed_limit) and cache.speed_limit > 0 else K.IDM_FALLBACK_SPEED
    return np.asarray(K.IDM_FRACTIONS) * limit


def pdm_closed_details(cache: MetricCache) -> dict:
    """Every intermediate of the planner: proposals (15, 51, 3) (rows past 40 only for the chosen one),
    progress / speed (15, 51), the forecast, per-proposal PDMS and the chosen index."""
    forecast = Forecast(cache)
    targets = _targets(cache)
    v0 = float(cache.ego_velocity[0])  # longitudinal rear-axle speed
    unrollers = [_Unroller(p, forecast, targets, v0, float(targets.max())) for p in _paths(cache)]
    rows = list(range(len(targets)))
    for u in unrollers:
        u.unroll(rows, 1, PROPOSAL_STEPS)
    proposals = np.concatenate([u.poses for u in unrollers])
    init = initial_states(cache.ego_velocity[None], cache.ego_acceleration[None], cache.ego_steering, cache.ego_yaw_rate)
    states = simulate(proposals[:, : K.NUM_STATES], np.repeat(init, len(proposals), axis=0))
    m = raw_scene_metrics(forecast.cache, states, v1=True, v2=False)
    mult = m["v1/nc"] * m["v1/dac"]
    masked = m["v1/progress"] * mult
    best = masked.max()
    ep = masked / best if best > K.PROGRESS_DISTANCE_THRESHOLD else np.where(mult > 0, 1.0, 0.0)
    w = K.V1_WEIGHTS
    pdms = mult * (w["ttc"] * m["v1/ttc"] + w["ep"] * ep + w["c"] * m["v1/c"]) / sum(w.values())
    chosen = int(np.argmax(pdms))
    lateral, longitudinal = divmod(chosen, len(targets))
    u = unrollers[lateral]
    u.unroll([longitudinal], PROPOSAL_STEPS + 1, TRAJECTORY_STEPS)  # a batch of one: nothing carried over
    return {"proposals": np.concatenate([x.poses for x in unrollers]),
            "progress": np.concatenate([x.s for x in unrollers]), "speed": np.concatenate([x.v for x in unrollers]),
            "lead": np.concatenate([x.lead for x in unrollers]), "forecast": forecast, "pdms": pdms, "chosen": chosen}


def pdm_closed(cache: MetricCache) -> np.ndarray:
    """(51, 3) ego-frame PDM-Closed rear-axle poses at 0..5 s; row 0 is the rear axle's projection on the
    chosen path (as in NAVSIM's trajectory), not the origin."""
    d = pdm_closed_details(cache)
    return d["proposals"][d["chosen"]]
