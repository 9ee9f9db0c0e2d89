"""BuiltinWorld: a procedural street world that emits CARLA-encoded camera frames without a server."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np
from pydantic import ConfigDict, TypeAdapter

from carla_neural.sources.base import EgoState, Frame, Source, VehicleControl
from carla_neural.sources.encoding import encode_backward_flow, encode_depth
from carla_neural.sources.world import tags as T
from carla_neural.sources.world.actors import (
    LATERAL_ACCEL,
    ROUTE_SPACING_M,
    Actor,
    clamp,
    Autopilot,
    NpcVehicle,
    Route,
    VehicleModel,
    Walker,
    gaps_ahead,
    safe_speed,
    vehicle_parts,
    walker_parts,
)
from carla_neural.sources.world.camera import MOUNTS, Camera, Mount, mounted_camera
from carla_neural.sources.world.layout import LAYOUTS, Layout, build_layout, resample_polyline
from carla_neural.sources.world.raster import DrawBoxes, backward_flow, box_corners, rasterize, semantic_and_instance
from carla_neural.sources.world.shading import Shader
from carla_neural.sources.world.weather import WEATHER_PRESETS, get_weather

logger = logging.getLogger(__name__)

SENSORS = ("semantic", "instance", "rgb", "depth", "flow")
FIXED_DELTA_S = 0.05
# Camera sides in pixels: the same range as a scenario's cameras (a 4096x4096 frame is ~0.5 GB
# across the world's float buffers; larger ones run out of memory in the rasteriser).
MIN_SIDE, MAX_SIDE = 16, 4096


@dataclass
class WorldConfig:
    """Everything that defines a built-in world run; the same config and seed give the same frames."""

    layout: str = "urban"
    seed: int = 0
    width: int = 512
    height: int = 256
    fov_deg: float = 90.0
    mount: str = "hood"
    weather: str = "ClearNoon"
    vehicles: int = 20
    walkers: int = 30
    blocks: int = 4  # urban: streets per side minus one
    view_distance_m: float = 220.0
    autopilot: bool = True
    cruise_speed_mps: float | None = None  # None: 9 m/s urban, 22 m/s highway
    sensors: tuple[str, ...] = SENSORS
    ground_resolution_m: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if self.layout not in LAYOUTS:
            problems.append(f"layout={self.layout!r} (choose {', '.join(LAYOUTS)})")
        if self.mount not in MOUNTS:
            problems.append(f"mount={self.mount!r} (choose {', '.join(MOUNTS)})")
        if self.weather not in WEATHER_PRESETS:
            problems.append(f"weather={self.weather!r} (choose {', '.join(WEATHER_PRESETS)})")
        if not (MIN_SIDE <= self.width <= MAX_SIDE and MIN_SIDE <= self.height <= MAX_SIDE):
            problems.append(f"width x height={self.width}x{self.height} (each must be {MIN_SIDE}..{MAX_SIDE})")
        if not 10.0 <= self.fov_deg <= 170.0:
            problems.append(f"fov_deg={self.fov_deg} (must be 10..170)")
        if not 0 <= self.vehicles <= 300:
            problems.append(f"vehicles={self.vehicles} (must be 0..300)")
        if not 0 <= self.walkers <= 500:
            problems.append(f"walkers={self.walkers} (must be 0..500)")
        if not 1 <= self.blocks <= 10:
            problems.append(f"blocks={self.blocks} (must be 1..10)")
        if self.cruise_speed_mps is not None and not 0 < self.cruise_speed_mps <= 60:
            problems.append(f"cruise_speed_mps={self.cruise_speed_mps} (must be in (0, 60] m/s, or null)")
        if self.seed < 0:
            problems.append(f"seed={self.seed} (must be 0 or more)")
        if self.view_distance_m <= 10:
            problems.append(f"view_distance_m={self.view_distance_m} (must be > 10)")
        self.sensors = tuple(self.sensors)
        unknown = [name for name in self.sensors if name not in SENSORS]
        if unknown:
            problems.append(f"sensors={unknown} (choose from {', '.join(SENSORS)})")
        if "semantic" not in self.sensors:
            problems.append("sensors must include 'semantic' (every Frame carries it)")
        if not 0.05 <= self.ground_resolution_m <= 0.5:
            problems.append(f"ground_resolution_m={self.ground_resolution_m} (must be 0.05..0.5)")
        if problems:
            raise ValueError("invalid WorldConfig: " + "; ".join(problems))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the configurable fields."""
        return tuple(item.name for item in fields(cls))

    @classmethod
    def from_values(cls, values: dict) -> WorldConfig:
        """A WorldConfig from untrusted values (a scenario's ``builtin:``): types checked first
        (``cruise_speed_mps: fast`` is an error, not a crash mid-run), then the bounds.

        Raises pydantic's ValidationError, each error located at its field.
        """
        return _WORLD_CONFIG.validate_python(values)


