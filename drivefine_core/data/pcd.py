"""Point clouds in the .pcd layout NAVSIM reads (nuplan-devkit's PointCloud parser: an ASCII header, then
`DATA binary` rows of little-endian fields). Merged OpenScene clouds carry six float32 fields per point:
x, y, z (lidar frame), intensity, ring, lidar_info (docs/navsim-rules.md, sensor files)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FIELDS = ("x", "y", "z", "intensity", "ring", "lidar_info")


def pcd_bytes(points: np.ndarray) -> bytes:
    """(N, 6) points -> the bytes of a binary .pcd file."""
    pts = np.ascontiguousarray(points, dtype="<f4")
    if pts.ndim != 2 or pts.shape[1] != len(FIELDS):
        raise ValueError(f"pcd: expected (N, {len(FIELDS)}) points, got {pts.shape}")
    n = len(pts)
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        "FIELDS " + " ".join(FIELDS),
        "SIZE " + " ".join(["4"] * len(FIELDS)),
        "TYPE " + " ".join(["F"] * len(FIELDS)),
        "COUNT " + " ".join(["1"] * len(FIELDS)),
        f"WIDTH {n}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {n}",
        "DATA binary",
    ]) + "\n"
    return header.encode("ascii") + pts.tobytes()


def write_pcd(path: str | Path, points: np.ndarray) -> None:
    """Atomic write of one point cloud."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(pcd_bytes(points))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_pcd(path: str | Path) -> np.ndarray:
    """A binary .pcd file -> (F, N) float32 rows in header order (NAVSIM's Lidar.lidar_pc layout)."""
    data = Path(path).read_bytes()
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = data.index(b"\n", pos)
        line = data[pos:end].decode("ascii").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    if header["DATA"] != ["binary"]:
        raise ValueError(f"pcd: {path}: DATA {header['DATA']} (only binary is read)")
    if set(header["TYPE"]) != {"F"} or set(header["SIZE"]) != {"4"}:
        raise ValueError(f"pcd: {path}: only float32 fields are read")
    n, f = int(header["POINTS"][0]), len(header["FIELDS"])
    rows = np.frombuffer(data, dtype="<f4", count=n * f, offset=pos).reshape(n, f)
    return rows.T.astype(np.float32)
