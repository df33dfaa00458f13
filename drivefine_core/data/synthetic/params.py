"""Knobs of the synthetic world generator (the `generate:` section of params.yaml)."""

from __future__ import annotations

from pydantic import Field, model_validator

from drivefine_core.params_base import Section


# nuPlan's four map locations (the folders under the maps root), in the order synthetic towns take them.
NUPLAN_LOCATIONS = ("us-nv-las-vegas-strip", "us-ma-boston", "us-pa-pittsburgh-hazelwood", "sg-one-north")


class GenerateParams(Section):
    seed: int = 0
    # maps
    num_maps: int = Field(1, ge=1)
    map_version: str = "1.0.0"
    # Write the towns under nuPlan's four location names (map version "synthetic-<map_version>"), all four under the
    # maps root, so an unmodified nuplan-devkit / NAVSIM opens them; logs drive on the first num_maps of them.
    nuplan_city_names: bool = False
    grid_nodes_x: int = Field(4, ge=2)  # intersections per row of the road grid
    grid_nodes_y: int = Field(4, ge=2)
    block_size_m: float = Field(150.0, ge=80.0)  # distance between neighbouring intersections
    node_jitter_m: float = Field(12.0, ge=0.0)
    road_bend_m: float = Field(18.0, ge=0.0)  # max lateral bulge of a road between two intersections
    max_lanes_per_direction: int = Field(3, ge=1, le=3)
    lane_width_m: float = 3.5
    edge_removal_fraction: float = Field(0.1, ge=0.0, le=0.5)  # removed grid edges -> 3-way junctions
    utm_origin: tuple[float, float] = (664000.0, 3997000.0)
    crs: str = "EPSG:32611"
    # logs
    num_logs: int = Field(4, ge=1)
    frames_per_log: int = Field(60, ge=16)
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "test": 0.2})
    # agents (per 100 m of lane near the ego route)
    vehicle_density_per_100m: float = Field(1.0, ge=0.0)
    slow_leader_prob: float = Field(0.35, ge=0.0, le=1.0)  # per log: a slow vehicle ahead of the ego
    cut_in_prob: float = Field(0.6, ge=0.0, le=1.0)  # per multi-lane roadblock on the route
    lane_change_prob: float = Field(0.3, ge=0.0, le=1.0)  # extra voluntary lane changes of the ego
    pedestrians_per_crosswalk: float = Field(1.0, ge=0.0)
    sidewalk_pedestrians_per_100m: float = Field(0.5, ge=0.0)
    static_objects_per_100m: float = Field(0.6, ge=0.0)
    annotation_radius_m: float = Field(70.0, ge=10.0)  # a track enters the annotations within this distance
    annotation_exit_margin_m: float = Field(10.0, ge=0.0)  # ... and leaves beyond annotation_radius_m + this
    # cameras
    image_width: int = Field(256, ge=32)
    image_height: int = Field(144, ge=18)
    cameras: list[str] = Field(default_factory=lambda: ["CAM_F0"])
    render_images: bool = True
    lidar: bool = False  # write a merged point cloud per frame (.pcd, as NAVSIM reads it); else lidar_path is None
    jpeg_quality: int = Field(85, ge=10, le=100)
    raster_resolution_m: float = Field(0.1, gt=0.0)
    workers: int = Field(1, ge=1)  # log-level processes (fork); output does not depend on it

    @model_validator(mode="after")
    def _check(self) -> "GenerateParams":
        if "CAM_F0" not in self.cameras:
            raise ValueError("GenerateParams.cameras: CAM_F0 is always rendered and must be listed")
        bad = [c for c in self.cameras if c not in ("CAM_F0", "CAM_L0", "CAM_R0")]
        if bad:
            raise ValueError(f"GenerateParams.cameras: only CAM_F0, CAM_L0, CAM_R0 can be rendered, got {bad}")
        if self.nuplan_city_names and self.num_maps > len(NUPLAN_LOCATIONS):
            raise ValueError(f"GenerateParams.num_maps: at most {len(NUPLAN_LOCATIONS)} with nuplan_city_names "
                             f"(one town per nuPlan location), got {self.num_maps}")
        if not self.splits or any(v < 0 for v in self.splits.values()) or sum(self.splits.values()) <= 0:
            raise ValueError("GenerateParams.splits: needs at least one split with a positive share")
        return self


class NavhardStartParams(Section):
    """Stage-2 starts for navhard-style two-stage scoring: the logged state ~4 s later, jittered."""

    offset_frames: int = Field(8, ge=1)  # 8 frames at 2 Hz = 4 s after the stage-1 current frame
    num_starts: int = Field(6, ge=1)
    lateral_std_m: float = Field(0.6, ge=0.0)
    heading_std_rad: float = Field(0.06, ge=0.0)
    speed_std_frac: float = Field(0.15, ge=0.0)
    max_lateral_m: float = Field(1.5, ge=0.0)  # clip: stay near the lane
    max_heading_rad: float = Field(0.2, ge=0.0)
    seed: int = 0
