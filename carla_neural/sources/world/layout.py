"""Procedural layouts: the road network, the ground map (painted road surface) and static boxes."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from carla_neural.sources.world import tags as T

logger = logging.getLogger(__name__)

LAYOUTS = ("urban", "highway")


@dataclass
class Edge:
    """A road between two nodes: a centre polyline from node_a to node_b and its cross-section."""

    points: np.ndarray  # (N, 2) float64 metres
    node_a: int
    node_b: int
    lanes_per_direction: int
    lane_width: float
    median: float
    sidewalk: float
    cum: np.ndarray = field(init=False)  # (N,) arc length

    def __post_init__(self) -> None:
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self.cum = np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        return float(self.cum[-1])

    @property
    def half_width(self) -> float:
        """Half the paved width, kerb to kerb, in metres."""
        return self.median / 2.0 + self.lanes_per_direction * self.lane_width


def resample_polyline(points: np.ndarray, spacing: float) -> np.ndarray:
    """(N, 2) polyline -> (M, 2) points evenly spaced along it by about `spacing` metres."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    count = max(2, int(math.ceil(cum[-1] / spacing)) + 1)
    samples = np.linspace(0.0, cum[-1], count)
    return np.stack([np.interp(samples, cum, points[:, 0]), np.interp(samples, cum, points[:, 1])], axis=1)


def polyline_frames(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) polyline -> unit tangents (N, 2) and right-hand normals (N, 2)."""
    tangents = np.gradient(points, axis=0)
    tangents /= np.maximum(np.linalg.norm(tangents, axis=1, keepdims=True), 1e-9)
    normals = np.stack([tangents[:, 1], -tangents[:, 0]], axis=1)
    return tangents, normals


def trim_polyline(points: np.ndarray, start: float, end: float) -> np.ndarray:
    """Keep the part of a polyline between arc lengths `start` and `length - end`."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    stop = cum[-1] - end
    if stop - start < 0.5:
        middle = (start + stop) / 2.0
        start, stop = middle - 0.25, middle + 0.25
    keep = (cum > start) & (cum < stop)
    first = [np.interp(start, cum, points[:, 0]), np.interp(start, cum, points[:, 1])]
    last = [np.interp(stop, cum, points[:, 0]), np.interp(stop, cum, points[:, 1])]
    return np.vstack([first, points[keep], last])


@dataclass
class RoadNetwork:
    """Nodes (junctions or bends) joined by edges; lanes are offsets of the edge centre lines."""

    nodes: np.ndarray  # (K, 2)
    edges: list[Edge]
    node_clearance: np.ndarray = field(init=False)  # (K,) metres kept free of lane paths at each node

    def __post_init__(self) -> None:
        self.node_edges: list[list[int]] = [[] for _ in range(len(self.nodes))]
        for index, edge in enumerate(self.edges):
            self.node_edges[edge.node_a].append(index)
            self.node_edges[edge.node_b].append(index)
        self.node_clearance = np.zeros(len(self.nodes))
        for node, incident in enumerate(self.node_edges):
            if len(incident) >= 3:
                widest = max(self.edges[e].half_width + self.edges[e].sidewalk for e in incident)
                self.node_clearance[node] = widest + 1.0
            elif len(incident) == 2 and self._corner_angle(node) > math.radians(30.0):
                # A bend sharp enough to need room for a turning curve (the grid's outer corners).
                self.node_clearance[node] = max(self.edges[e].half_width for e in incident) + 2.0
            else:
                self.node_clearance[node] = 3.0

    def _corner_angle(self, node: int) -> float:
        """Heading change (radians) of a road passing through a node where two edges meet."""
        directions = []
        for edge_index in self.node_edges[node]:
            points = self.edges[edge_index].points
            # Direction of travel away from the node along each edge.
            away = points[min(5, len(points) - 1)] - points[0] if self.edges[edge_index].node_a == node \
                else points[max(-6, -len(points))] - points[-1]
            directions.append(away / (np.linalg.norm(away) + 1e-9))
        # Straight through: the two "away" directions are opposite.
        return math.pi - math.acos(float(np.clip(directions[0] @ directions[1], -1.0, 1.0)))

    def is_junction(self, node: int) -> bool:
        """True where three or more roads meet."""
        return len(self.node_edges[node]) >= 3

    def lane_path(self, edge_index: int, forward: bool, lane: int) -> np.ndarray:
        """(M, 2) points of one lane, in driving direction, trimmed clear of both end nodes."""
        edge = self.edges[edge_index]
        points = edge.points if forward else edge.points[::-1]
        start_node, end_node = (edge.node_a, edge.node_b) if forward else (edge.node_b, edge.node_a)
        _, normals = polyline_frames(points)
        offset = edge.median / 2.0 + (lane + 0.5) * edge.lane_width
        lane_points = points + normals * offset
        return trim_polyline(lane_points, self.node_clearance[start_node], self.node_clearance[end_node])

    def sidewalk_path(self, edge_index: int, right_side: bool) -> np.ndarray:
        """(M, 2) points along the middle of one sidewalk of an edge, trimmed at junctions."""
        edge = self.edges[edge_index]
        _, normals = polyline_frames(edge.points)
        offset = edge.half_width + edge.sidewalk * 0.55
        side_points = edge.points + normals * (offset if right_side else -offset)
        clear_a = self.node_clearance[edge.node_a] - edge.sidewalk if self.is_junction(edge.node_a) else 0.0
        clear_b = self.node_clearance[edge.node_b] - edge.sidewalk if self.is_junction(edge.node_b) else 0.0
        return trim_polyline(side_points, max(clear_a, 0.0), max(clear_b, 0.0))

    def end_node(self, edge_index: int, forward: bool) -> int:
        """The node a vehicle reaches driving along the edge in that direction."""
        edge = self.edges[edge_index]
        return edge.node_b if forward else edge.node_a

    def exits(self, node: int, arriving_edge: int) -> list[tuple[int, bool]]:
        """(edge, forward) choices leaving `node`, without a U-turn unless it is a dead end."""
        choices = []
        for edge_index in self.node_edges[node]:
            edge = self.edges[edge_index]
            if edge_index == arriving_edge and len(self.node_edges[node]) > 1:
                continue
            choices.append((edge_index, edge.node_a == node))
        return choices or [(arriving_edge, self.edges[arriving_edge].node_a == node)]


