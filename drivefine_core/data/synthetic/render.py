"""Camera images of a log frame: ground from the map raster by inverse perspective, 3-D boxes on top.

The ground is flat (z = 0 in the ego frame), so the ground point seen by every pixel below the horizon
is fixed relative to the ego; a frame only moves those points to the global frame and samples the
raster. Agents, statics and traffic-light heads are boxes projected with the same intrinsics and
extrinsics the log declares, clipped at the near plane and painted far to near.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from drivefine_core.data.synthetic.cameras import Camera
from drivefine_core.data.synthetic.raster import CARPARK, GROUND, ROAD, SIDEWALK, STOPLINE, WHITE, YELLOW, MapRaster

MAX_GROUND_M = 150.0
NEAR = 0.3
PALETTE = np.zeros((256, 3), np.float32)
PALETTE[GROUND] = (92, 110, 74)
PALETTE[ROAD] = (70, 70, 74)
PALETTE[CARPARK] = (96, 94, 90)
PALETTE[SIDEWALK] = (150, 146, 138)
PALETTE[WHITE] = (235, 235, 235)
PALETTE[YELLOW] = (230, 190, 40)
PALETTE[STOPLINE] = (240, 240, 240)
FOG = np.array((175, 185, 195), np.float32)
CLASS_COLOURS = {
    "vehicle": (40, 90, 200),
    "pedestrian": (220, 60, 160),
    "bicycle": (240, 140, 20),
    "traffic_cone": (255, 110, 0),
    "barrier": (230, 230, 60),
    "czone_sign": (255, 160, 40),
    "generic_object": (150, 80, 40),
    "ego": (200, 200, 200),
}
LIGHT_COLOURS = {0: (40, 230, 60), 1: (250, 200, 20), 2: (240, 30, 30)}
# box corner order: bottom ring then top ring; faces as corner indices
_FACES = [(0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
_FACE_SHADE = np.array([0.5, 1.0, 0.85, 0.7, 0.6, 0.75])


@dataclass
class GroundModel:
    """Per camera: the pixels that see the ground and their ego-frame ground points."""

    rows: np.ndarray
    cols: np.ndarray
    ground_xy: np.ndarray  # (P, 2) ego frame
    fog: np.ndarray  # (P,) 0..1
    sky: np.ndarray  # (H, W, 3) float background


def ground_model(cam: Camera) -> GroundModel:
    h, w = cam.height, cam.width
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([u + 0.5, v + 0.5, np.ones_like(u, float)], axis=-1) @ np.linalg.inv(cam.intrinsic).T
    m = cam.cam2ego
    d = rays @ m[:3, :3].T
    o = m[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[2] / d[..., 2]
    pts = o[:2] + t[..., None] * d[..., :2]
    dist = np.hypot(pts[..., 0] - o[0], pts[..., 1] - o[1])
    ok = (d[..., 2] < 0) & (dist < MAX_GROUND_M)
    rows, cols = np.nonzero(ok)
    fog = np.clip(dist[rows, cols] / MAX_GROUND_M, 0, 1) ** 1.5
    elev = -d[..., 2] / np.linalg.norm(d, axis=-1)  # negative above the horizon
    top = np.array((95, 140, 205), np.float32)
    sky = FOG + (top - FOG) * np.clip(-elev * 4.0, 0, 1)[..., None]
    return GroundModel(rows, cols, pts[rows, cols], fog.astype(np.float32), sky.astype(np.float32))


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 7) [x, y, z, l, w, h, yaw] (z = centre height) -> (N, 8, 3) corners."""
    x, y, z, ln, wd, ht, yaw = boxes.T
    sx = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
    sy = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * 0.5
    lx, ly, lz = ln[:, None] * sx, wd[:, None] * sy, ht[:, None] * sz
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    return np.stack([x[:, None] + c * lx - s * ly, y[:, None] + s * lx + c * ly, z[:, None] + lz], axis=-1)


