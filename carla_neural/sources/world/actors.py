"""Things that move: lane routes, traffic, walkers, and the ego car's vehicle model and autopilot."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from carla_neural.sources.base import VehicleControl
from carla_neural.sources.world import tags as T
from carla_neural.sources.world.layout import RoadNetwork, polyline_frames, resample_polyline

ROUTE_SPACING_M = 0.5
LATERAL_ACCEL = 2.5  # m/s^2 the autopilot and traffic allow in bends


def clamp(value: float, low: float, high: float) -> float:
    """value limited to [low, high], as a Python float (cheaper than np.clip on scalars)."""
    return float(min(max(value, low), high))


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, spacing: float) -> np.ndarray:
    length = np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
    count = max(3, int(length / spacing) + 1)
    t = np.linspace(0.0, 1.0, count)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _junction_curve(end: np.ndarray, end_dir: np.ndarray, start: np.ndarray, start_dir: np.ndarray) -> np.ndarray:
    """A smooth curve from the end of one lane to the start of the next (quadratic Bezier)."""
    matrix = np.array([end_dir, start_dir]).T  # end + a end_dir = start - b start_dir
    control = (end + start) / 2.0
    if abs(np.linalg.det(matrix)) > 1e-3:
        a, b = np.linalg.solve(matrix, start - end)
        gap = np.linalg.norm(start - end)
        if 0 < a < 2 * gap and 0 < b < 2 * gap:
            control = end + a * end_dir
    return _bezier(end, control, start, ROUTE_SPACING_M)


class Route:
    """An endless lane-following path: the current lane, then junction curves into randomly chosen lanes."""

    def __init__(self, network: RoadNetwork, rng: np.random.Generator, edge: int, forward: bool, lane: int,
                 start_index: int = 0) -> None:
        self.network = network
        self.rng = rng
        self.edge, self.forward, self.lane = edge, forward, lane
        lane_points = resample_polyline(network.lane_path(edge, forward, lane), ROUTE_SPACING_M)
        self.points = lane_points[min(start_index, len(lane_points) - 2):]
        # Node each junction curve starts at (arc length on the route, node index), for junction reservations.
        self.junctions: list[tuple[float, float, int]] = []
        self._recompute()
        while self.cum[-1] < 120.0:
            self._extend()

    def _recompute(self) -> None:
        deltas = np.diff(self.points, axis=0)
        steps = np.linalg.norm(deltas, axis=1)
        self.cum = np.concatenate([[0.0], np.cumsum(steps)])
        headings = np.unwrap(np.arctan2(deltas[:, 1], deltas[:, 0]))
        # Heading change per metre at each point: how sharp the route bends there.
        bend = np.abs(np.diff(headings)) / np.maximum(steps[1:], 1e-3)
        self.bend = np.concatenate([[0.0], bend, [0.0]])

    def max_bend(self, arc: float, ahead: float) -> float:
        """Sharpest bend (rad/m) on the route between `arc` and `arc + ahead`."""
        start = int(np.searchsorted(self.cum, arc))
        stop = int(np.searchsorted(self.cum, arc + ahead)) + 1
        window = self.bend[start:stop]
        return max(float(window.max()), 1e-4) if len(window) else 1e-4

    def _extend(self) -> None:
        node = self.network.end_node(self.edge, self.forward)
        choices = self.network.exits(node, self.edge)
        edge, forward = choices[int(self.rng.integers(len(choices)))]
        lane = min(self.lane, self.network.edges[edge].lanes_per_direction - 1)
        next_points = resample_polyline(self.network.lane_path(edge, forward, lane), ROUTE_SPACING_M)
        end_dir = self.points[-1] - self.points[-2]
        start_dir = next_points[1] - next_points[0]
        curve = _junction_curve(self.points[-1], end_dir / np.linalg.norm(end_dir), next_points[0],
                                start_dir / np.linalg.norm(start_dir))
        curve_start = float(self.cum[-1])
        self.points = np.vstack([self.points, curve[1:-1], next_points])
        self._recompute()
        curve_end = curve_start + float(np.sum(np.linalg.norm(np.diff(curve, axis=0), axis=1)))
        if self.network.is_junction(node):
            self.junctions.append((curve_start, curve_end, node))
        self.edge, self.forward, self.lane = edge, forward, lane

    def ensure(self, arc: float) -> float:
        """Make the route reach `arc + 80 m`; drop points far behind. Returns the shifted arc."""
        while self.cum[-1] < arc + 80.0:
            self._extend()
        if arc > 60.0:
            drop = int(np.searchsorted(self.cum, arc - 20.0))
            shift = float(self.cum[drop])
            self.points = self.points[drop:]
            self._recompute()
            self.junctions = [(a - shift, b - shift, n) for a, b, n in self.junctions if b - shift > -5.0]
            return arc - shift
        return arc

    def pose(self, arc: float) -> tuple[float, float, float]:
        """(x, y, yaw) at an arc length along the route."""
        index = min(max(int(np.searchsorted(self.cum, arc)) - 1, 0), len(self.points) - 2)
        span = self.cum[index + 1] - self.cum[index]
        frac = 0.0 if span <= 0 else (arc - self.cum[index]) / span
        point = self.points[index] + frac * (self.points[index + 1] - self.points[index])
        ahead = self.points[min(index + 2, len(self.points) - 1)] - self.points[max(index - 1, 0)]
        return float(point[0]), float(point[1]), math.atan2(ahead[1], ahead[0])

    def project(self, xy: np.ndarray, hint: float, window: float = 30.0) -> float:
        """Arc length of the route point nearest to `xy`, searched near `hint`."""
        lo = int(np.searchsorted(self.cum, hint - window))
        hi = int(np.searchsorted(self.cum, hint + window)) + 1
        distances = np.sum((self.points[lo:hi] - xy) ** 2, axis=1)
        return float(self.cum[lo + int(np.argmin(distances))])


@dataclass
class BodyPart:
    """One box of an actor, in the actor's frame (x forward, y left, z up from the ground)."""

    offset: tuple[float, float, float]
    size: tuple[float, float, float]
    tag: int
    material: int
    colour: tuple[float, float, float]
    param: tuple[float, float] = (0.0, 0.0)


