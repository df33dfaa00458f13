"""Scenes and camera JPEGs built by hand for the feature / validation / storage tests.

A log is one drive at 2 Hz (constant acceleration and yaw rate); scenes are its windows of 4 history +
10 future frames, every frame (as NAVSIM cuts them). JPEGs are written for the current frames only,
under <root>/sensor_blobs/<split>/<log>/<CAM>/<token>.jpg.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from drivefine_core.data.schema import Annotations, CameraInfo, EgoStatus, Frame, Scene

HISTORY, FUTURE = 4, 10
T0_US = 1_620_000_000_000_000


def frame_token(log_name: str, i: int) -> str:
    return hashlib.sha256(f"{log_name}/{i}".encode()).hexdigest()[:16]


def make_log_scenes(
    log_name: str,
    n_scenes: int,
    speed: float = 8.0,
    accel: float = 0.3,
    yaw_rate: float = 0.02,
    cameras: tuple[str, ...] = ("CAM_F0",),
    origin: tuple[float, float, float] = (664_000.0, 3_997_000.0, 0.4),
) -> list[Scene]:
    n_frames = n_scenes + HISTORY + FUTURE - 1
    x, y, h = origin
    v = speed
    frames: list[Frame] = []
    for i in range(n_frames):
        cmd = np.zeros(4, dtype=np.int64)
        cmd[0 if yaw_rate > 0.05 else 2 if yaw_rate < -0.05 else 1] = 1
        token = frame_token(log_name, i)
        cams = {
            c: CameraInfo(f"{log_name}/{c}/{token}.jpg", np.eye(3), np.eye(3), np.zeros(3), np.zeros(5)) for c in cameras
        }
        frames.append(
            Frame(
                token=token,
                timestamp_us=T0_US + 500_000 * i,
                ego=EgoStatus(np.array([x, y, h]), np.array([v, 0.0]), np.array([accel, v * yaw_rate]), cmd),
                annotations=Annotations.empty(),
                traffic_lights=[],
                roadblock_ids=["rb1"],
                cameras=cams,
            )
        )
        for _ in range(5):  # integrate 0.5 s in 5 steps
            x += np.cos(h) * v * 0.1
            y += np.sin(h) * v * 0.1
            h += yaw_rate * 0.1
            v = max(0.0, v + accel * 0.1)
    return [
        Scene(token=frames[s + HISTORY - 1].token, log_name=log_name, map_location="us-nv-las-vegas-strip", frames=frames[s : s + HISTORY + FUTURE])
        for s in range(n_scenes)
    ]


def camera_jpeg(seed: int, size: tuple[int, int] = (320, 180), quality: int = 90) -> bytes:
    """A road-like picture: sky / ground halves, smooth blobs, a little noise (compresses like a photo).

    Drawn at 1/4 scale and upsampled: a full-size 1920x1080 source stays cheap to make.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    sw, sh = max(8, w // 4), max(8, h // 4)
    yy = np.linspace(0, 1, sh)[:, None, None]
    base = np.where(yy < 0.45, [150, 180, 220], [90, 90, 95]) * np.ones((sh, sw, 3))
    coarse = rng.uniform(-60, 60, size=(9, 16, 3))
    blobs = np.asarray(Image.fromarray((coarse + 128).astype(np.uint8)).resize((sw, sh), Image.Resampling.BICUBIC), dtype=np.float64) - 128
    small = np.clip(base + blobs + rng.normal(0, 10, size=(sh, sw, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_scene_images(scenes: list[Scene], sensor_blobs: Path, split: str, size: tuple[int, int] = (320, 180)) -> None:
    for scene in scenes:
        frame = scene.current_frame
        for cam, info in frame.cameras.items():
            path = sensor_blobs / split / info.data_path
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            seed = int(hashlib.sha256(f"{frame.token}/{cam}".encode()).hexdigest()[:8], 16)
            path.write_bytes(camera_jpeg(seed, size))


def make_log(
    root: Path, log_name: str, n_scenes: int, split: str = "trainval", size: tuple[int, int] = (320, 180), **kwargs: object
) -> list[Scene]:
    """Scenes of one log plus their current-frame JPEGs under root/sensor_blobs."""
    scenes = make_log_scenes(log_name, n_scenes, **kwargs)  # type: ignore[arg-type]
    write_scene_images(scenes, root / "sensor_blobs", split, size)
    return scenes
