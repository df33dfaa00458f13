"""OpenScene / NAVSIM log reader: one pickle per log -> validated schema.Frame list.

Files come from elsewhere, so they are loaded with the safe unpickler and every field downstream
uses is checked; any problem raises LogFormatError naming the file, the frame index and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivefine_core.data.errors import LogFormatError, UnsafePickleError
from drivefine_core.data.safe_pickle import DEFAULT_MAX_ARRAY_ELEMENTS, safe_load
from drivefine_core.data.schema import (
    AGENT_NAMES,
    CAMERA_NAMES,
    Annotations,
    CameraInfo,
    EgoStatus,
    Frame,
)
from drivefine_core.storage.safe_paths import UnreadableFileError, UnsafePathError, safe_name, safe_relative

# Every per-frame key of the spec except `anns`, which hidden test splits omit.
REQUIRED_FRAME_KEYS = (
    "token", "frame_idx", "timestamp", "log_name", "log_token", "scene_name", "scene_token",
    "map_location", "vehicle_name", "sample_prev", "sample_next", "roadblock_ids", "can_bus",
    "ego2global_translation", "ego2global_rotation", "lidar2ego_translation", "lidar2ego_rotation",
    "ego2global", "lidar2ego", "lidar2global", "ego_dynamic_state", "driving_command",
    "traffic_lights", "lidar_path", "cams",
)  # fmt: skip
CAMERA_KEYS = ("data_path", "sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic", "distortion")
ANNOTATION_KEYS = ("gt_boxes", "gt_names", "gt_velocity_3d", "instance_tokens", "track_tokens")


@dataclass
class OpenSceneLog:
    path: str
    log_name: str
    map_location: str
    frames: list[Frame]


def quaternion_yaw(q: np.ndarray) -> float:
    """Yaw (rotation about z) of a unit quaternion [w, x, y, z]."""
    w, x, y, z = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class _FrameParser:
    """Field accessors bound to one frame, so every error carries the file, frame and field."""

    def __init__(self, path: str, index: int, raw: Any) -> None:
        self.path, self.index = path, index
        if not isinstance(raw, dict):
            self.fail("<frame>", f"expected a dict, got {type(raw).__name__}")
        self.raw: dict[str, Any] = raw

    def fail(self, field: str, reason: str) -> None:
        raise LogFormatError(self.path, field, reason, frame=self.index)

    def get(self, key: str, container: dict[str, Any] | None = None, prefix: str = "") -> Any:
        source = self.raw if container is None else container
        if key not in source:
            self.fail(prefix + key, "missing key")
        return source[key]

    def array(
        self, value: Any, field: str, shape: tuple[int | None, ...], finite: bool = True, dtype: type = np.float64
    ) -> np.ndarray:
        try:
            arr = np.array(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            self.fail(field, f"not numeric: {exc}")
        if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
            want_txt = "x".join("N" if s is None else str(s) for s in shape) or "scalar"
            self.fail(field, f"expected shape {want_txt}, got {arr.shape}")
        if finite and not np.all(np.isfinite(arr)):
            self.fail(field, "contains NaN or inf")
        return arr

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            self.fail(field, f"expected a string, got {type(value).__name__}")
        return value

    def path_part(self, value: Any, field: str, whole_name: bool) -> str:
        """A string that becomes (part of) a file path: one plain name, or a relative path inside its root."""
        try:
            return safe_name(value, field) if whole_name else safe_relative(value, field)
        except UnsafePathError as exc:
            self.fail(field, exc.reason if isinstance(value, str) else f"expected a string, got {type(value).__name__}")
        return ""  # unreachable

    def element_id(self, value: Any, field: str) -> str:
        """Map element ids come as str or int fids; both become the string of the fid."""
        if isinstance(value, str) and value:
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return str(int(value))
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        self.fail(field, f"not a map element id: {value!r}")
        return ""  # unreachable

    def timestamp(self) -> int:
        value = self.get("timestamp")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            self.fail("timestamp", f"expected an integer (microseconds), got {value!r}")
        return int(value)

    def ego(self) -> EgoStatus:
        translation = self.array(self.get("ego2global_translation"), "ego2global_translation", (3,))
        rotation = self.array(self.get("ego2global_rotation"), "ego2global_rotation", (4,))
        if np.linalg.norm(rotation) < 1e-6:
            self.fail("ego2global_rotation", "zero quaternion")
        dynamic = self.array(self.get("ego_dynamic_state"), "ego_dynamic_state", (4,))
        command = self.array(self.get("driving_command"), "driving_command", (4,), dtype=np.float64)
        if not np.all((command == 0) | (command == 1)):
            self.fail("driving_command", f"expected a 0/1 one-hot of length 4, got {command.tolist()}")
        self.array(self.get("can_bus"), "can_bus", (18,), finite=False)
        pose = np.array([translation[0], translation[1], quaternion_yaw(rotation / np.linalg.norm(rotation))])
        return EgoStatus(
            pose=pose,
            velocity=dynamic[:2].copy(),
            acceleration=dynamic[2:4].copy(),
            driving_command=command.astype(np.int64),
        )

    def annotations(self, required: bool) -> Annotations:
        if "anns" not in self.raw:
            if required:
                self.fail("anns", "missing key")
            return Annotations.empty()
        anns = self.raw["anns"]
        if not isinstance(anns, dict):
            self.fail("anns", f"expected a dict, got {type(anns).__name__}")
        values = {k: self.get(k, anns, "anns.") for k in ANNOTATION_KEYS}
        boxes = self.array(values["gt_boxes"], "anns.gt_boxes", (None, 7)) if len(values["gt_boxes"]) else np.zeros((0, 7))
        n = len(boxes)
        vel = values["gt_velocity_3d"]
        velocity = self.array(vel, "anns.gt_velocity_3d", (n, 3), finite=False) if n else np.zeros((0, 3))
        names = [self.text(v, "anns.gt_names") for v in list(values["gt_names"])]
        tracks = [self.text(v, "anns.track_tokens") for v in list(values["track_tokens"])]
        for field, seq in (("gt_names", names), ("track_tokens", tracks), ("instance_tokens", values["instance_tokens"])):
            if len(seq) != n:
                self.fail(f"anns.{field}", f"length {len(seq)} != {n} boxes")
        unknown = sorted(set(names) - set(AGENT_NAMES))
        if unknown:
            self.fail("anns.gt_names", f"unknown object types {unknown}")
        return Annotations(boxes=boxes, names=names, velocity_3d=velocity, track_tokens=tracks)

    def cameras(self, required: tuple[str, ...]) -> dict[str, CameraInfo]:
        cams = self.get("cams")
        if not isinstance(cams, dict):
            self.fail("cams", f"expected a dict, got {type(cams).__name__}")
        unknown = sorted(set(cams) - set(CAMERA_NAMES), key=str)
        if unknown:
            self.fail("cams", f"unknown cameras {unknown}")
        for name in required:
            self.get(name, cams, "cams.")
        out: dict[str, CameraInfo] = {}
        for name in (n for n in CAMERA_NAMES if n in cams):  # canonical order
            cam = cams[name]
            if not isinstance(cam, dict):
                self.fail(f"cams.{name}", f"expected a dict, got {type(cam).__name__}")
            f = f"cams.{name}."
            values = {k: self.get(k, cam, f) for k in CAMERA_KEYS}
            if values["data_path"] is None:  # calibrated but no image recorded
                if name in required:
                    self.fail(f + "data_path", "no image recorded for a required camera")
                continue
            out[name] = CameraInfo(
                data_path=self.path_part(values["data_path"], f + "data_path", whole_name=False),
                intrinsic=self.array(values["cam_intrinsic"], f + "cam_intrinsic", (3, 3)),
                sensor2lidar_rotation=self.array(values["sensor2lidar_rotation"], f + "sensor2lidar_rotation", (3, 3)),
                sensor2lidar_translation=self.array(
                    values["sensor2lidar_translation"], f + "sensor2lidar_translation", (3,)
                ),
                distortion=self.array(values["distortion"], f + "distortion", (None,)),
            )
        return out

    def frame(self, require_annotations: bool, required_cameras: tuple[str, ...]) -> Frame:
        for key in REQUIRED_FRAME_KEYS:
            self.get(key)
        for key in ("ego2global", "lidar2global"):
            self.array(self.raw[key], key, (4, 4))
        self.array(self.raw["lidar2ego_translation"], "lidar2ego_translation", (3,))
        self.array(self.raw["lidar2ego_rotation"], "lidar2ego_rotation", (4,))
        roadblocks = self.raw["roadblock_ids"]
        if not isinstance(roadblocks, (list, tuple, np.ndarray)):
            self.fail("roadblock_ids", f"expected a list, got {type(roadblocks).__name__}")
        lights_raw = self.raw["traffic_lights"]
        if not isinstance(lights_raw, (list, tuple)):
            self.fail("traffic_lights", f"expected a list, got {type(lights_raw).__name__}")
        lights: list[tuple[str, bool]] = []
        for entry in lights_raw:
            if not isinstance(entry, (list, tuple, np.ndarray)) or len(entry) != 2:
                self.fail("traffic_lights", f"expected (lane_connector_id, is_red) pairs, got {entry!r}")
            lights.append((self.element_id(entry[0], "traffic_lights"), bool(entry[1])))
        return Frame(
            token=self.text(self.raw["token"], "token"),
            timestamp_us=self.timestamp(),
            ego=self.ego(),
            annotations=self.annotations(require_annotations),
            traffic_lights=lights,
            roadblock_ids=[self.element_id(r, "roadblock_ids") for r in roadblocks],
            cameras=self.cameras(required_cameras),
            lidar2ego=self.array(self.raw["lidar2ego"], "lidar2ego", (4, 4)),
        )


def _load_frames(path: str, max_bytes: int | None, max_array_elements: int) -> list[Any]:
    try:
        raw = safe_load(path, max_array_elements=max_array_elements, max_bytes=max_bytes)
    except UnsafePickleError:
        raise
    except FileNotFoundError:
        raise LogFormatError(path, "<file>", "file not found") from None
    except UnreadableFileError as exc:
        raise LogFormatError(path, "<file>", exc.reason) from None
    except MemoryError:
        raise LogFormatError(path, "<pickle>", "out of memory while unpickling") from None
    except Exception as exc:  # any other failure of an untrusted pickle means it is truncated or corrupt
        raise LogFormatError(path, "<pickle>", f"truncated or corrupt pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, list):
        raise LogFormatError(path, "<pickle>", f"expected a list of frame dicts, got {type(raw).__name__}")
    if not raw:
        raise LogFormatError(path, "<pickle>", "log has no frames")
    return raw


def load_log(
    path: str | Path,
    require_annotations: bool = False,
    required_cameras: tuple[str, ...] | list[str] = CAMERA_NAMES,
    *,
    max_bytes: int | None = None,
    max_array_elements: int = DEFAULT_MAX_ARRAY_ELEMENTS,
) -> OpenSceneLog:
    """Read and validate one log; LogFormatError on the first problem found.

    Cameras listed in `required_cameras` must be present; other known cameras are read when present.
    `log_name` must be a plain file name and camera `data_path`s relative paths without '..' (both
    become paths). With max_bytes, the file must be a regular file of at most that size; arrays beyond
    max_array_elements are refused before allocation.
    """
    required = tuple(required_cameras)
    bad = [c for c in required if c not in CAMERA_NAMES]
    if bad:
        raise ValueError(f"required_cameras: unknown cameras {bad}")
    path = str(path)
    raw_frames = _load_frames(path, max_bytes, max_array_elements)
    frames: list[Frame] = []
    log_name = map_location = ""
    seen_tokens: set[str] = set()
    for index, raw in enumerate(raw_frames):
        parser = _FrameParser(path, index, raw)
        try:
            frame = parser.frame(require_annotations, required)
        except LogFormatError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:  # a value of the wrong kind
            raise LogFormatError(path, "<frame>", f"malformed value ({type(exc).__name__}: {exc})", index) from None
        name = parser.path_part(raw["log_name"], "log_name", whole_name=True)
        location = parser.text(raw["map_location"], "map_location")
        if index == 0:
            log_name, map_location = name, location
        else:
            if name != log_name:
                parser.fail("log_name", f"'{name}' differs from frame 0's '{log_name}'")
            if location != map_location:
                parser.fail("map_location", f"'{location}' differs from frame 0's '{map_location}'")
            if frame.token in seen_tokens:
                parser.fail("token", f"'{frame.token}' repeats an earlier frame's token")
            if frame.timestamp_us <= frames[-1].timestamp_us:
                parser.fail(
                    "timestamp", f"not increasing: {frame.timestamp_us} after {frames[-1].timestamp_us}"
                )
        frames.append(frame)
        seen_tokens.add(frame.token)
    return OpenSceneLog(path=path, log_name=log_name, map_location=map_location, frames=frames)


def read_log(
    path: str | Path, require_annotations: bool = False, required_cameras: tuple[str, ...] | list[str] = CAMERA_NAMES
) -> list[Frame]:
    """The frames of one log `<root>/navsim_logs/<split>/<log>.pkl`, validated."""
    return load_log(path, require_annotations, required_cameras).frames
