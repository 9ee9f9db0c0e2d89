"""The scenario file format (YAML), validated with pydantic; errors name the field and the choices.

A scenario says what to simulate (map, weather, ego, route, traffic, duration, cameras) and
how to render it (checkpoint, engine). `load_scenario(path)` reads and validates one file;
`ScenarioError` carries one line per problem, each naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from carla_neural.sources.carla_session import check_seed
from carla_neural.sources.camera_mounts import MOUNT_FOV_DEG
from carla_neural.sources.carla_source import CARLA_WEATHER_PRESETS, SENSOR_BLUEPRINTS
from renderer.engine_names import LIVE_ENGINES


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message lists each problem by field."""


# A scenario file is a few KB; these bound what a hostile or broken one can make us parse.
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32


class _ScenarioLoader(yaml.SafeLoader):
    """yaml.SafeLoader without aliases and with a nesting limit.

    Aliases (``*name``) let a file under 1 KB expand to gigabytes (the "billion laughs"); no
    scenario needs them. Deep nesting would otherwise end in a RecursionError.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in scenario files: write the value out", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep; a scenario needs 4", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class StrictModel(BaseModel):
    """Rejects unknown keys with the list of known ones (typos are the usual mistake), and inf/nan."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, values: Any) -> Any:
        if isinstance(values, dict):
            unknown = sorted(str(key) for key in values if key not in cls.model_fields)
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(cls.model_fields)}"
                )
        return values


class Location(StrictModel):
    """A point in the map's coordinates, metres."""

    x: float
    y: float
    z: float = 0.5


class SpawnTransform(Location):
    """An explicit spawn pose: location in metres, heading in degrees."""

    yaw: float = 0.0


class WeatherParameters(StrictModel):
    """Custom weather: fields of carla.WeatherParameters (percentages 0..100, angles in degrees).

    Fields left out keep CARLA's ClearNoon values.
    """

    cloudiness: float = 5.0
    precipitation: float = 0.0
    precipitation_deposits: float = 0.0
    wind_intensity: float = 10.0
    sun_azimuth_angle: float = -1.0
    sun_altitude_angle: float = 45.0
    fog_density: float = 2.0
    fog_distance: float = 0.75
    fog_falloff: float = 0.1
    wetness: float = 0.0

    @field_validator("cloudiness", "precipitation", "precipitation_deposits", "wind_intensity",
                     "fog_density", "wetness")
    @classmethod
    def _percentage(cls, value: float) -> float:
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"must be a percentage in 0..100, got {value}")
        return value

    @field_validator("sun_altitude_angle")
    @classmethod
    def _altitude(cls, value: float) -> float:
        if not -90.0 <= value <= 90.0:
            raise ValueError(f"must be in -90..90 degrees (negative: night), got {value}")
        return value

    @property
    def is_night(self) -> bool:
        """Sun below the horizon."""
        return self.sun_altitude_angle < 0.0


class Ego(StrictModel):
    """The vehicle we drive: a blueprint id (or pattern) and where it starts."""

    blueprint: str = "vehicle.lincoln.mkz_2020"
    # An index into the map's spawn points, an explicit pose, or None for a seeded choice.
    spawn_point: Annotated[
        Union[Annotated[int, Tag("index")], Annotated[SpawnTransform, Tag("pose")]],
        Discriminator(
            lambda value: "pose" if isinstance(value, (dict, SpawnTransform)) else
            "index" if isinstance(value, int) and not isinstance(value, bool) else None,
            custom_error_type="spawn_point",
            custom_error_message="must be a spawn point index (0, 1, ...) or a pose {x, y, z, yaw}",
        ),
    ] | None = None

    @field_validator("blueprint")
    @classmethod
    def _vehicle(cls, value: str) -> str:
        if not value.startswith("vehicle."):
            raise ValueError(f"must be a vehicle blueprint such as vehicle.lincoln.mkz_2020, got {value!r}")
        return value

    @field_validator("spawn_point")
    @classmethod
    def _index(cls, value: int | SpawnTransform | None) -> int | SpawnTransform | None:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"a spawn point index is 0 or more, got {value}")
        return value


