"""Per-scene features: resized camera views, ego state, history, command, target poses and tokens.

Deterministic: the same scene, image bytes and params give the same row, byte for byte (PIL's JPEG
coder is deterministic for a given Pillow build).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from drivefine_core.data.errors import DataFormatError
from drivefine_core.data.schema import TRAJECTORY_POSES, Scene
from drivefine_core.features import tokenizer
from drivefine_core.features.params import FeatureParams
from drivefine_core.storage.safe_paths import UnreadableFileError, UnsafePathError, join_inside, read_limited, safe_name

HISTORY_POSES = 4


class FeatureBuildError(DataFormatError):
    """A scene that cannot be turned into features; names the file (image or log) and the field."""


@dataclass
class SceneFeatures:
    """One row of the feature cache."""

    token: str
    log_name: str
    split: str
    map_location: str
    timestamp_us: int
    images: list[bytes]  # encoded, one per params.cameras entry, in that order
    velocity: np.ndarray  # (2,) float32, ego frame
    acceleration: np.ndarray  # (2,) float32, ego frame
    history: np.ndarray  # (4, 3) float32, ego frame; the last row is the current pose
    command: np.ndarray  # (4,) int8 one-hot [left, straight, right, unknown]
    target: np.ndarray  # (8, 3) float32, ego frame
    target_tokens: np.ndarray  # (24,) int16
    target_clipped: int  # target values that fell outside the tokenizer's range


def image_uri(sensor_blobs: str, split: str, data_path: str) -> str:
    """Where a camera blob lives: <sensor_blobs>/<split>/<data_path>, always inside sensor_blobs
    (UnsafePathError for a split that is not a plain name or a data_path that is absolute or climbs)."""
    return join_inside(sensor_blobs, f"{safe_name(split, 'image split folder')}/{data_path}", "camera data_path")


def read_image_file(uri: str, params: FeatureParams) -> bytes:
    """A camera file: a regular file of at most params.max_source_image_bytes (read_limited)."""
    return read_limited(uri, params.max_source_image_bytes)


def encode_image(raw: bytes, params: FeatureParams, source: str) -> bytes:
    """Decode a camera image, resize it to the params size (aspect is not kept) and re-encode it.

    `source` names the file in errors.
    """
    size = (params.image_width, params.image_height)
    try:
        with Image.open(io.BytesIO(raw)) as img:
            # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale directly: ~10x faster for 1920x1080 -> 160x90.
            img.draft("RGB", size)
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FeatureBuildError(source, "image", f"not a decodable image: {exc}") from None
    if rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    if params.image_format == "jpeg":
        rgb.save(out, format="JPEG", quality=params.jpeg_quality)
    else:
        rgb.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def build_scene_features(
    scene: Scene,
    sensor_blobs: str,
    split: str,
    params: FeatureParams,
    read: Callable[[str], bytes] | None = None,
    image_split: str | None = None,
) -> SceneFeatures:
    """Features of one scene, labelled `split`.

    Images are read with `read` (default: read_image_file, size-limited) from
    <sensor_blobs>/<image_split>/<data_path>; image_split is the source folder of the log
    (SceneMeta.source_split), `split` when None.
    """
    if read is None:
        read = lambda uri: read_image_file(uri, params)  # noqa: E731
    where = f"log {scene.log_name}: scene {scene.token}"
    need = scene.num_history_frames + TRAJECTORY_POSES
    if scene.num_history_frames != HISTORY_POSES:
        raise FeatureBuildError(where, "num_history_frames", f"expected {HISTORY_POSES}, got {scene.num_history_frames}")
    if len(scene.frames) < need:
        raise FeatureBuildError(where, "frames", f"needs {need} frames (4 history + 8 future), got {len(scene.frames)}")
    frame = scene.current_frame
    images = []
    for cam in params.cameras:
        info = frame.cameras.get(cam)
        if info is None:
            raise FeatureBuildError(where, f"cams.{cam}", "camera missing from the current frame", scene.current_index)
        try:
            uri = image_uri(sensor_blobs, image_split or split, info.data_path)
        except UnsafePathError as exc:
            raise FeatureBuildError(where, f"cams.{cam}.data_path", str(exc), scene.current_index) from None
        try:
            raw = read(uri)
        except FileNotFoundError:
            raise FeatureBuildError(uri, f"cams.{cam}.data_path", f"image file not found ({where})") from None
        except UnreadableFileError as exc:
            raise FeatureBuildError(uri, f"cams.{cam}.data_path", f"{exc.reason} ({where})") from None
        images.append(encode_image(raw, params, uri))

    target = scene.future_trajectory(TRAJECTORY_POSES)
    counter = tokenizer.ClipCounter()
    tokens = tokenizer.encode(target, counter)
    command = np.asarray(frame.ego.driving_command).reshape(-1)
    if command.shape != (4,):
        raise FeatureBuildError(where, "driving_command", f"expected 4 values, got shape {command.shape}", scene.current_index)
    return SceneFeatures(
        token=scene.token,
        log_name=scene.log_name,
        split=split,
        map_location=scene.map_location,
        timestamp_us=int(frame.timestamp_us),
        images=images,
        velocity=np.asarray(frame.ego.velocity, dtype=np.float32).reshape(2),
        acceleration=np.asarray(frame.ego.acceleration, dtype=np.float32).reshape(2),
        history=scene.history_trajectory().astype(np.float32),
        command=command.astype(np.int8),
        target=target.astype(np.float32),
        target_tokens=tokens.astype(np.int16),
        target_clipped=counter.total,
    )