CAR_COLOURS = [(0.60, 0.05, 0.05), (0.05, 0.10, 0.35), (0.85, 0.85, 0.85), (0.08, 0.08, 0.08), (0.45, 0.46, 0.48),
               (0.70, 0.55, 0.10), (0.10, 0.30, 0.15), (0.75, 0.75, 0.78), (0.25, 0.10, 0.30)]
CLOTHES = [(0.15, 0.15, 0.18), (0.55, 0.10, 0.10), (0.10, 0.20, 0.45), (0.75, 0.72, 0.65), (0.30, 0.35, 0.20),
           (0.60, 0.45, 0.25), (0.85, 0.85, 0.85)]
SKIN = [(0.85, 0.65, 0.50), (0.60, 0.42, 0.30), (0.40, 0.27, 0.18), (0.92, 0.75, 0.62)]


def vehicle_parts(kind: str, rng: np.random.Generator) -> tuple[list[BodyPart], float, float]:
    """Boxes of a vehicle kind ("car", "truck", "bus") with its length and width."""
    colour = CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
    if kind == "car":
        length, width = rng.uniform(4.0, 4.9), rng.uniform(1.75, 1.95)
        height = rng.uniform(1.35, 1.6)
        return [
            BodyPart((0.0, 0.0, 0.05), (length, width, 0.85), T.CAR, T.MAT_CAR_BODY, colour, (0.0, 0.0)),
            BodyPart((-0.25, 0.0, 0.9), (length * 0.5, width * 0.86, height - 0.9), T.CAR, T.MAT_GLASS, colour),
        ], length, width
    if kind == "truck":
        length, width = rng.uniform(7.0, 9.0), 2.45
        cab = 2.2
        cargo_colour = CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
        return [
            BodyPart((length / 2 - cab / 2, 0.0, 0.3), (cab, width, 2.9), T.TRUCK, T.MAT_CAR_BODY, colour,
                     (1.7, 2.6)),
            BodyPart((-cab / 2 + 0.1, 0.0, 0.3), (length - cab - 0.2, width, 3.5), T.TRUCK, T.MAT_PLAIN,
                     cargo_colour),
        ], length, width
    length, width = rng.uniform(11.0, 12.5), 2.55
    return [BodyPart((0.0, 0.0, 0.25), (length, width, 3.0), T.BUS, T.MAT_CAR_BODY, colour, (1.3, 2.6))], length, width


