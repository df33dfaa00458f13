"""Bounds the validation suites check. Loose on purpose: they catch broken data, not unusual driving."""

from __future__ import annotations

import math

from pydantic import Field

from drivefine_core.params_base import Section


class ValidationParams(Section):
    max_speed_mps: float = Field(45.0, gt=0, description="|v| of the ego (162 km/h)")
    max_reverse_speed_mps: float = Field(8.0, ge=0, description="how negative vx may be")
    max_abs_accel_mps2: float = Field(20.0, gt=0, description="each of ax, ay")
    max_abs_position_m: float = Field(1.0e7, gt=0, description="global x / y in the map's projected CRS")
    max_abs_heading_rad: float = Field(2 * math.pi, gt=0, description="global heading; 2 pi also admits unwrapped yaw")
    max_frame_step_s: float = Field(1.0, gt=0, description="largest gap between consecutive frames of a scene (2 Hz: 0.5 s)")
    min_scene_frames: int = Field(12, ge=1, description="4 history + 8 future")
    max_image_bytes: int = Field(500_000, gt=0, description="encoded bytes of one feature image")
    # Examples of failing values quoted per expectation and log in the report.
    example_values: int = Field(3, ge=0)
