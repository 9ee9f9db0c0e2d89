"""A scenario's counterpart on each world: CarlaConfig for live CARLA, WorldConfig for the built-in world."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from carla_neural.sources.camera_mounts import CAMERA_MOUNTS, CameraMount
from scenarios.schema import Scenario, ScenarioError, WeatherParameters

if TYPE_CHECKING:  # the world and the CARLA source load only when used
    from carla_neural.sources.carla_source import CarlaConfig
    from carla_neural.sources.world import WorldConfig

log = logging.getLogger(__name__)


def camera_mount_of(scenario: Scenario) -> CameraMount:
    """The camera transform relative to the ego: the explicit one, or the named mount."""
    if scenario.cameras.transform is not None:
        return CameraMount(**scenario.cameras.transform.model_dump())
    return CAMERA_MOUNTS[scenario.cameras.mount]


def carla_config(scenario: Scenario, host: str = "127.0.0.1", port: int = 2000,
                 timeout_s: float = 10.0, tm_port: int = 8000) -> CarlaConfig:
    """The CarlaConfig that runs `scenario` on a CARLA server at host:port."""
    from carla_neural.sources.carla_source import CameraRig, CarlaConfig  # noqa: F811

    spawn = scenario.ego.spawn_point
    if spawn is not None and not isinstance(spawn, int):
        spawn = (spawn.x, spawn.y, spawn.z, spawn.yaw)
    weather = scenario.weather
    return CarlaConfig(
        host=host,
        port=port,
        timeout_s=timeout_s,
        map_name=scenario.map,
        fixed_delta_s=scenario.fixed_delta_s,
        tm_port=tm_port,
        seed=scenario.traffic.seed,
        ego_blueprint=scenario.ego.blueprint,
        spawn_point=spawn,
        camera=CameraRig(
            width=scenario.cameras.width,
            height=scenario.cameras.height,
            fov=scenario.cameras.fov,
            mount=camera_mount_of(scenario),
            sensors=tuple(scenario.cameras.sensors),
        ),
        weather=weather if isinstance(weather, str) else None,
        weather_parameters=weather.model_dump() if isinstance(weather, WeatherParameters) else None,
        vehicles=scenario.traffic.vehicles,
        walkers=scenario.traffic.walkers,
        autopilot=scenario.route.autopilot,
        route=scenario.route.path(),
    )


# carla.WeatherParameters presets the built-in world lacks -> its nearest preset.
_BUILTIN_WEATHER_FALLBACK = {"Default": "ClearNoon", "DustStorm": "CloudyNoon"}
# WorldConfig's cap on vehicles (a scenario may ask for up to 500 on CARLA).
_WORLD_MAX_VEHICLES = 300


def nearest_builtin_weather(weather: str | WeatherParameters) -> str:
    """A built-in world weather preset for a CARLA preset name or custom parameters."""
    if isinstance(weather, str):
        return _BUILTIN_WEATHER_FALLBACK.get(weather, weather)
    altitude = weather.sun_altitude_angle
    time_of_day = "Night" if altitude < 0 else "Sunset" if altitude < 15 else "Noon"
    if weather.precipitation >= 70:
        condition = "HardRain"
    elif weather.precipitation >= 40:
        condition = "MidRainy" if time_of_day != "Sunset" else "MidRain"
    elif weather.precipitation > 0:
        condition = "SoftRain"
    elif weather.wetness >= 50 or weather.precipitation_deposits >= 50:
        condition = "WetCloudy" if weather.cloudiness >= 50 else "Wet"
    else:
        condition = "Cloudy" if weather.cloudiness >= 50 else "Clear"
    return condition + time_of_day


def world_config(scenario: Scenario) -> WorldConfig:
    """The built-in world's WorldConfig for `scenario` (its counterpart of map, weather, traffic, cameras).

    Raises ScenarioError when the scenario says it has no counterpart (`builtin: null`).
    """
    from carla_neural.sources.world import WorldConfig  # noqa: F811

    if scenario.builtin is None:
        raise ScenarioError(f"scenario {scenario.name!r} has no built-in world counterpart "
                            "(builtin: null); run it on a CARLA server (--world carla)")
    if scenario.cameras.transform is not None:
        log.warning("the built-in world has no free camera transform; using the %r mount",
                    scenario.cameras.mount)
    if scenario.route.path():
        log.warning("the built-in world has no map coordinates: route waypoints/destination are "
                    "ignored, the autopilot follows its own roads")
    if scenario.ego.spawn_point is not None or scenario.map:
        log.info("map %s and spawn point have no built-in counterpart; the layout and seed decide",
                 scenario.map)
    vehicles = scenario.traffic.vehicles
    if vehicles > _WORLD_MAX_VEHICLES:
        log.warning("the built-in world holds at most %d vehicles (asked for %d)", _WORLD_MAX_VEHICLES, vehicles)
        vehicles = _WORLD_MAX_VEHICLES
    fields = {
        "seed": scenario.traffic.seed,
        "width": scenario.cameras.width,
        "height": scenario.cameras.height,
        "fov_deg": scenario.cameras.fov,
        "mount": scenario.cameras.mount,
        "weather": nearest_builtin_weather(scenario.weather),
        "vehicles": vehicles,
        "walkers": scenario.traffic.walkers,
        "autopilot": scenario.route.autopilot,
        "sensors": tuple(scenario.cameras.sensors),
        **scenario.builtin,
    }
    try:
        return WorldConfig(**fields)
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"scenario {scenario.name!r}: the built-in world cannot run it: {error}") from None