def walker_parts(rng: np.random.Generator) -> list[BodyPart]:
    """Legs, torso and head of a pedestrian."""
    scale = rng.uniform(0.9, 1.08)
    legs = CLOTHES[int(rng.integers(len(CLOTHES)))]
    shirt = CLOTHES[int(rng.integers(len(CLOTHES)))]
    skin = SKIN[int(rng.integers(len(SKIN)))]
    return [
        BodyPart((0.0, 0.0, 0.0), (0.28, 0.38, 0.85 * scale), T.PEDESTRIAN, T.MAT_CLOTH, legs),
        BodyPart((0.0, 0.0, 0.85 * scale), (0.3, 0.46, 0.62 * scale), T.PEDESTRIAN, T.MAT_CLOTH, shirt),
        BodyPart((0.02, 0.0, 1.47 * scale), (0.22, 0.2, 0.25 * scale), T.PEDESTRIAN, T.MAT_SKIN, skin),
    ]


@dataclass
class Actor:
    """Anything that moves: its pose now and one tick ago, its boxes and its instance id."""

    instance: int
    parts: list[BodyPart]
    length: float
    width: float
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    prev: tuple[float, float, float] = (0.0, 0.0, 0.0)
    speed: float = 0.0

    def remember(self) -> None:
        self.prev = (self.x, self.y, self.yaw)


@dataclass
class NpcVehicle(Actor):
    """A vehicle of the traffic: follows its route, keeps its distance, takes turns at junctions."""

    route: Route | None = None
    arc: float = 0.0
    cruise: float = 8.0


@dataclass
class Walker(Actor):
    """A pedestrian pacing a sidewalk back and forth."""

    path: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    cum: np.ndarray = field(default_factory=lambda: np.zeros(2))
    arc: float = 0.0
    direction: float = 1.0


# ----------------------------------------------------------------------------------------------
# The ego vehicle


@dataclass
class VehicleModel:
    """A kinematic bicycle with throttle, brake, hand brake and reverse, tuned like a CARLA sedan."""

    wheelbase: float = 2.9
    max_steer_rad: float = math.radians(40.0)
    max_accel: float = 4.0
    max_brake: float = 9.0
    top_speed: float = 45.0
    steer_rate: float = 3.0  # steer units per second the wheels can turn
    steer_now: float = 0.0

    def step(self, actor: Actor, control: VehicleControl, dt: float) -> None:
        """Advance the actor's pose and speed by one tick under `control`."""
        steer_target = clamp(control.steer, -1.0, 1.0)
        max_change = self.steer_rate * dt
        self.steer_now += clamp(steer_target - self.steer_now, -max_change, max_change)
        speed = actor.speed
        throttle = clamp(control.throttle, 0.0, 1.0)
        direction = -1.0 if control.reverse else 1.0
        top = self.top_speed if direction > 0 else 8.0
        drive = direction * throttle * self.max_accel * max(0.0, 1.0 - abs(speed) / top)
        resist = 0.25 + 0.0006 * speed * speed
        brake = clamp(control.brake, 0.0, 1.0) * self.max_brake + (7.0 if control.hand_brake else 0.0)
        if speed > 0:
            speed = max(0.0, speed + (drive - resist - brake) * dt) if drive >= 0 else speed + (drive - brake) * dt
        elif speed < 0:
            speed = min(0.0, speed + (drive + resist + brake) * dt) if drive <= 0 else speed + (drive + brake) * dt
        else:
            speed = drive * dt if abs(drive) > brake + resist else 0.0
        actor.speed = speed
        # CARLA's steer > 0 turns right; our yaw is counter-clockwise, so right is negative yaw rate.
        angle = -self.steer_now * self.max_steer_rad
        actor.yaw += speed / self.wheelbase * math.tan(angle) * dt
        actor.x += speed * math.cos(actor.yaw) * dt
        actor.y += speed * math.sin(actor.yaw) * dt


