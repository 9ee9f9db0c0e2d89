"""Live CARLA as a Source: synchronous mode, an ego vehicle, one camera rig, seeded traffic.

`carla` is imported when a CarlaSource is opened, never at module import. Everything the
source changes on the server (settings, Traffic Manager mode, actors) is undone by `close()`,
which also runs on errors and on Ctrl-C (see `teardown.py`).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

from carla_neural.sources.assembler import FrameAssembler
from carla_neural.sources.base import EgoState, Frame, Source, VehicleControl
from carla_neural.sources.camera_mounts import CAMERA_MOUNTS, CameraMount, camera_mount
from carla_neural.sources.carla_images import flow_image_to_array, image_to_bgra
from carla_neural.sources.carla_session import (
    CarlaConnectionError,
    check_seed,
    SpawnedActors,
    connect,
    enter_synchronous_mode,
    import_carla,
    load_map,
)
from carla_neural.sources.teardown import Teardown

log = logging.getLogger(__name__)

# Sensor name (the Frame field it fills) -> CARLA blueprint.
SENSOR_BLUEPRINTS: dict[str, str] = {
    "semantic": "sensor.camera.semantic_segmentation",
    "instance": "sensor.camera.instance_segmentation",
    "rgb": "sensor.camera.rgb",
    "flow": "sensor.camera.optical_flow",
    "depth": "sensor.camera.depth",
}

# The presets of carla.WeatherParameters in 0.9.16 (kept here so validation needs no carla).
CARLA_WEATHER_PRESETS: tuple[str, ...] = (
    "ClearNoon", "CloudyNoon", "WetNoon", "WetCloudyNoon", "SoftRainNoon", "MidRainyNoon",
    "HardRainNoon", "ClearSunset", "CloudySunset", "WetSunset", "WetCloudySunset",
    "SoftRainSunset", "MidRainSunset", "HardRainSunset", "ClearNight", "CloudyNight",
    "WetNight", "WetCloudyNight", "SoftRainNight", "MidRainyNight", "HardRainNight",
    "DustStorm", "Default",
)


@dataclass
class CameraRig:
    """Cameras sharing one transform: which sensors, image size, horizontal fov, mount."""

    width: int = 512
    height: int = 256
    fov: float = 90.0
    mount: CameraMount = field(default_factory=lambda: CAMERA_MOUNTS["hood"])
    sensors: tuple[str, ...] = ("semantic", "instance", "rgb", "flow", "depth")


@dataclass
class CarlaConfig:
    """How to reach the server and what to set up on it."""

    host: str = "127.0.0.1"
    port: int = 2000
    timeout_s: float = 10.0
    map_name: str | None = None
    fixed_delta_s: float = 0.05
    tm_port: int = 8000
    seed: int = 0
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    # Index into the map's spawn points, or an explicit (x, y, z, yaw_deg); None: seeded choice.
    spawn_point: int | tuple[float, float, float, float] | None = None
    camera: CameraRig = field(default_factory=CameraRig)
    weather: str | None = None
    weather_parameters: dict[str, float] | None = None
    vehicles: int = 0
    walkers: int = 0
    autopilot: bool = False
    # Locations (x, y, z) the autopilot drives through, in order (Traffic Manager path).
    route: list[tuple[float, float, float]] | None = None
    sensor_timeout_s: float = 5.0


# Every field of carla.WeatherParameters' constructor.
_WEATHER_FIELDS = (
    "cloudiness", "precipitation", "precipitation_deposits", "wind_intensity", "sun_azimuth_angle",
    "sun_altitude_angle", "fog_density", "fog_distance", "fog_falloff", "wetness",
    "scattering_intensity", "mie_scattering_scale", "rayleigh_scattering_scale", "dust_storm",
)


def custom_weather(carla: Any, parameters: dict[str, float], base: str = "ClearNoon") -> Any:
    """carla.WeatherParameters: the `base` preset with `parameters` changed.

    Starting from a preset keeps the fields a scenario leaves out (light scattering among them)
    at CARLA's values rather than the constructor's zeros.
    """
    unknown = set(parameters) - set(_WEATHER_FIELDS)
    if unknown:
        raise ValueError(f"unknown weather fields {sorted(unknown)}; allowed: {', '.join(_WEATHER_FIELDS)}")
    preset = getattr(carla.WeatherParameters, base)
    fields = {name: getattr(preset, name) for name in _WEATHER_FIELDS}
    return carla.WeatherParameters(**{**fields, **parameters})


class CarlaSource(Source):
    """Frames from a live CARLA server in synchronous mode; see CarlaConfig."""

    weather_presets = CARLA_WEATHER_PRESETS
    camera_mounts = tuple(CAMERA_MOUNTS)

    def __init__(self, config: CarlaConfig) -> None:
        self.config = config
        for name in config.camera.sensors:
            if name not in SENSOR_BLUEPRINTS:
                raise ValueError(f"unknown sensor {name!r}; choose from {', '.join(SENSOR_BLUEPRINTS)}")
        if "semantic" not in config.camera.sensors:
            raise ValueError("the camera rig needs the 'semantic' sensor: it is what gets rendered")
        check_seed(config.seed)  # before anything on the server changes
        self._carla = import_carla()
        self._teardown = Teardown()
        self._autopilot = False
        self._sensors: list[Any] = []
        self.weather: str | None = None
        matching = [n for n, m in CAMERA_MOUNTS.items() if m == config.camera.mount]
        self._mount_name = matching[0] if matching else "custom"
        self.assembler: FrameAssembler[Any] = FrameAssembler(config.camera.sensors)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- setup ------------------------------------------------------------------------------

    def _open(self) -> None:
        carla, config = self._carla, self.config
        self.client, self.client_version, self.server_version = connect(
            carla, config.host, config.port, config.timeout_s
        )
        self.sensors = tuple(config.camera.sensors)
        self.tag_scheme = _tag_scheme_of(self.server_version)
        self.world = (
            load_map(self.client, config.map_name, config.timeout_s)
            if config.map_name else self.client.get_world()
        )
        # Registered first so it runs last: actors go after the server is asynchronous again.
        self.actors = SpawnedActors(self.client, carla)
        self._teardown.add("destroy every actor we spawned", self.actors.destroy)
        self.traffic_manager = self.client.get_trafficmanager(config.tm_port)
        enter_synchronous_mode(
            self.world, self.traffic_manager, config.fixed_delta_s, config.seed, self._teardown
        )
        self._teardown.add("stop sensor callbacks and walker controllers", self.actors.stop_listening)
        self.world.set_pedestrians_seed(config.seed)
        self._random = random.Random(config.seed)
        if config.weather_parameters:
            self.world.set_weather(custom_weather(carla, config.weather_parameters))
            self.weather = "custom"
        elif config.weather:
            self.set_weather(config.weather)
        self.ego = self._spawn_ego()
        self._spawn_camera_rig(config.camera.mount)
        self._spawn_traffic()
        self._tick_world()  # makes the batch-spawned walkers' controllers visible
        self._start_walkers()
        if config.autopilot or config.route:
            self.set_autopilot(True)
        if config.route:
            path = [carla.Location(x=x, y=y, z=z) for x, y, z in config.route]
            self.traffic_manager.set_path(self.ego, path)
        self.map_name = self.world.get_map().name
        log.info("CARLA source ready on %s: %d actors spawned", self.map_name, len(self.actors))

    def _spawn_ego(self) -> Any:
        carla, config = self._carla, self.config
        library = self.world.get_blueprint_library()
        matches = library.filter(config.ego_blueprint)
        if not matches:
            raise ValueError(f"no vehicle blueprint matches {config.ego_blueprint!r}; "
                             "e.g. vehicle.lincoln.mkz_2020, vehicle.tesla.model3")
        blueprint = matches[0]
        if blueprint.has_attribute("role_name"):
            blueprint.set_attribute("role_name", "hero")
        spawn_points = self.world.get_map().get_spawn_points()
        self._spawn_points = spawn_points
        if isinstance(config.spawn_point, tuple):
            x, y, z, yaw = config.spawn_point
            transform = carla.Transform(carla.Location(x=x, y=y, z=z), carla.Rotation(yaw=yaw))
        elif config.spawn_point is None:
            transform = self._random.choice(spawn_points)
        elif 0 <= config.spawn_point < len(spawn_points):
            transform = spawn_points[config.spawn_point]
        else:
            raise ValueError(f"spawn point {config.spawn_point} does not exist on this map: "
                             f"choose 0..{len(spawn_points) - 1}")
        ego = self.world.try_spawn_actor(blueprint, transform)
        if ego is None:
            raise RuntimeError(f"could not spawn the ego vehicle at {transform}: the place is "
                               "taken; choose another spawn point")
        self.actors.add(ego)
        self._ego_transform = transform
        return ego

    def _spawn_camera_rig(self, mount: CameraMount) -> None:
        carla, rig = self._carla, self.config.camera
        library = self.world.get_blueprint_library()
        transform = carla.Transform(
            carla.Location(x=mount.x, y=mount.y, z=mount.z),
            carla.Rotation(pitch=mount.pitch, yaw=mount.yaw, roll=mount.roll),
        )
        for name in rig.sensors:
            blueprint = library.find(SENSOR_BLUEPRINTS[name])
            blueprint.set_attribute("image_size_x", str(rig.width))
            blueprint.set_attribute("image_size_y", str(rig.height))
            blueprint.set_attribute("fov", str(rig.fov))
            # 0: one image per simulation step.
            blueprint.set_attribute("sensor_tick", "0.0")
            sensor = self.actors.add(self.world.spawn_actor(blueprint, transform, attach_to=self.ego))
            sensor.listen(self._on_measurement(name))
            self._sensors.append(sensor)

    def _on_measurement(self, name: str) -> Any:
        put = self.assembler.put

        def on_measurement(measurement: Any) -> None:
            put(name, measurement.frame, measurement)

        return on_measurement

    def _spawn_traffic(self) -> None:
        carla, config = self._carla, self.config
        library = self.world.get_blueprint_library()
        if config.vehicles > 0:
            blueprints = [bp for bp in library.filter("vehicle.*")
                          if int(bp.get_attribute("number_of_wheels")) == 4]
            ego_location = self._ego_transform.location
            free = [t for t in self._spawn_points if t.location.distance(ego_location) > 5.0]
            self._random.shuffle(free)
            if config.vehicles > len(free):
                log.warning("asked for %d vehicles, the map has %d free spawn points",
                            config.vehicles, len(free))
            commands = []
            for transform in free[: config.vehicles]:
                blueprint = self._random.choice(blueprints)
                if blueprint.has_attribute("role_name"):
                    blueprint.set_attribute("role_name", "autopilot")
                commands.append(
                    carla.command.SpawnActor(blueprint, transform).then(
                        carla.command.SetAutopilot(carla.command.FutureActor, True, config.tm_port)
                    )
                )
            self._spawn_batch(commands, "vehicle")
        if config.walkers > 0:
            blueprints = library.filter("walker.pedestrian.*")
            commands = []
            for _ in range(config.walkers):
                location = self.world.get_random_location_from_navigation()
                if location is None:
                    continue
                blueprint = self._random.choice(blueprints)
                if blueprint.has_attribute("is_invincible"):
                    blueprint.set_attribute("is_invincible", "false")
                commands.append(carla.command.SpawnActor(blueprint, carla.Transform(location)))
            walker_ids = self._spawn_batch(commands, "walker.pedestrian")
            controller_bp = library.find("controller.ai.walker")
            commands = [carla.command.SpawnActor(controller_bp, carla.Transform(), walker_id)
                        for walker_id in walker_ids]
            self._spawn_batch(commands, "controller.ai.walker")

    def _spawn_batch(self, commands: list[Any], kind: str) -> list[int]:
        """Spawn in one batch (ticking once, as CARLA's generate_traffic.py does); return the ids."""
        spawned: list[int] = []
        errors = []
        for response in self.client.apply_batch_sync(commands, True):
            if response.error:
                errors.append(response.error)
            else:
                self.actors.add_id(response.actor_id, kind)
                spawned.append(response.actor_id)
        if errors:
            log.warning("%d of %d %s spawns failed (%s)", len(errors), len(commands), kind, errors[0])
        log.info("spawned %d %s actors", len(spawned), kind)
        return spawned

    def _start_walkers(self) -> None:
        controller_ids = self.actors.ids("controller.ai.walker")
        if not controller_ids:
            return
        standing = 0
        for controller in self.world.get_actors(controller_ids):
            self.actors.attach(controller)
            controller.start()
            # None where the map has no navigation mesh (or no point was found on it):
            # go_to_location(None) is a Boost.Python ArgumentError, so the walker stands instead.
            destination = self.world.get_random_location_from_navigation()
            if destination is None:
                standing += 1
            else:
                controller.go_to_location(destination)
            controller.set_max_speed(1.0 + self._random.random() * 0.8)
        if standing:
            log.warning("%d of %d walkers stand still: the map gave no navigation destination "
                        "(it may have no navigation mesh)", standing, len(controller_ids))

    # -- Source API ---------------------------------------------------------------------------

    def tick(self) -> Frame:
        """Advance one fixed step; return its frame (raises SensorTimeout naming silent sensors)."""
        frame_id = self._tick_world()
        measurements = self.assembler.collect(frame_id, self.config.sensor_timeout_s)
        semantic = measurements["semantic"]

        def bgra(name: str) -> Any:
            return image_to_bgra(measurements[name]) if name in measurements else None

        return Frame(
            frame_id=frame_id,
            sim_time=float(semantic.timestamp),
            semantic_bgra=image_to_bgra(semantic),
            instance_bgra=bgra("instance"),
            rgb_bgra=bgra("rgb"),
            depth_bgra=bgra("depth"),
            flow=flow_image_to_array(measurements["flow"]) if "flow" in measurements else None,
            tag_scheme=self.tag_scheme,
            ego=self._ego_state(),
        )

    def _tick_world(self) -> int:
        """world.tick with a timeout; CarlaConnectionError when the server does not answer."""
        try:
            return self.world.tick(self.config.timeout_s)
        except RuntimeError as error:
            raise CarlaConnectionError(
                f"the CARLA server at {self.config.host}:{self.config.port} stopped answering: a "
                f"tick took more than {self.config.timeout_s:g} s ({error}); is it still running? "
                "(--timeout raises the limit)"
            ) from error

    def _ego_state(self) -> EgoState:
        transform = self.ego.get_transform()
        velocity = self.ego.get_velocity()
        control = self.ego.get_control()
        return EgoState(
            x=transform.location.x,
            y=transform.location.y,
            z=transform.location.z,
            yaw_deg=transform.rotation.yaw,
            speed_mps=math.sqrt(velocity.x**2 + velocity.y**2 + velocity.z**2),
            autopilot=self._autopilot,
            control=VehicleControl(
                throttle=control.throttle, steer=control.steer, brake=control.brake,
                hand_brake=control.hand_brake, reverse=control.reverse,
            ),
        )

    def apply_control(self, control: VehicleControl) -> None:
        """Drive the ego manually; switches the autopilot off."""
        if self._autopilot:
            self.set_autopilot(False)
        self.ego.apply_control(self._carla.VehicleControl(
            throttle=control.throttle, steer=control.steer, brake=control.brake,
            hand_brake=control.hand_brake, reverse=control.reverse,
        ))

    def set_autopilot(self, enabled: bool) -> None:
        """Hand the ego to the Traffic Manager (or take it back)."""
        self.ego.set_autopilot(enabled, self.config.tm_port)
        self._autopilot = enabled

    def set_weather(self, preset: str) -> None:
        """Apply one of carla.WeatherParameters' presets by name (see weather_presets)."""
        if preset not in self.weather_presets:
            raise ValueError(f"unknown weather preset {preset!r}; choose one of {', '.join(self.weather_presets)}")
        self.world.set_weather(getattr(self._carla.WeatherParameters, preset))
        self.weather = preset

    @property
    def mount(self) -> str:
        """Name of the current camera mount ("custom" for an explicit transform)."""
        return self._mount_name

    def set_mount(self, name: str) -> None:
        """Move the camera rig to a named mount (respawns the cameras, as manual_control does)."""
        mount = camera_mount(name)
        old = self._sensors
        self._sensors = []
        for sensor in old:
            sensor.stop()
        self.actors.destroy([sensor.id for sensor in old])
        self.assembler.clear()
        self._spawn_camera_rig(mount)
        self._mount_name = name

    def close(self) -> None:
        """Restore the server (asynchronous mode, original settings) and destroy our actors."""
        client = getattr(self, "client", None)
        if client is not None and len(self._teardown):
            # A dead server should cost seconds at exit, not a full timeout per step.
            client.set_timeout(min(self.config.timeout_s, 5.0))
        self._teardown.run()


def _tag_scheme_of(server_version: str) -> str:
    """The tag scheme the server's semantic camera uses; 0.9.14's where its version is unreadable."""
    from carla_neural.remap_tables import resolve_scheme

    try:
        return resolve_scheme(server_version)
    except ValueError:
        log.warning("cannot read the CARLA server version %r; assuming tag scheme 0.9.14", server_version)
        return "0.9.14"