@dataclass
class GroundMap:
    """Top-down raster of ground materials (tags.GROUND_*) at `resolution` metres per cell."""

    materials: np.ndarray  # (rows, cols) uint8, row = (y - origin_y) / resolution
    origin: tuple[float, float]
    resolution: float

    def to_cells(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world metres -> (N, 2) float cell coordinates (col, row)."""
        return (xy - np.asarray(self.origin)) / self.resolution

    def material_at(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world metres -> (N,) uint8 ground materials (grass outside the map)."""
        cells = np.floor(self.to_cells(xy)).astype(np.int64)
        rows, cols = self.materials.shape
        inside = (cells[:, 0] >= 0) & (cells[:, 0] < cols) & (cells[:, 1] >= 0) & (cells[:, 1] < rows)
        out = np.full(len(xy), T.GROUND_GRASS, np.uint8)
        out[inside] = self.materials[cells[inside, 1], cells[inside, 0]]
        return out


@dataclass
class BoxSet:
    """Static oriented boxes standing on the ground (every visible solid of the world is one)."""

    center: np.ndarray  # (N, 3) bottom-centre, metres
    size: np.ndarray  # (N, 3) length along yaw, width, height
    yaw: np.ndarray  # (N,) radians, counter-clockwise from +x
    tag: np.ndarray  # (N,) uint8 CARLA 0.9.14 tag
    instance: np.ndarray  # (N,) int32 object id (shared by the boxes of one object)
    material: np.ndarray  # (N,) uint8 tags.MAT_*
    colour: np.ndarray  # (N, 3) float32 linear-ish RGB in 0..1
    param: np.ndarray  # (N, 2) float32 material parameters (facade: window spacing, floor height)

    def __len__(self) -> int:
        return len(self.tag)


class BoxBuilder:
    """Collects boxes one at a time, then packs them into a BoxSet."""

    def __init__(self, first_instance: int = 1) -> None:
        self.rows: list[tuple] = []
        self.next_instance = first_instance

    def new_instance(self) -> int:
        instance = self.next_instance
        self.next_instance += 1
        return instance

    def add(
        self,
        center: tuple[float, float, float],
        size: tuple[float, float, float],
        yaw: float,
        tag: int,
        instance: int,
        material: int,
        colour: tuple[float, float, float] | np.ndarray,
        param: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.rows.append((center, size, yaw, tag, instance, material, tuple(colour), param))

    def build(self) -> BoxSet:
        if not self.rows:
            empty = np.zeros((0, 3))
            return BoxSet(empty, empty, np.zeros(0), np.zeros(0, np.uint8), np.zeros(0, np.int32),
                          np.zeros(0, np.uint8), np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32))
        columns = list(zip(*self.rows))
        return BoxSet(
            center=np.array(columns[0], np.float64),
            size=np.array(columns[1], np.float64),
            yaw=np.array(columns[2], np.float64),
            tag=np.array(columns[3], np.uint8),
            instance=np.array(columns[4], np.int32),
            material=np.array(columns[5], np.uint8),
            colour=np.array(columns[6], np.float32),
            param=np.array(columns[7], np.float32),
        )


@dataclass
class Layout:
    """Everything static in a world: roads, the painted ground and the boxes standing on it."""

    name: str
    network: RoadNetwork
    ground: GroundMap
    boxes: BoxSet
    emitted_tags: frozenset[int]
    next_instance: int


# ----------------------------------------------------------------------------------------------
# Road networks


def _wavy(base: float, amplitude: float, wavelength: float, phase: float):
    return lambda t: base + amplitude * np.sin(2.0 * np.pi * t / wavelength + phase)


def _urban_network(rng: np.random.Generator, blocks: int) -> RoadNetwork:
    """A grid of gently curving two-way streets; the outer streets close the grid into a ring."""
    count = blocks + 1
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(70.0, 105.0, count - 1))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(70.0, 105.0, count - 1))])
    xs -= xs[-1] / 2.0
    ys -= ys[-1] / 2.0

    def curve(base: float) -> tuple:
        curvy = rng.random() < 0.6
        return _wavy(base, rng.uniform(3.0, 9.0) if curvy else 0.0, rng.uniform(180.0, 320.0), rng.uniform(0, 6.28))

    vertical = [curve(x) for x in xs]  # x = f(y)
    horizontal = [curve(y) for y in ys]  # y = g(x)
    lanes_v = [2 if rng.random() < 0.25 else 1 for _ in xs]
    lanes_h = [2 if rng.random() < 0.25 else 1 for _ in ys]

    node_xy = np.zeros((count, count, 2))
    for i in range(count):
        for j in range(count):
            y = ys[j]
            for _ in range(30):
                x = vertical[i](y)
                y = horizontal[j](x)
            node_xy[i, j] = (vertical[i](y), y)
    node_index = np.arange(count * count).reshape(count, count)
    edges: list[Edge] = []
    for i in range(count):
        for j in range(count - 1):
            y0, y1 = node_xy[i, j, 1], node_xy[i, j + 1, 1]
            samples = np.linspace(y0, y1, max(3, int((y1 - y0) / 1.0)))
            points = np.stack([vertical[i](samples), samples], axis=1)
            points[0], points[-1] = node_xy[i, j], node_xy[i, j + 1]
            edges.append(Edge(points, int(node_index[i, j]), int(node_index[i, j + 1]), lanes_v[i], 3.5,
                              0.0, 3.5))
    for j in range(count):
        for i in range(count - 1):
            x0, x1 = node_xy[i, j, 0], node_xy[i + 1, j, 0]
            samples = np.linspace(x0, x1, max(3, int((x1 - x0) / 1.0)))
            points = np.stack([samples, horizontal[j](samples)], axis=1)
            points[0], points[-1] = node_xy[i, j], node_xy[i + 1, j]
            edges.append(Edge(points, int(node_index[i, j]), int(node_index[i + 1, j]), lanes_h[j], 3.5,
                              0.0, 3.5))
    return RoadNetwork(node_xy.reshape(-1, 2), edges)