class Autopilot:
    """Pure-pursuit steering along a Route and a speed controller that respects the gap ahead."""

    def __init__(self, route: Route, cruise: float, wheelbase: float, max_steer_rad: float) -> None:
        self.route = route
        self.arc = 0.0
        self.cruise = cruise
        self.wheelbase = wheelbase
        self.max_steer_rad = max_steer_rad

    def control(self, actor: Actor, gap_ahead: float) -> VehicleControl:
        """The VehicleControl that keeps the actor on its route at a safe speed."""
        self.arc = self.route.project(np.array([actor.x, actor.y]), self.arc)
        self.arc = self.route.ensure(self.arc)
        lookahead = max(3.5, 0.8 * abs(actor.speed))
        tx, ty, _ = self.route.pose(self.arc + lookahead)
        alpha = math.atan2(ty - actor.y, tx - actor.x) - actor.yaw
        alpha = math.atan2(math.sin(alpha), math.cos(alpha))
        wheel = math.atan2(2.0 * self.wheelbase * math.sin(alpha), lookahead)
        steer = clamp(-wheel / self.max_steer_rad, -1.0, 1.0)
        # Smooth the per-point bend over a few points so that one kink does not stop the car.
        curvature = self.route.max_bend(self.arc, 8.0 + 2.0 * abs(actor.speed))
        target = min(self.cruise, math.sqrt(LATERAL_ACCEL / max(curvature, 1e-4)), safe_speed(gap_ahead))
        error = target - actor.speed
        if error >= 0:
            return VehicleControl(throttle=clamp(0.25 + 0.5 * error, 0.0, 1.0), steer=steer)
        if error > -0.8:
            return VehicleControl(throttle=0.0, steer=steer)
        return VehicleControl(brake=clamp(-0.25 * error, 0.0, 1.0), steer=steer)


def safe_speed(gap: float) -> float:
    """Highest speed (m/s) at which a gap (m, bumper to bumper) still leaves room to stop comfortably."""
    room = max(0.0, gap - 3.0)
    return math.sqrt(2.0 * 3.5 * room) if room > 0 else 0.0


def gaps_ahead(xs: np.ndarray, ys: np.ndarray, yaws: np.ndarray, lengths: np.ndarray, widths: np.ndarray,
               reach: float = 40.0) -> np.ndarray:
    """Bumper-to-bumper distance (m) from each vehicle to the nearest one in its path, `reach` if none."""
    dx = xs[None, :] - xs[:, None]
    dy = ys[None, :] - ys[:, None]
    cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
    along = dx * cos + dy * sin
    across = np.abs(-dx * sin + dy * cos)
    clearance = along - (lengths[:, None] + lengths[None, :]) / 2
    # Widen the corridor a little with distance so that vehicles see cars on a curving lane, but
    # never as far as the next lane (3.5 m); oncoming vehicles never block.
    corridor = (widths[:, None] + widths[None, :]) / 2 + 0.3 + 0.02 * np.maximum(along, 0)
    heading_cos = np.cos(yaws[:, None] - yaws[None, :])
    blocking = (along > 0) & (across < corridor) & (heading_cos > -0.5)
    np.fill_diagonal(blocking, False)
    gaps = np.where(blocking, clearance, reach)
    return np.minimum(gaps.min(axis=1), reach) if len(xs) else np.zeros(0)