# Unknown keys and inf/nan are errors; the rest of pydantic's lax coercion (YAML's 5 for 5.0) stays.
WorldConfig.__pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)  # type: ignore[attr-defined]
_WORLD_CONFIG = TypeAdapter(WorldConfig)


@dataclass
class _Parts:
    """The boxes of all actors, in actor frames; posed each tick."""

    actor: np.ndarray  # (P,) int index into the actor list
    offset: np.ndarray  # (P, 3)
    size: np.ndarray  # (P, 3)
    tag: np.ndarray
    instance: np.ndarray
    material: np.ndarray
    colour: np.ndarray
    param: np.ndarray


@dataclass
class _Junctions:
    holder: dict[int, int] = field(default_factory=dict)  # node -> actor instance
    waited: dict[int, float] = field(default_factory=dict)  # actor instance -> seconds waiting


class BuiltinWorld(Source):
    """Procedural streets with traffic and walkers, seen by cameras on an ego car, in CARLA's encodings."""

    weather_presets = tuple(WEATHER_PRESETS)
    camera_mounts = tuple(MOUNTS)

    def __init__(self, config: WorldConfig | None = None, **overrides: object) -> None:
        config = config or WorldConfig()
        if overrides:
            unknown = set(overrides) - set(WorldConfig.field_names())
            if unknown:
                raise ValueError(f"unknown WorldConfig fields {sorted(unknown)}: known are "
                                 f"{', '.join(WorldConfig.field_names())}")
            config = replace(config, **overrides)
        self.config = config
        self.sensors = tuple(config.sensors)
        started = time.perf_counter()
        self.layout: Layout = build_layout(config.layout, config.seed, config.blocks, config.ground_resolution_m)
        self._weather = get_weather(config.weather)
        self._mount = MOUNTS[config.mount]
        self._mount_name = config.mount
        self._shader = Shader(config.seed, config.width, config.height)
        seeds = np.random.SeedSequence([config.seed, 2]).spawn(4)
        self._traffic_rng = np.random.default_rng(seeds[0])
        self._route_rng = np.random.default_rng(seeds[1])
        self._walker_rng = np.random.default_rng(seeds[2])
        cruise = config.cruise_speed_mps or (9.0 if config.layout == "urban" else 22.0)
        self._cruise = cruise
        self._frame_id = 0
        self._closed = False
        self._junctions = _Junctions()
        self._static_corners = box_corners(self.layout.boxes.center, self.layout.boxes.size, self.layout.boxes.yaw)
        # Trees (trunk + crown) are drawn as one object; other static boxes each on their own, even
        # when they share an instance id (a long wall or guard-rail run is many boxes).
        static = self.layout.boxes
        self._static_groups = np.where(static.tag == T.VEGETATION, static.instance.astype(np.int64),
                                       -1 - np.arange(len(static), dtype=np.int64))
        self._spawn(cruise)
        self._previous_camera: Camera | None = None
        logger.info("built-in world ready in %.0f ms (%s, seed %d)", 1000 * (time.perf_counter() - started),
                    config.layout, config.seed)

    # ------------------------------------------------------------------------------------------
    # spawning

    def _lane_slots(self) -> list[tuple[int, bool, int]]:
        network = self.layout.network
        return [(e, fwd, lane) for e, edge in enumerate(network.edges) for fwd in (True, False)
                for lane in range(edge.lanes_per_direction)]

    def _spawn(self, cruise: float) -> None:
        rng = self._traffic_rng
        network = self.layout.network
        next_instance = self.layout.next_instance
        slots = self._lane_slots()
        taken: list[np.ndarray] = []

        def free_spot(min_gap: float) -> tuple[int, bool, int, int] | None:
            for _ in range(60):
                edge, forward, lane = slots[int(rng.integers(len(slots)))]
                path = network.lane_path(edge, forward, lane)
                length = float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)))
                if length < 12.0:
                    continue
                index = int(rng.integers(2, max(3, int(length / 0.5) - 10)))
                point = resample_polyline(path, ROUTE_SPACING_M)[min(index, int(length / 0.5) - 2)]
                if all(np.linalg.norm(point - other) > min_gap for other in taken):
                    taken.append(point)
                    return edge, forward, lane, index
            return None

        self.actors: list[Actor] = []
        # The ego car first: a sedan of fixed size, so camera mounts sit where expected.
        spot = free_spot(0.0)
        if spot is None:
            raise RuntimeError("the layout has no lane long enough to place the ego car; try another seed")
        ego_rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 3]))
        parts, _, _ = vehicle_parts("car", ego_rng)
        parts[0].size, parts[1].size = (4.6, 1.9, 0.85), (2.3, 1.65, 0.6)
        parts[0].colour = parts[1].colour = (0.55, 0.56, 0.60)
        self.ego = Actor(next_instance, parts, 4.6, 1.9)
        next_instance += 1
        edge, forward, lane, index = spot
        self._vehicle_model = VehicleModel()
        route = Route(network, self._route_rng, edge, forward, lane, index)
        self._autopilot: Autopilot | None = Autopilot(route, cruise, self._vehicle_model.wheelbase,
                                                      self._vehicle_model.max_steer_rad)
        self.ego.x, self.ego.y, self.ego.yaw = route.pose(0.0)
        self.ego.remember()
        self._autopilot_on = self.config.autopilot
        self._control = VehicleControl()
        self.actors.append(self.ego)

        self.vehicles: list[NpcVehicle] = []
        heavy = 0.25 if self.config.layout == "highway" else 0.15
        ego_edge, ego_forward, ego_lane, ego_index = spot
        for number in range(self.config.vehicles):
            spot = None
            if self.config.vehicles >= 4 and number < 2:
                # A truck ahead in the ego's lane and a bus coming the other way, so that every run
                # shows heavy vehicles close up, not only by chance.
                forward = ego_forward if number == 0 else not ego_forward
                lane_count = int(len(resample_polyline(network.lane_path(ego_edge, forward, 0), ROUTE_SPACING_M)))
                index = ego_index + 70 if number == 0 else lane_count - ego_index - 140
                index = min(max(index, 2), lane_count - 3)
                point = resample_polyline(network.lane_path(ego_edge, forward, 0 if number else ego_lane),
                                          ROUTE_SPACING_M)[index]
                if all(np.linalg.norm(point - other) > 14.0 for other in taken):
                    taken.append(point)
                    spot = (ego_edge, forward, 0 if number else ego_lane, index)
            spot = spot or free_spot(14.0)
            if spot is None:
                break
            roll = rng.random()
            kind = "car" if roll > heavy else ("truck" if roll > heavy / 2.5 else "bus")
            if self.config.vehicles >= 4 and number < 2:
                kind = ("truck", "bus")[number]  # every busy street has at least one of each
            parts, length, width = vehicle_parts(kind, rng)
            edge, forward, lane, index = spot
            npc = NpcVehicle(next_instance, parts, length, width,
                             route=Route(network, self._route_rng, edge, forward, lane, index),
                             cruise=cruise * rng.uniform(0.75, 1.05))
            next_instance += 1
            npc.x, npc.y, npc.yaw = npc.route.pose(0.0)
            npc.remember()
            self.vehicles.append(npc)
            self.actors.append(npc)

        self.walkers: list[Walker] = []
        walker_rng = self._walker_rng
        for _ in range(self.config.walkers):
            edge = int(walker_rng.integers(len(network.edges)))
            path = network.sidewalk_path(edge, bool(walker_rng.random() < 0.5))
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
            if cum[-1] < 5.0:
                continue
            walker = Walker(next_instance, walker_parts(walker_rng), 0.4, 0.5, path=path, cum=cum,
                            arc=float(walker_rng.uniform(0, cum[-1])),
                            direction=1.0 if walker_rng.random() < 0.5 else -1.0,
                            speed=float(walker_rng.uniform(0.9, 1.6)))
            # Walkers keep to their side of the path.
            walker.path = path
            next_instance += 1
            self._place_walker(walker)
            walker.remember()
            self.walkers.append(walker)
            self.actors.append(walker)
        if next_instance >= 65536:
            raise ValueError("too many objects for CARLA's 16-bit instance ids; use fewer vehicles/walkers")

        rows = [(i, part) for i, actor in enumerate(self.actors) for part in actor.parts]
        self._parts = _Parts(
            actor=np.array([i for i, _ in rows], np.int64),
            offset=np.array([p.offset for _, p in rows], np.float64),
            size=np.array([p.size for _, p in rows], np.float64),
            tag=np.array([p.tag for _, p in rows], np.uint8),
            instance=np.array([self.actors[i].instance for i, _ in rows], np.int32),
            material=np.array([p.material for _, p in rows], np.uint8),
            colour=np.array([p.colour for _, p in rows], np.float32),
            param=np.array([p.param for _, p in rows], np.float32),
        )

    def _place_walker(self, walker: Walker) -> None:
        cum, path = walker.cum, walker.path
        arc = walker.arc
        index = min(max(int(np.searchsorted(cum, arc)) - 1, 0), len(path) - 2)
        span = max(cum[index + 1] - cum[index], 1e-6)
        frac = (arc - cum[index]) / span
        point = path[index] + frac * (path[index + 1] - path[index])
        heading = path[index + 1] - path[index]
        if walker.direction < 0:
            heading = -heading
        # Keep to the right of the sidewalk so that walkers pass each other.
        side = np.array([heading[1], -heading[0]]) / (np.linalg.norm(heading) + 1e-9)
        walker.x, walker.y = float(point[0] + 0.6 * side[0]), float(point[1] + 0.6 * side[1])
        walker.yaw = math.atan2(heading[1], heading[0])

    # ------------------------------------------------------------------------------------------
    # Source API

    @property
    def emitted_tags(self) -> frozenset[int]:
        """CARLA 0.9.14 tags this world can emit (its layout's objects plus road, sky, traffic...)."""
        tags = set(self.layout.emitted_tags)
        if not self.walkers:
            tags.discard(T.PEDESTRIAN)
        present = {part.tag for actor in self.actors for part in actor.parts}
        tags -= {T.CAR, T.TRUCK, T.BUS} - present
        return frozenset(tags)

    @property
    def mount(self) -> str:
        """Name of the current camera mount."""
        return self._mount_name

    def set_mount(self, name: str) -> None:
        """Move the cameras to a named mount (one of `camera_mounts`)."""
        if name not in MOUNTS:
            raise ValueError(f"unknown camera mount {name!r}: choose one of {', '.join(MOUNTS)}")
        self._mount, self._mount_name = MOUNTS[name], name

    def place_camera(self, mount: Mount) -> None:
        """Move the cameras to an explicit mount (e.g. a candidate while fitting one); named "custom"."""
        self._mount, self._mount_name = mount, "custom"

    @property
    def weather(self) -> str:
        """Name of the current weather preset."""
        return self._weather.name

    def set_weather(self, preset: str) -> None:
        self._weather = get_weather(preset)

    def apply_control(self, control: VehicleControl) -> None:
        self._autopilot_on = False
        self._control = control

    def set_autopilot(self, enabled: bool) -> None:
        if enabled and not self._autopilot_on:
            self._autopilot = self._nearest_route()
        self._autopilot_on = enabled

    def close(self) -> None:
        self._closed = True

    def tick(self) -> Frame:
        if self._closed:
            raise RuntimeError("this BuiltinWorld is closed; create a new one")
        dt = FIXED_DELTA_S
        for actor in self.actors:
            actor.remember()
        self._step_traffic(dt)
        self._step_walkers(dt)
        self._step_ego(dt)
        self._frame_id += 1
        return self.render()

    # ------------------------------------------------------------------------------------------
    # simulation

    def _vehicle_arrays(self) -> tuple[np.ndarray, ...]:
        movers = [self.ego] + self.vehicles
        return (np.array([a.x for a in movers]), np.array([a.y for a in movers]), np.array([a.yaw for a in movers]),
                np.array([a.length for a in movers]), np.array([a.width for a in movers]))

    def _junction_gap(self, instance: int, route: Route, arc: float, gap: float, dt: float) -> float:
        """Shorten `gap` to stop before a junction another vehicle holds; take it when free."""
        holder = self._junctions.holder
        for start, end, node in route.junctions:
            if end < arc:
                if holder.get(node) == instance:
                    del holder[node]
                continue
            if start - arc > 12.0:
                break
            owner = holder.get(node)
            if owner is None or owner == instance:
                holder[node] = instance
                self._junctions.waited.pop(instance, None)
                continue
            waited = self._junctions.waited.get(instance, 0.0) + dt
            self._junctions.waited[instance] = waited
            if waited > 12.0:  # never deadlock: after a long wait, go anyway
                continue
            return min(gap, max(0.0, start - arc - 1.0) + 3.0)
        return gap

    def _step_traffic(self, dt: float) -> None:
        if not self.vehicles:
            return
        xs, ys, yaws, lengths, widths = self._vehicle_arrays()
        gaps = gaps_ahead(xs, ys, yaws, lengths, widths)
        for index, npc in enumerate(self.vehicles, start=1):
            route = npc.route
            gap = self._junction_gap(npc.instance, route, npc.arc, float(gaps[index]), dt)
            bend = route.max_bend(npc.arc, 8.0 + 2.0 * npc.speed)
            target = min(npc.cruise, math.sqrt(LATERAL_ACCEL / bend), safe_speed(gap))
            change = clamp(target - npc.speed, -7.0 * dt, 2.5 * dt)
            npc.speed = max(0.0, npc.speed + change)
            npc.arc = route.ensure(npc.arc + npc.speed * dt)
            npc.x, npc.y, npc.yaw = route.pose(npc.arc)

    def _step_walkers(self, dt: float) -> None:
        for walker in self.walkers:
            walker.arc += walker.direction * walker.speed * dt
            if walker.arc > walker.cum[-1] or walker.arc < 0:
                walker.direction = -walker.direction
                walker.arc = clamp(walker.arc, 0.0, float(walker.cum[-1]))
            self._place_walker(walker)

    def _step_ego(self, dt: float) -> None:
        if self._autopilot_on and self._autopilot is not None:
            xs, ys, yaws, lengths, widths = self._vehicle_arrays()
            gap = float(gaps_ahead(xs, ys, yaws, lengths, widths)[0]) if len(xs) > 1 else 40.0
            pilot = self._autopilot
            gap = self._junction_gap(self.ego.instance, pilot.route, pilot.arc, gap, dt)
            self._control = pilot.control(self.ego, gap)
        self._vehicle_model.step(self.ego, self._control, dt)

    def _nearest_route(self) -> Autopilot:
        """An autopilot on the lane nearest the ego car, in the direction it is heading."""
        network = self.layout.network
        position = np.array([self.ego.x, self.ego.y])
        heading = np.array([math.cos(self.ego.yaw), math.sin(self.ego.yaw)])
        best, best_cost = None, math.inf
        for edge, forward, lane in self._lane_slots():
            path = network.lane_path(edge, forward, lane)
            distances = np.linalg.norm(path - position, axis=1)
            index = int(np.argmin(distances))
            direction = path[min(index + 1, len(path) - 1)] - path[max(index - 1, 0)]
            alignment = float(direction @ heading) / (np.linalg.norm(direction) + 1e-9)
            cost = distances[index] + 10.0 * (1.0 - alignment)
            if cost < best_cost:
                best, best_cost = (edge, forward, lane, path, index), cost
        edge, forward, lane, path, index = best
        lane_length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
        route = Route(network, self._route_rng, edge, forward, lane, int(lane_length[index] / 0.5) + 4)
        return Autopilot(route, self._cruise, self._vehicle_model.wheelbase, self._vehicle_model.max_steer_rad)

    # ------------------------------------------------------------------------------------------
    # rendering

    def _camera(self, pose: tuple[float, float, float]) -> Camera:
        config = self.config
        return mounted_camera(pose[0], pose[1], pose[2], self._mount, config.width, config.height, config.fov_deg)

    def _draw_boxes(self) -> tuple[DrawBoxes, np.ndarray, np.ndarray]:
        """All boxes (static + actors) with their corners, and the motion table of the actors."""
        static = self.layout.boxes
        parts = self._parts
        poses = np.array([(a.x, a.y, a.yaw) for a in self.actors])
        previous = np.array([a.prev for a in self.actors])
        cos, sin = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        owner = parts.actor
        centers = np.empty((len(owner), 3))
        centers[:, 0] = poses[owner, 0] + parts.offset[:, 0] * cos[owner] - parts.offset[:, 1] * sin[owner]
        centers[:, 1] = poses[owner, 1] + parts.offset[:, 0] * sin[owner] + parts.offset[:, 1] * cos[owner]
        centers[:, 2] = parts.offset[:, 2]
        yaws = poses[owner, 2]
        moving_corners = box_corners(centers, parts.size, yaws)
        boxes = DrawBoxes(
            center=np.vstack([static.center, centers]),
            size=np.vstack([static.size, parts.size]),
            yaw=np.concatenate([static.yaw, yaws]),
            tag=np.concatenate([static.tag, parts.tag]),
            instance=np.concatenate([static.instance, parts.instance]),
            material=np.concatenate([static.material, parts.material]),
            colour=np.vstack([static.colour, parts.colour]),
            param=np.vstack([static.param, parts.param]),
            motion=np.concatenate([np.zeros(len(static), np.int32), (owner + 1).astype(np.int32)]),
            group=np.concatenate([self._static_groups, parts.instance.astype(np.int64)]),
        )
        corners = np.concatenate([self._static_corners, moving_corners])
        change = previous[:, 2] - poses[:, 2]
        motion = np.zeros((len(self.actors) + 1, 6))
        motion[0, 0] = 1.0
        motion[1:, 0], motion[1:, 1] = np.cos(change), np.sin(change)
        motion[1:, 2:4] = poses[:, :2]
        motion[1:, 4:6] = previous[:, :2]
        return boxes, corners, motion

    def render(self) -> Frame:
        """The frame of the current state (tick() advances the world first, then calls this)."""
        config = self.config
        camera = self._camera((self.ego.x, self.ego.y, self.ego.yaw))
        previous_camera = self._camera(self.ego.prev)
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        boxes, corners, motion = self._draw_boxes()
        raster = rasterize(camera, boxes, corners, self.layout.ground, config.view_distance_m)
        timings["raster"] = 1000.0 * (time.perf_counter() - clock)
        clock = time.perf_counter()
        tags, instances = semantic_and_instance(raster)
        height, width = tags.shape
        semantic_bgra = np.zeros((height, width, 4), np.uint8)
        semantic_bgra[:, :, 2] = tags
        semantic_bgra[:, :, 3] = 255
        instance_bgra = depth_bgra = rgb_bgra = flow = None
        if "instance" in config.sensors:
            instance_bgra = np.empty((height, width, 4), np.uint8)
            instance_bgra[:, :, 0] = instances >> 8
            instance_bgra[:, :, 1] = instances & 0xFF
            instance_bgra[:, :, 2] = tags
            instance_bgra[:, :, 3] = 255
        if "depth" in config.sensors:
            depth_bgra = encode_depth(raster.depth_m)
        timings["labels"] = 1000.0 * (time.perf_counter() - clock)
        if "flow" in config.sensors:
            clock = time.perf_counter()
            flow = encode_backward_flow(backward_flow(raster, previous_camera, motion))
            timings["flow"] = 1000.0 * (time.perf_counter() - clock)
        if "rgb" in config.sensors:
            clock = time.perf_counter()
            rgb_bgra = self._shader.shade(raster, camera, self._weather, self._frame_id)
            timings["rgb"] = 1000.0 * (time.perf_counter() - clock)
        ego_state = EgoState(
            x=self.ego.x, y=self.ego.y, z=0.0, yaw_deg=math.degrees(self.ego.yaw), speed_mps=self.ego.speed,
            autopilot=self._autopilot_on,
            control=VehicleControl(self._control.throttle, self._control.steer, self._control.brake,
                                   self._control.hand_brake, self._control.reverse),
        )
        self.last_timings_ms = timings
        return Frame(
            frame_id=self._frame_id,
            sim_time=self._frame_id * FIXED_DELTA_S,
            semantic_bgra=semantic_bgra,
            instance_bgra=instance_bgra,
            rgb_bgra=rgb_bgra,
            depth_bgra=depth_bgra,
            flow=flow,
            tag_scheme=self.tag_scheme,
            ego=ego_state,
        )