class Route(StrictModel):
    """How the ego moves: the autopilot roams, or follows waypoints, or heads for a destination."""

    autopilot: bool = True
    waypoints: list[Location] | None = None
    destination: Location | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Route":
        if self.waypoints is not None and self.destination is not None:
            raise ValueError("give waypoints or destination, not both")
        if self.waypoints is not None and len(self.waypoints) == 0:
            raise ValueError("waypoints needs at least one location")
        if (self.waypoints or self.destination) and not self.autopilot:
            raise ValueError("waypoints and destination are followed by the autopilot; "
                             "leave autopilot: true")
        return self

    def path(self) -> list[tuple[float, float, float]] | None:
        """The locations the autopilot should pass, in order, or None to roam."""
        points = self.waypoints or ([self.destination] if self.destination else None)
        return [(p.x, p.y, p.z) for p in points] if points else None


class Traffic(StrictModel):
    """Other road users, spawned reproducibly from `seed`."""

    vehicles: int = 0
    walkers: int = 0
    seed: int = 0  # CARLA takes unsigned 32-bit seeds (pedestrians, Traffic Manager)

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        return check_seed(value)

    @field_validator("vehicles", "walkers")
    @classmethod
    def _count(cls, value: int) -> int:
        if not 0 <= value <= 500:
            raise ValueError(f"must be in 0..500, got {value}")
        return value


MAX_SECONDS = 86400.0


class Duration(StrictModel):
    """How long to run: a number of frames, or seconds of simulated time."""

    frames: int | None = None
    seconds: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Duration":
        if (self.frames is None) == (self.seconds is None):
            raise ValueError("give exactly one of frames or seconds")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be 1 or more, got {self.frames}")
        if self.seconds is not None and not 0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be in (0, {MAX_SECONDS}] (a day), got {self.seconds}")
        return self

    def frame_count(self, fixed_delta_s: float) -> int:
        """Frames to record at one frame per simulation step of `fixed_delta_s` seconds."""
        if self.frames is not None:
            return self.frames
        return max(1, math.ceil(round(self.seconds / fixed_delta_s, 6)))


class CameraTransform(StrictModel):
    """Camera pose relative to the ego: metres (x forward, y right, z up) and degrees."""

    x: float = 1.0
    y: float = 0.0
    z: float = 1.6
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


class Cameras(StrictModel):
    """The camera rig: every sensor shares this size, field of view and transform."""

    width: int = 512
    height: int = 256
    # Default: the mount's own field of view (MOUNT_FOV_DEG), else 90.
    fov: float = 90.0
    mount: Literal["hood", "chase", "roof", "bumper", "cityscapes"] = "hood"
    # Overrides `mount` when given.
    transform: CameraTransform | None = None
    sensors: list[Literal["semantic", "instance", "rgb", "flow", "depth"]] = list(SENSOR_BLUEPRINTS)

    @model_validator(mode="before")
    @classmethod
    def _mount_fov(cls, values: Any) -> Any:
        if isinstance(values, dict) and "fov" not in values and values.get("mount") in MOUNT_FOV_DEG:
            return {**values, "fov": MOUNT_FOV_DEG[values["mount"]]}
        return values

    @field_validator("width", "height")
    @classmethod
    def _size(cls, value: int) -> int:
        if not 16 <= value <= 4096:
            raise ValueError(f"must be in 16..4096 pixels, got {value}")
        return value

    @field_validator("fov")
    @classmethod
    def _fov(cls, value: float) -> float:
        if not 10.0 <= value <= 170.0:
            raise ValueError(f"must be a horizontal field of view in 10..170 degrees, got {value}")
        return value

    @field_validator("sensors")
    @classmethod
    def _has_semantic(cls, value: list[str]) -> list[str]:
        if "semantic" not in value:
            raise ValueError("must include 'semantic': it is what gets rendered")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a sensor twice: {value}")
        return value


class Rendering(StrictModel):
    """Which generator renders the run, with which engine, and whether the label transform
    (carla_neural.label_transform) goes between remap and the renderer."""

    # None: the world's default (carla_neural.runs.default_checkpoint: bundled-adapted on the
    # built-in world, bundled on CARLA).
    checkpoint: str | None = None
    engine: Literal[LIVE_ENGINES] = "torch"  # type: ignore[valid-type]
    # None: on for the model adapted on transformed maps (bundled-adapted), else off.
    adapt_labels: bool | None = None
    # A label transform config JSON (relative to the working directory); None: the calibrated one.
    transform_config: str | None = None


