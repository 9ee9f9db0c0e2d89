"""Weather presets named as CARLA's carla.WeatherParameters, as lighting parameters for the shader."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Weather:
    """Light and atmosphere: sun direction and strength, sky colours, fog, clouds, wetness, rain."""

    name: str
    sun_elevation_deg: float
    sun_azimuth_deg: float
    sun: float  # direct light strength
    ambient: float  # sky light strength
    sun_colour: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    fog_distance_m: float
    cloudiness: float
    wetness: float
    rain: float
    night: bool

    @property
    def sun_direction(self) -> np.ndarray:
        """Unit vector towards the sun, world frame (z up)."""
        elevation, azimuth = math.radians(self.sun_elevation_deg), math.radians(self.sun_azimuth_deg)
        return np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                         math.sin(elevation)])


_TIMES = {
    # elevation, sun, ambient, sun colour, zenith, horizon
    "Noon": (65.0, 0.85, 0.45, (1.0, 0.97, 0.92), (0.25, 0.45, 0.80), (0.70, 0.80, 0.92)),
    "Sunset": (7.0, 0.75, 0.32, (1.0, 0.62, 0.35), (0.22, 0.30, 0.55), (0.95, 0.62, 0.40)),
    "Night": (-25.0, 0.0, 0.07, (0.6, 0.7, 1.0), (0.01, 0.015, 0.04), (0.05, 0.06, 0.10)),
}
# cloudiness, wetness, rain, fog distance (m)
_CONDITIONS = {
    "Clear": (0.05, 0.0, 0.0, 900.0),
    "Cloudy": (0.8, 0.0, 0.0, 600.0),
    "Wet": (0.2, 0.7, 0.0, 700.0),
    "WetCloudy": (0.8, 0.7, 0.0, 500.0),
    "SoftRain": (0.7, 0.6, 0.3, 350.0),
    "MidRain": (0.85, 0.8, 0.6, 220.0),
    "HardRain": (1.0, 1.0, 1.0, 120.0),
}


def _preset_name(condition: str, time_of_day: str) -> str:
    # CARLA spells the medium rain "MidRainy" at noon and night but "MidRain" at sunset.
    if condition == "MidRain" and time_of_day != "Sunset":
        return f"MidRainy{time_of_day}"
    return f"{condition}{time_of_day}"


def _make(condition: str, time_of_day: str) -> Weather:
    elevation, sun, ambient, sun_colour, zenith, horizon = _TIMES[time_of_day]
    cloudiness, wetness, rain, fog = _CONDITIONS[condition]
    overcast = 1.0 - 0.75 * cloudiness
    grey = np.array([0.55, 0.57, 0.60]) if time_of_day != "Night" else np.array([0.04, 0.045, 0.06])
    zenith_mixed = tuple(float(c) for c in np.array(zenith) * (1 - cloudiness) + grey * cloudiness * 0.9)
    horizon_mixed = tuple(float(c) for c in np.array(horizon) * (1 - cloudiness) + grey * cloudiness)
    return Weather(
        name=_preset_name(condition, time_of_day),
        sun_elevation_deg=elevation,
        sun_azimuth_deg=35.0 if time_of_day == "Noon" else 200.0,
        sun=sun * overcast,
        ambient=ambient * (1.0 + 0.35 * cloudiness) * (1.0 - 0.25 * rain),
        sun_colour=sun_colour,
        sky_zenith=zenith_mixed,
        sky_horizon=horizon_mixed,
        fog_distance_m=fog,
        cloudiness=cloudiness,
        wetness=wetness,
        rain=rain,
        night=time_of_day == "Night",
    )


WEATHER_PRESETS: dict[str, Weather] = {}
for _time in ("Noon", "Sunset", "Night"):
    for _condition in _CONDITIONS:
        _weather = _make(_condition, _time)
        WEATHER_PRESETS[_weather.name] = _weather


def get_weather(name: str) -> Weather:
    """The preset called `name` (e.g. "ClearNoon"); a clear error listing the choices otherwise."""
    if name not in WEATHER_PRESETS:
        raise ValueError(f"unknown weather preset {name!r}: choose one of {', '.join(WEATHER_PRESETS)}")
    return WEATHER_PRESETS[name]
