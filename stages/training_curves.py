"""Training curves the sft / rl stages leave in metrics/*_curves.json, for the report."""

from __future__ import annotations

import json
from pathlib import Path

CURVE_FILES = ("metrics/sft_curves.json", "metrics/rl_curves.json")


def read_curves(files: tuple[str, ...] = CURVE_FILES) -> dict[str, list[tuple[int, float]]]:
    """{"<stage>/<name>": [(step, value), ...]} from files shaped {"name": [[step, value], ...]}."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for f in files:
        path = Path(f)
        if not path.exists():
            continue
        stage = path.stem.replace("_curves", "")
        for name, points in json.loads(path.read_text()).items():
            curves[f"{stage}/{name}"] = [(int(s), float(v)) for s, v in points]
    return curves