class Scenario(StrictModel):
    """One scripted run. See docs and scenarios/builtin/*.yaml for examples."""

    name: str
    description: str = ""
    map: str | None = None
    weather: Annotated[
        Union[Annotated[str, Tag("preset")], Annotated[WeatherParameters, Tag("parameters")]],
        Discriminator(
            lambda value: "preset" if isinstance(value, str) else
            "parameters" if isinstance(value, (dict, WeatherParameters)) else None,
            custom_error_type="weather",
            custom_error_message="must be a carla.WeatherParameters preset name (e.g. ClearNoon) "
            "or a mapping of its fields (cloudiness, precipitation, sun_altitude_angle, ...)",
        ),
    ] = "ClearNoon"
    ego: Ego = Ego()
    route: Route = Route()
    traffic: Traffic = Traffic()
    duration: Duration = Duration(frames=100)
    fixed_delta_s: float = 0.05
    cameras: Cameras = Cameras()
    rendering: Rendering = Rendering()
    # Overrides for the built-in world's WorldConfig when this scenario runs without CARLA;
    # `builtin: null` means the scenario has no built-in counterpart.
    builtin: dict[str, Any] | None = {}

    @field_validator("weather", mode="before")
    @classmethod
    def _weather(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in CARLA_WEATHER_PRESETS:
            raise ValueError(
                f"unknown weather preset {value!r}; allowed: {', '.join(CARLA_WEATHER_PRESETS)} "
                "(or a mapping of carla.WeatherParameters fields)"
            )
        return value

    @field_validator("builtin")
    @classmethod
    def _world_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            from carla_neural.sources.world import WorldConfig

            known = WorldConfig.field_names()
            unknown = sorted(str(key) for key in value if key not in known)
            if unknown:
                raise ValueError(f"unknown built-in world field(s) {', '.join(unknown)}; "
                                 f"allowed: {', '.join(known)}")
            # Types and bounds now, not a crash mid-run; the checked values replace the given ones.
            try:
                checked = WorldConfig.from_values(value)
            except ValidationError as error:
                problems = []
                for problem in error.errors(include_url=False):
                    where = ".".join(str(part) for part in problem["loc"])
                    message = problem["msg"].removeprefix("Value error, ")
                    problems.append(f"{where}: {message}" if where else message)
                raise ValueError("; ".join(problems)) from None
            return {key: getattr(checked, key) for key in value}
        return value

    @field_validator("fixed_delta_s")
    @classmethod
    def _delta(cls, value: float) -> float:
        if not 0.001 <= value <= 0.1:
            raise ValueError(f"must be in 0.001..0.1 s (CARLA's physics needs <= 0.1), got {value}")
        return value

    @property
    def fps(self) -> float:
        """Frames per simulated second."""
        return 1.0 / self.fixed_delta_s

    @property
    def frame_count(self) -> int:
        """Number of frames the run records."""
        return self.duration.frame_count(self.fixed_delta_s)

    @property
    def is_night(self) -> bool:
        """True for night presets and custom weather with the sun below the horizon."""
        if isinstance(self.weather, WeatherParameters):
            return self.weather.is_night
        return "Night" in self.weather


def parse_scenario(document: Any, origin: str = "<scenario>") -> Scenario:
    """Validate an already-parsed YAML document; raise ScenarioError listing every problem."""
    if not isinstance(document, dict):
        raise ScenarioError(f"{origin}: a scenario is a mapping of fields (name, map, weather, ...), "
                            f"got {type(document).__name__}")
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        raise ScenarioError(format_validation_error(error, origin)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file (raises ScenarioError naming each bad field)."""
    return parse_scenario(read_yaml(path, "scenario", ScenarioError), str(path))


def read_yaml(path: str | Path, what: str, error_type: type[ScenarioError]) -> Any:
    """The parsed YAML document of a `what` file; `error_type` names an unreadable or malformed one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise error_type(f"{path}: {size} bytes is not a {what} file (they are a few KB)")
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise error_type(f"{path}: cannot read the {what} file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise error_type(f"{path}: not a text file (a {what} file is UTF-8 YAML)") from None
    loader = _ScenarioLoader(text)
    loader.name = str(path)  # for the marks in YAML's messages
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise error_type(f"{path}: not valid YAML: {error}") from None
    finally:
        loader.dispose()


def format_validation_error(error: ValidationError, origin: str, what: str = "scenario") -> str:
    """One line per problem: `origin: field.path: message` (`what`: the kind of file, for the heading)."""
    lines = [f"{origin}: {error.error_count()} problem(s) in the {what}:"]
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"] if part not in _UNION_TAGS)
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {location or '(top level)'}: {message}")
    return "\n".join(lines)


# Names of union branches that pydantic puts into error locations; noise in a YAML file.
_UNION_TAGS = {"preset", "parameters", "index", "pose"}

