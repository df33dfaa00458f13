"""Route repair and the route centerline, after PDM-Closed's repaired route + Dijkstra.

Roadblock level: the route is cut to start at the roadblock under the ego (or joined to it by a short
BFS), and gaps between consecutive route roadblocks are closed by BFS. Lane level: Dijkstra over the
route's lanes and connectors (lane -> its outgoing connectors -> the lane each enters; cost = length of
the element entered; no lane changes), from the lane under the start pose to any element of the last
route roadblock, or, when that is unreachable, to the deepest route roadblock reached.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from drivefine_core.data.road_network import RoadNetwork


@dataclass
class RoutePlan:
    roadblock_ids: list[str]  # repaired route
    lane_path: list[str]  # lane / connector ids, in driving order
    centerline: np.ndarray  # (N, 2) concatenated centerlines of lane_path
    complete: bool  # the lane path reaches the last route roadblock


class RouteGraph:
    """Successor tables of one RoadNetwork (built once; RoadNetwork.successors scans every connector)."""

    def __init__(self, net: RoadNetwork) -> None:
        self.net = net
        self.element_successors: dict[str, list[str]] = {i: [] for i in net.lanes}
        for lc in net.lane_connectors.values():
            self.element_successors.setdefault(lc.from_lane_id, []).append(lc.id)
            self.element_successors[lc.id] = [lc.to_lane_id]
        self.block_successors: dict[str, list[str]] = {i: [] for i in net.roadblocks}
        for rc in net.roadblock_connectors.values():
            self.block_successors.setdefault(rc.from_roadblock_id, []).append(rc.id)
            self.block_successors[rc.id] = [rc.to_roadblock_id]
        self.length = {i: _length(net.centerline(i)) for i in (*net.lanes, *net.lane_connectors)}

    def elements_of_block(self, block_id: str) -> list[str]:
        if block_id in self.net.roadblocks:
            return list(self.net.roadblocks[block_id].lane_ids)
        if block_id in self.net.roadblock_connectors:
            return list(self.net.roadblock_connectors[block_id].lane_connector_ids)
        return []

    def bfs_blocks(self, start: str, goals: set[str], max_depth: int) -> list[str] | None:
        """Shortest roadblock path start -> any goal (both ends included) within max_depth hops."""
        parents: dict[str, str | None] = {start: None}
        queue = deque([(start, 0)])
        while queue:
            node, depth = queue.popleft()
            if node in goals and node != start:
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])  # type: ignore[arg-type]
                return path[::-1]
            if depth >= max_depth:
                continue
            for nxt in self.block_successors.get(node, []):
                if nxt not in parents:
                    parents[nxt] = node
                    queue.append((nxt, depth + 1))
        return None

    def repair(self, route: list[str], start_block: str | None, max_depth: int) -> list[str]:
        """Cut/extend the route to begin at start_block and close gaps between consecutive blocks."""
        route = [r for r in route if r in self.block_successors]
        if not route:
            return [start_block] if start_block else []
        if start_block is not None:
            if start_block in route:
                route = route[route.index(start_block) :]
            else:
                joined = self.bfs_blocks(start_block, set(route), max_depth)
                if joined is not None:
                    route = joined[:-1] + route[route.index(joined[-1]) :]
        fixed = [route[0]]
        for nxt in route[1:]:
            if nxt == fixed[-1]:
                continue
            if nxt not in self.block_successors.get(fixed[-1], []):
                bridge = self.bfs_blocks(fixed[-1], {nxt}, max_depth)
                if bridge is not None:
                    fixed.extend(bridge[1:-1])
            fixed.append(nxt)
        return fixed

    def lane_path(self, start: str, route: list[str]) -> tuple[list[str], bool]:
        """Dijkstra over the route's elements from `start` towards the last route block."""
        depth_of = {e: d for d, block in enumerate(route) for e in self.elements_of_block(block)}
        if start not in depth_of:
            return [start], False
        last = len(route) - 1
        dist = {start: 0.0}
        parent: dict[str, str] = {}
        heap = [(0.0, start)]
        best = start  # deepest block reached, then cheapest
        while heap:
            cost, node = heapq.heappop(heap)
            if cost > dist[node]:
                continue
            if (depth_of[node], -cost) > (depth_of[best], -dist[best]):
                best = node
            if depth_of[node] == last:
                best = node
                break
            for nxt in self.element_successors.get(node, []):
                if nxt not in depth_of or depth_of[nxt] < depth_of[node]:
                    continue
                alt = cost + self.length.get(nxt, 0.0)
                if alt < dist.get(nxt, float("inf")):
                    dist[nxt], parent[nxt] = alt, node
                    heapq.heappush(heap, (alt, nxt))
        path = [best]
        while path[-1] in parent:
            path.append(parent[path[-1]])
        return path[::-1], depth_of[best] == last

    def centerline(self, lane_path: list[str]) -> np.ndarray:
        pieces = [np.asarray(self.net.centerline(e), dtype=np.float64) for e in lane_path]
        if not pieces:
            return np.zeros((0, 2))
        # NAVSIM's centreline is the concatenation of the lanes' discrete paths: a joint repeats its point (the
        # end of one lane, the start of the next), and PDM-Closed's path keeps both with each lane's heading.
        return np.concatenate(pieces)


def _length(line: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(np.asarray(line), axis=0), axis=1)))
