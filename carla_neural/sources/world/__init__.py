"""The built-in world: procedural streets that emit CARLA-encoded camera frames without a server."""

from carla_neural.sources.world.builtin import SENSORS, BuiltinWorld, WorldConfig
from carla_neural.sources.world.camera import MOUNTS
from carla_neural.sources.world.weather import WEATHER_PRESETS

__all__ = ["MOUNTS", "SENSORS", "WEATHER_PRESETS", "BuiltinWorld", "WorldConfig"]