def _highway_network(rng: np.random.Generator) -> RoadNetwork:
    """One closed, curving dual carriageway (three lanes each way), cut into six edges."""
    angles = np.linspace(0.0, 2.0 * np.pi, 721)[:-1]
    radius = 230.0 * (1.0 + 0.12 * np.sin(2 * angles + rng.uniform(0, 6.28))
                      + 0.06 * np.sin(3 * angles + rng.uniform(0, 6.28)))
    loop = np.stack([1.3 * radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    loop = resample_polyline(np.vstack([loop, loop[:1]]), 1.0)[:-1]
    cuts = np.linspace(0, len(loop), 7).astype(int)[:-1]
    nodes = loop[cuts]
    edges = []
    for k in range(6):
        start, stop = cuts[k], cuts[(k + 1) % 6]
        points = loop[start:stop + 1] if k < 5 else np.vstack([loop[start:], loop[:1]])
        edges.append(Edge(points, k, (k + 1) % 6, 3, 3.6, 3.0, 2.5))
    return RoadNetwork(nodes, edges)


# ----------------------------------------------------------------------------------------------
# Painting the ground


def _draw_polyline(canvas: np.ndarray, ground: GroundMap, points: np.ndarray, value: int, width_m: float) -> None:
    shift = 3
    cells = np.round(ground.to_cells(points) * (1 << shift)).astype(np.int32)
    thickness = max(1, int(round(width_m / ground.resolution)))
    cv2.polylines(canvas, [cells.reshape(-1, 1, 2)], False, int(value), thickness, cv2.LINE_8, shift)


def _dashes(points: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    resampled = resample_polyline(points, 0.5)
    steps = np.linalg.norm(np.diff(resampled, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    phase = np.mod(cum, dash + gap) < dash
    pieces, start = [], None
    for index, on in enumerate(phase):
        if on and start is None:
            start = index
        elif not on and start is not None:
            if index - start >= 2:
                pieces.append(resampled[start:index])
            start = None
    if start is not None and len(resampled) - start >= 2:
        pieces.append(resampled[start:])
    return pieces


def _paint_ground(network: RoadNetwork, margin: float, resolution: float) -> GroundMap:
    all_points = np.vstack([edge.points for edge in network.edges])
    lo = all_points.min(axis=0) - margin
    hi = all_points.max(axis=0) + margin
    cols, rows = (np.ceil((hi - lo) / resolution)).astype(int)
    ground = GroundMap(np.full((rows, cols), T.GROUND_GRASS, np.uint8), (float(lo[0]), float(lo[1])), resolution)
    canvas = ground.materials
    for edge in network.edges:
        _draw_polyline(canvas, ground, edge.points, T.GROUND_SIDEWALK, 2 * (edge.half_width + edge.sidewalk))
    for edge in network.edges:
        _draw_polyline(canvas, ground, edge.points, T.GROUND_CURB, 2 * edge.half_width + 0.5)
    for edge in network.edges:
        _draw_polyline(canvas, ground, edge.points, T.GROUND_ASPHALT, 2 * edge.half_width)
    for node in range(len(network.nodes)):
        if network.is_junction(node) or network.node_clearance[node] > 3.0:
            radius = max(network.edges[e].half_width for e in network.node_edges[node]) + 1.5
            center = np.round(ground.to_cells(network.nodes[node][None])[0] * 8).astype(np.int32)
            cv2.circle(canvas, (int(center[0]), int(center[1])), int(radius / resolution * 8), T.GROUND_ASPHALT,
                       -1, cv2.LINE_8, 3)
    for edge_index, edge in enumerate(network.edges):
        clear_a = network.node_clearance[edge.node_a] if network.is_junction(edge.node_a) else 0.0
        clear_b = network.node_clearance[edge.node_b] if network.is_junction(edge.node_b) else 0.0
        centre = trim_polyline(edge.points, clear_a, clear_b)
        _, normals = polyline_frames(centre)
        line_w = 0.15
        if edge.median > 0:
            for side in (-1.0, 1.0):
                inner = centre + normals * side * (edge.median / 2.0 + 0.2)
                _draw_polyline(canvas, ground, inner, T.GROUND_LINE_YELLOW, line_w)
        elif edge.lanes_per_direction >= 2:
            for side in (-0.12, 0.12):
                _draw_polyline(canvas, ground, centre + normals * side, T.GROUND_LINE_YELLOW, line_w)
        else:
            for piece in _dashes(centre, 3.0, 3.0):
                _draw_polyline(canvas, ground, piece, T.GROUND_LINE_WHITE, line_w)
        for lane in range(1, edge.lanes_per_direction):
            for side in (-1.0, 1.0):
                offset = side * (edge.median / 2.0 + lane * edge.lane_width)
                for piece in _dashes(centre + normals * offset, 3.0, 6.0 if edge.median > 0 else 4.0):
                    _draw_polyline(canvas, ground, piece, T.GROUND_LINE_WHITE, line_w)
        for side in (-1.0, 1.0):
            _draw_polyline(canvas, ground, centre + normals * side * (edge.half_width - 0.35), T.GROUND_LINE_WHITE,
                           line_w)
        # Zebra crossings just outside each junction, stripes parallel to the road.
        for at_start, node in ((True, edge.node_a), (False, edge.node_b)):
            if not network.is_junction(node):
                continue
            along = network.node_clearance[node] - 2.0
            arc = along if at_start else edge.length - along
            index = int(np.clip(np.searchsorted(edge.cum, arc), 1, len(edge.points) - 2))
            tangent, normal = polyline_frames(edge.points[index - 1:index + 2])
            base = edge.points[index]
            for offset in np.arange(-edge.half_width + 0.6, edge.half_width - 0.3, 1.0):
                middle = base + normal[1] * offset
                stripe = np.stack([middle - tangent[1] * 1.5, middle + tangent[1] * 1.5])
                _draw_polyline(canvas, ground, stripe, T.GROUND_LINE_WHITE, 0.5)
    return ground


# ----------------------------------------------------------------------------------------------
# Static objects

FACADE_COLOURS = np.array(
    [[0.72, 0.66, 0.56], [0.62, 0.60, 0.58], [0.55, 0.33, 0.26], [0.80, 0.78, 0.72], [0.45, 0.47, 0.50],
     [0.70, 0.55, 0.42], [0.58, 0.62, 0.66], [0.82, 0.74, 0.60], [0.40, 0.36, 0.34]],
    np.float32,
)


class _Occupancy:
    """A 1 m grid of taken ground, so that objects never overlap roads or each other."""

    def __init__(self, ground: GroundMap) -> None:
        self.cell = 1.0
        self.origin = np.asarray(ground.origin)
        factor = int(round(self.cell / ground.resolution))
        rows, cols = ground.materials.shape
        rows_c, cols_c = rows // factor, cols // factor
        coarse = ground.materials[: rows_c * factor, : cols_c * factor].reshape(rows_c, factor, cols_c, factor)
        self.taken = (coarse != T.GROUND_GRASS).any(axis=(1, 3))

    def _footprint_cells(self, center: np.ndarray, length: float, width: float, yaw: float, pad: float):
        c, s = math.cos(yaw), math.sin(yaw)
        half_l, half_w = length / 2 + pad, width / 2 + pad
        corners = np.array([[half_l, half_w], [half_l, -half_w], [-half_l, -half_w], [-half_l, half_w]])
        world = center[:2] + corners @ np.array([[c, s], [-s, c]])
        return ((world - self.origin) / self.cell).astype(np.int32)

    def free(self, center: np.ndarray, length: float, width: float, yaw: float, pad: float = 0.3) -> bool:
        cells = self._footprint_cells(center, length, width, yaw, pad)
        rows, cols = self.taken.shape
        if cells.min() < 0 or cells[:, 0].max() >= cols or cells[:, 1].max() >= rows:
            return False
        lo, hi = cells.min(axis=0), cells.max(axis=0) + 1
        patch = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        cv2.fillConvexPoly(patch, (cells - lo).reshape(-1, 1, 2), 1)
        return not bool((self.taken[lo[1]:hi[1], lo[0]:hi[0]] & patch.astype(bool)).any())

    def take(self, center: np.ndarray, length: float, width: float, yaw: float, pad: float = 0.3) -> None:
        cells = self._footprint_cells(center, length, width, yaw, pad)
        canvas = self.taken.view(np.uint8)
        cv2.fillConvexPoly(canvas, cells.reshape(-1, 1, 2), 1)


def _add_tree(builder: BoxBuilder, rng: np.random.Generator, x: float, y: float, scale: float = 1.0) -> None:
    instance = builder.new_instance()
    yaw = rng.uniform(0, np.pi)
    trunk_h = rng.uniform(2.0, 3.2) * scale
    builder.add((x, y, 0.0), (0.35 * scale, 0.35 * scale, trunk_h), yaw, T.VEGETATION, instance, T.MAT_BARK,
                (0.35, 0.25, 0.18))
    crown = rng.uniform(2.8, 4.5) * scale
    green = np.array([0.22, 0.38, 0.16]) * rng.uniform(0.8, 1.2)
    builder.add((x, y, trunk_h - 0.3), (crown, crown * rng.uniform(0.8, 1.0), crown * rng.uniform(0.9, 1.4)), yaw,
                T.VEGETATION, instance, T.MAT_FOLIAGE, green)


def _add_pole(builder: BoxBuilder, x: float, y: float, height: float, yaw: float) -> None:
    builder.add((x, y, 0.0), (0.22, 0.22, height), yaw, T.POLE, builder.new_instance(), T.MAT_METAL,
                (0.42, 0.43, 0.45))


def _add_sign(builder: BoxBuilder, rng: np.random.Generator, x: float, y: float, yaw: float) -> None:
    _add_pole(builder, x, y, 2.9, yaw)
    colour = [(0.75, 0.12, 0.10), (0.12, 0.25, 0.65), (0.85, 0.85, 0.82), (0.85, 0.70, 0.10)][rng.integers(4)]
    builder.add((x, y, 2.0), (0.08, 0.8, 0.8), yaw, T.TRAFFIC_SIGN, builder.new_instance(), T.MAT_PLAIN, colour)


def _add_traffic_light(builder: BoxBuilder, x: float, y: float, yaw: float, arm: float) -> None:
    """A pole at the kerb with a light housing hung over the lane, facing the arriving traffic."""
    _add_pole(builder, x, y, 5.2, yaw)
    c, s = math.cos(yaw), math.sin(yaw)
    # The arm reaches left of the facing direction (over the road).
    ax, ay = x - s * arm / 2, y + c * arm / 2
    builder.add((ax, ay, 5.0), (0.15, arm, 0.15), yaw, T.POLE, builder.new_instance(), T.MAT_METAL,
                (0.42, 0.43, 0.45))
    hx, hy = x - s * arm * 0.8, y + c * arm * 0.8
    builder.add((hx, hy, 3.9), (0.35, 0.4, 1.1), yaw, T.TRAFFIC_LIGHT, builder.new_instance(), T.MAT_LIGHT,
                (0.12, 0.12, 0.12))


def _roadside_objects(layout_name: str, network: RoadNetwork, ground: GroundMap, rng: np.random.Generator,
                      builder: BoxBuilder, occupancy: _Occupancy) -> None:
    urban = layout_name == "urban"
    for edge_index, edge in enumerate(network.edges):
        tangents, normals = polyline_frames(edge.points)
        clear_a = network.node_clearance[edge.node_a] + 1.0 if network.is_junction(edge.node_a) else 0.0
        clear_b = network.node_clearance[edge.node_b] + 1.0 if network.is_junction(edge.node_b) else 0.0
        for side in (1.0, -1.0):
            kerb = edge.half_width + (0.7 if urban else edge.sidewalk + 1.5)
            # Street furniture at the kerb: trees, lamps, signs.
            arc = clear_a + rng.uniform(2.0, 8.0)
            while arc < edge.length - clear_b:
                index = int(np.searchsorted(edge.cum, arc))
                index = min(index, len(edge.points) - 1)
                point = edge.points[index] + normals[index] * side * kerb
                yaw = math.atan2(tangents[index, 1], tangents[index, 0])
                roll = rng.random()
                if roll < (0.45 if urban else 0.25):
                    if occupancy.free(np.append(point, 0), 1.0, 1.0, yaw, 0.0):
                        _add_tree(builder, rng, point[0], point[1], 1.0 if urban else 1.3)
                        occupancy.take(np.append(point, 0), 1.0, 1.0, yaw, 0.0)
                elif roll < 0.75:
                    _add_pole(builder, point[0], point[1], 7.5 if urban else 9.0, yaw)
                elif roll < 0.85:
                    facing = yaw + (math.pi if side > 0 else 0.0)
                    _add_sign(builder, rng, point[0], point[1], facing)
                arc += rng.uniform(9.0, 18.0) if urban else rng.uniform(20.0, 40.0)
            if not urban:
                continue
            # Buildings (or a park with a fence) along each side of the street.
            setback = edge.half_width + edge.sidewalk + 0.4
            park = rng.random() < 0.15
            park_fence = rng.random() < 0.5
            arc = clear_a + 2.0
            while arc < edge.length - clear_b - 4.0:
                index = min(int(np.searchsorted(edge.cum, arc)), len(edge.points) - 1)
                yaw = math.atan2(tangents[index, 1], tangents[index, 0])
                if park:
                    length = 6.0
                    center = edge.points[index] + normals[index] * side * (setback + 0.1)
                    if occupancy.free(np.append(center, 0), length, 0.2, yaw, 0.05):
                        tag, height, colour, material = (
                            (T.FENCE, 1.3, (0.35, 0.36, 0.34), T.MAT_METAL)
                            if park_fence else (T.WALL, 1.8, (0.62, 0.58, 0.52), T.MAT_CONCRETE)
                        )
                        builder.add((center[0], center[1], 0.0), (length, 0.2, height), yaw, tag,
                                    builder.new_instance(), material, colour)
                        occupancy.take(np.append(center, 0), length, 0.2, yaw, 0.05)
                    for _ in range(2):
                        depth = rng.uniform(5.0, 25.0)
                        spot = edge.points[index] + normals[index] * side * (setback + depth)
                        spot += tangents[index] * rng.uniform(-3, 3)
                        if occupancy.free(np.append(spot, 0), 1.5, 1.5, 0.0, 0.5):
                            if rng.random() < 0.7:
                                _add_tree(builder, rng, spot[0], spot[1], rng.uniform(1.0, 1.6))
                            else:
                                builder.add((spot[0], spot[1], 0.0), (2.5, 1.2, 1.1), yaw, T.VEGETATION,
                                            builder.new_instance(), T.MAT_FOLIAGE, (0.20, 0.34, 0.14))
                            occupancy.take(np.append(spot, 0), 1.5, 1.5, 0.0, 0.5)
                    arc += length + 0.3
                    continue
                width = rng.uniform(10.0, 24.0)
                depth = rng.uniform(10.0, 22.0)
                gap = rng.uniform(2.5, 7.0) if rng.random() < 0.6 else 0.0
                offset = setback + rng.uniform(0.0, 2.0) + depth / 2
                center = edge.points[index] + tangents[index] * width / 2 + normals[index] * side * offset
                if occupancy.free(np.append(center, 0), width, depth, yaw):
                    height = float(np.clip(rng.lognormal(math.log(14.0), 0.55), 5.0, 70.0))
                    colour = FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))] * rng.uniform(0.85, 1.1)
                    params = (rng.uniform(2.4, 4.0), rng.uniform(3.0, 3.8))
                    builder.add((center[0], center[1], 0.0), (width, depth, height), yaw, T.BUILDING,
                                builder.new_instance(), T.MAT_FACADE, np.clip(colour, 0, 1), params)
                    occupancy.take(np.append(center, 0), width, depth, yaw)
                    if gap > 2.0:
                        wall_center = edge.points[index] + tangents[index] * (width + gap / 2)
                        wall_center += normals[index] * side * (setback + 0.2)
                        if occupancy.free(np.append(wall_center, 0), gap, 0.25, yaw, 0.0):
                            if rng.random() < 0.5:
                                builder.add((wall_center[0], wall_center[1], 0.0), (gap, 0.25, 2.2), yaw, T.WALL,
                                            builder.new_instance(), T.MAT_CONCRETE, (0.60, 0.57, 0.52))
                            else:
                                builder.add((wall_center[0], wall_center[1], 0.0), (gap, 0.08, 1.6), yaw, T.FENCE,
                                            builder.new_instance(), T.MAT_METAL, (0.33, 0.35, 0.33))
                            occupancy.take(np.append(wall_center, 0), gap, 0.25, yaw, 0.0)
                    arc += width + gap
                else:
                    arc += 3.0
    if not urban:
        return
    # Traffic lights: one per road arriving at a junction, on the right kerb, facing the traffic.
    for node in range(len(network.nodes)):
        if not network.is_junction(node):
            continue
        for edge_index in network.node_edges[node]:
            edge = network.edges[edge_index]
            arriving_forward = edge.node_b == node
            points = edge.points if arriving_forward else edge.points[::-1]
            tangents, normals = polyline_frames(points)
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
            arc = cum[-1] - network.node_clearance[node] + 0.5
            index = int(np.clip(np.searchsorted(cum, arc), 0, len(points) - 1))
            base = points[index] + normals[index] * (edge.half_width + 0.6)
            facing = math.atan2(-tangents[index, 1], -tangents[index, 0])
            _add_traffic_light(builder, base[0], base[1], facing, edge.lanes_per_direction * edge.lane_width * 0.9)


def _highway_extras(network: RoadNetwork, ground: GroundMap, rng: np.random.Generator, builder: BoxBuilder,
                    occupancy: _Occupancy) -> None:
    """Median guard rails, noise walls and fences, and a few warehouses away from the road."""
    for edge in network.edges:
        points = resample_polyline(edge.points, 4.0)
        tangents, normals = polyline_frames(points)
        for index in range(len(points) - 1):
            middle = (points[index] + points[index + 1]) / 2
            direction = points[index + 1] - points[index]
            yaw = math.atan2(direction[1], direction[0])
            length = float(np.linalg.norm(direction)) + 0.05
            builder.add((middle[0], middle[1], 0.0), (length, 0.3, 0.8), yaw, T.GUARD_RAIL, 0, T.MAT_METAL,
                        (0.60, 0.62, 0.64))
        for side in (1.0, -1.0):
            barrier_kind = rng.integers(3)
            offset = edge.half_width + edge.sidewalk + 6.0
            for index in range(len(points) - 1):
                if index % 25 == 0:
                    barrier_kind = rng.integers(3)
                middle = (points[index] + points[index + 1]) / 2 + normals[index] * side * offset
                direction = points[index + 1] - points[index]
                yaw = math.atan2(direction[1], direction[0])
                length = float(np.linalg.norm(direction)) + 0.05
                if barrier_kind == 0:
                    builder.add((middle[0], middle[1], 0.0), (length, 0.3, 3.5), yaw, T.WALL, 0, T.MAT_CONCRETE,
                                (0.58, 0.56, 0.52))
                elif barrier_kind == 1:
                    builder.add((middle[0], middle[1], 0.0), (length, 0.1, 1.6), yaw, T.FENCE, 0, T.MAT_METAL,
                                (0.36, 0.38, 0.36))
                occupancy.take(np.append(middle, 0), length, 0.5, yaw, 0.0)
    # Instance ids: each guard-rail, wall and fence run shares one id per edge side, like a CARLA mesh.
    for _ in range(40):
        x = rng.uniform(ground.origin[0] + 20, ground.origin[0] + ground.materials.shape[1] * ground.resolution - 20)
        y = rng.uniform(ground.origin[1] + 20, ground.origin[1] + ground.materials.shape[0] * ground.resolution - 20)
        width, depth, height = rng.uniform(20, 45), rng.uniform(15, 30), rng.uniform(6, 14)
        yaw = rng.uniform(0, np.pi)
        if occupancy.free(np.array([x, y, 0.0]), width, depth, yaw, 4.0):
            colour = FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))]
            builder.add((x, y, 0.0), (width, depth, height), yaw, T.BUILDING, builder.new_instance(), T.MAT_FACADE,
                        colour, (rng.uniform(4.0, 7.0), rng.uniform(4.0, 5.0)))
            occupancy.take(np.array([x, y, 0.0]), width, depth, yaw, 4.0)
    for _ in range(220):
        x = rng.uniform(ground.origin[0] + 5, ground.origin[0] + ground.materials.shape[1] * ground.resolution - 5)
        y = rng.uniform(ground.origin[1] + 5, ground.origin[1] + ground.materials.shape[0] * ground.resolution - 5)
        if occupancy.free(np.array([x, y, 0.0]), 2.0, 2.0, 0.0, 0.5):
            _add_tree(builder, rng, x, y, rng.uniform(1.2, 1.8))
            occupancy.take(np.array([x, y, 0.0]), 2.0, 2.0, 0.0, 0.5)


