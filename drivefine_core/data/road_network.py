"""In-memory road network: the graph a nuPlan map describes, in plain numpy.

The synthetic world is generated as a RoadNetwork, written to nuPlan GPKG by the map writer, and
read back from GPKG (synthetic or real) into the same structure. Coordinates are global metres in
the map's projected CRS. Ids are strings of the GPKG fids and are unique across all layers.

Direction conventions: every centerline runs in the driving direction. A lane connector leads
from `from_lane_id` to `to_lane_id`; in nuPlan's columns that is exit_lane_fid -> entry_lane_fid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Lane:
    id: str
    roadblock_id: str
    lane_index: int  # 0 is the leftmost lane of its roadblock
    centerline: np.ndarray  # (N, 2)
    width: float
    speed_limit_mps: float
    polygon: np.ndarray | None = None  # (M, 2) lane surface; None -> the writer buffers the centerline
    left_boundary_id: str | None = None
    right_boundary_id: str | None = None


@dataclass
class LaneConnector:
    id: str
    roadblock_connector_id: str
    from_lane_id: str
    to_lane_id: str
    centerline: np.ndarray  # (N, 2)
    width: float
    speed_limit_mps: float
    polygon: np.ndarray | None = None  # (M, 2); None -> the writer buffers the centerline
    intersection_id: str | None = None
    traffic_light_stop_line_ids: list[str] = field(default_factory=list)
    has_traffic_light: bool = False


@dataclass
class Roadblock:
    id: str
    lane_ids: list[str]
    polygon: np.ndarray  # (M, 2) exterior ring


@dataclass
class RoadblockConnector:
    id: str
    from_roadblock_id: str
    to_roadblock_id: str
    lane_connector_ids: list[str]
    polygon: np.ndarray  # (M, 2)
    intersection_id: str | None = None


@dataclass
class Intersection:
    id: str
    polygon: np.ndarray  # (M, 2)


@dataclass
class RoadNetwork:
    location: str  # map location name, e.g. "us-nv-las-vegas-strip" or a synthetic name
    version: str
    crs: str  # projected CRS of the coordinates, e.g. "EPSG:32611"
    lanes: dict[str, Lane] = field(default_factory=dict)
    lane_connectors: dict[str, LaneConnector] = field(default_factory=dict)
    roadblocks: dict[str, Roadblock] = field(default_factory=dict)
    roadblock_connectors: dict[str, RoadblockConnector] = field(default_factory=dict)
    intersections: dict[str, Intersection] = field(default_factory=dict)
    carparks: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (M, 2) polygon
    crosswalks: dict[str, np.ndarray] = field(default_factory=dict)
    stop_polygons: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)  # id -> (type, polygon)

    def successors(self, element_id: str) -> list[str]:
        """Lane -> its outgoing connectors; connector -> the lane it leads to."""
        if element_id in self.lane_connectors:
            return [self.lane_connectors[element_id].to_lane_id]
        return [c.id for c in self.lane_connectors.values() if c.from_lane_id == element_id]

    def centerline(self, element_id: str) -> np.ndarray:
        if element_id in self.lanes:
            return self.lanes[element_id].centerline
        return self.lane_connectors[element_id].centerline

    def roadblock_of(self, element_id: str) -> str:
        """The roadblock (lane) or roadblock connector (lane connector) an element belongs to."""
        if element_id in self.lanes:
            return self.lanes[element_id].roadblock_id
        return self.lane_connectors[element_id].roadblock_connector_id