def _clip_near(cam_pts: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman of one polygon (camera-frame points) against z_cam >= NEAR."""
    out = []
    n = len(cam_pts)
    for i in range(n):
        a, b = cam_pts[i], cam_pts[(i + 1) % n]
        ina, inb = a[2] >= NEAR, b[2] >= NEAR
        if ina:
            out.append(a)
        if ina != inb:
            t = (NEAR - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out)


def render(
    cam: Camera, model: GroundModel, raster: MapRaster, ego_pose: np.ndarray, boxes: np.ndarray,
    colours: np.ndarray,
) -> Image.Image:
    """boxes: (N, 7) ego frame with z = box centre height; colours: (N, 3) base colour per box."""
    c, s = np.cos(ego_pose[2]), np.sin(ego_pose[2])
    g = model.ground_xy
    world = np.stack([ego_pose[0] + c * g[:, 0] - s * g[:, 1], ego_pose[1] + s * g[:, 0] + c * g[:, 1]], axis=1)
    col = PALETTE[raster.lookup(world)]
    col = col + (FOG - col) * model.fog[:, None]
    img = model.sky.copy()
    img[model.rows, model.cols] = col
    image = Image.fromarray(img.astype(np.uint8))
    if len(boxes):
        _draw_boxes(image, cam, boxes, colours)
    return image


_FACE_IDX = np.array(_FACES)


def _draw_boxes(image: Image.Image, cam: Camera, boxes: np.ndarray, colours: np.ndarray) -> None:
    inv = np.linalg.inv(cam.cam2ego)
    centre = boxes[:, :3] @ inv[:3, :3].T + inv[:3, 3]
    reach = np.linalg.norm(boxes[:, 3:6], axis=1) / 2
    # cull boxes behind the camera or outside the horizontal field of view
    k = cam.intrinsic
    half_fov = np.arctan2(cam.width / 2, k[0, 0])
    ang = np.arctan2(np.abs(centre[:, 0]), np.maximum(centre[:, 2], 1e-6))
    lateral_ok = (ang < half_fov) | (np.abs(centre[:, 0]) * np.cos(half_fov) - centre[:, 2] * np.sin(half_fov) < reach)
    keep = np.flatnonzero((centre[:, 2] > -reach) & lateral_ok & (np.hypot(boxes[:, 0], boxes[:, 1]) < MAX_GROUND_M))
    if not len(keep):
        return
    corners = box_corners(boxes[keep]) @ inv[:3, :3].T + inv[:3, 3]  # (n, 8, 3) camera frame
    face_pts = corners[:, _FACE_IDX]  # (n, 6, 4, 3)
    face_mid = face_pts.mean(axis=2)
    facing = ((face_mid - centre[keep][:, None, :]) * face_mid).sum(-1) < 0
    front = (face_pts[..., 2] > NEAR).any(-1)
    bi, fi = np.nonzero(facing & front)
    order = np.argsort(-np.linalg.norm(face_mid[bi, fi], axis=-1))
    fog = np.minimum(1.0, np.hypot(boxes[keep, 0], boxes[keep, 1]) / MAX_GROUND_M) ** 1.5
    base = np.asarray(colours, np.float32)[keep]
    rgb = base[bi] * _FACE_SHADE[fi][:, None]
    rgb = (rgb + (FOG - rgb) * fog[bi][:, None]).astype(int)
    draw = ImageDraw.Draw(image)
    lim = 4 * cam.width
    for j in order.tolist():
        fp = face_pts[bi[j], fi[j]]
        if (fp[:, 2] < NEAR).any():
            fp = _clip_near(fp)
            if len(fp) < 3:
                continue
        uv = np.clip((fp @ k.T)[:, :2] / fp[:, 2:3], -lim, lim)
        draw.polygon([tuple(q) for q in uv.tolist()], fill=tuple(rgb[j].tolist()))