def _dirt_patches(ground: GroundMap, rng: np.random.Generator, count: int) -> None:
    rows, cols = ground.materials.shape
    patch_canvas = np.zeros_like(ground.materials)
    for _ in range(count):
        center = (int(rng.integers(cols)), int(rng.integers(rows)))
        axes = (int(rng.uniform(3, 12) / ground.resolution), int(rng.uniform(3, 12) / ground.resolution))
        cv2.ellipse(patch_canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    grass = ground.materials == T.GROUND_GRASS
    ground.materials[grass & (patch_canvas > 0)] = T.GROUND_DIRT


def build_layout(name: str, seed: int, blocks: int = 4, resolution: float = 0.1) -> Layout:
    """Generate the static world for a layout name ("urban" or "highway") and seed."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}: choose one of {', '.join(LAYOUTS)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    if name == "urban":
        network = _urban_network(rng, blocks)
        ground = _paint_ground(network, 45.0, resolution)
    else:
        network = _highway_network(rng)
        ground = _paint_ground(network, 45.0, max(resolution, 0.15))
    _dirt_patches(ground, rng, 160 if name == "urban" else 120)
    occupancy = _Occupancy(ground)
    builder = BoxBuilder()
    _roadside_objects(name, network, ground, rng, builder, occupancy)
    if name == "highway":
        _highway_extras(network, ground, rng, builder, occupancy)
    boxes = builder.build()
    # Boxes built with instance 0 (long runs of rail, wall, fence) get one fresh id per run of equal tag.
    zero = np.flatnonzero(boxes.instance == 0)
    next_instance = builder.next_instance
    previous_tag = -1
    for index in zero:
        if boxes.tag[index] != previous_tag or index - 1 not in zero:
            next_instance += 1
        boxes.instance[index] = next_instance
        previous_tag = boxes.tag[index]
    emitted = {T.ROAD, T.SIDEWALK, T.ROAD_LINE, T.TERRAIN, T.GROUND, T.SKY, T.CAR, T.TRUCK, T.BUS, T.PEDESTRIAN}
    emitted |= {int(tag) for tag in np.unique(boxes.tag)}
    logger.info("layout %s seed %d: %d edges, %d boxes, ground %s", name, seed, len(network.edges), len(boxes),
                ground.materials.shape)
    return Layout(name, network, ground, boxes, frozenset(emitted), next_instance + 1)
