"""Scenario files: the built-in ones load, bad ones are refused with the field and the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from carla_neural.sources.camera_mounts import CAMERA_MOUNTS
from scenarios.mapping import carla_config
from scenarios.runner import builtin_scenarios, read_scenario, resolve_scenario
from scenarios.schema import Cameras, ScenarioError, load_scenario, parse_scenario

GOOD = """
name: custom
map: Town05
weather:
  cloudiness: 80
  precipitation: 40
  sun_altitude_angle: -15
ego:
  blueprint: vehicle.tesla.model3
  spawn_point: {x: 10.5, y: -3.0, yaw: 90}
route:
  waypoints:
    - {x: 20, y: -3}
    - {x: 60, y: -3, z: 1}
traffic: {vehicles: 5, walkers: 2, seed: 9}
duration: {seconds: 1.0}
fixed_delta_s: 0.1
cameras:
  width: 256
  height: 128
  fov: 100
  transform: {x: 0.5, z: 1.8, pitch: -5}
  sensors: [semantic, instance, flow]
rendering: {checkpoint: /models/lite, engine: onnx}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_at_least_four_builtin_scenarios_load() -> None:
    shipped = builtin_scenarios()
    assert {"urban_day", "rain_night", "highway", "dense_traffic"} <= set(shipped)
    for name in shipped:
        scenario = read_scenario(name)
        assert scenario.name == name
        assert scenario.frame_count >= 1
    assert read_scenario("rain_night").is_night
    assert not read_scenario("urban_day").is_night


def test_a_full_custom_scenario(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.frame_count == 10  # 1 s at 0.1 s per step
    assert scenario.is_night
    assert scenario.route.path() == [(20.0, -3.0, 0.5), (60.0, -3.0, 1.0)]
    config = carla_config(scenario, host="10.0.0.2", port=3000)
    assert config.map_name == "Town05" and config.port == 3000
    assert config.spawn_point == (10.5, -3.0, 0.5, 90.0)
    assert config.weather is None and config.weather_parameters["precipitation"] == 40
    assert config.camera.sensors == ("semantic", "instance", "flow")
    assert (config.camera.mount.x, config.camera.mount.pitch) == (0.5, -5.0)
    assert config.vehicles == 5 and config.seed == 9 and config.fixed_delta_s == 0.1


def test_scenario_by_path_or_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert resolve_scenario(path) == path
    assert resolve_scenario("highway").name == "highway.yaml"
    with pytest.raises(ScenarioError, match="built-in: .*urban_day"):
        resolve_scenario("no_such_scenario")


@pytest.mark.parametrize(
    ("bad", "field", "names"),
    [
        ("weather: Sunny", "weather", ["ClearNoon", "HardRainNight"]),
        ("weather: {cloudiness: 150}", "weather.cloudiness", ["0..100"]),
        ("weather: {clouds: 10}", "weather", ["cloudiness", "sun_altitude_angle"]),
        ("trafic: {vehicles: 3}", "(top level)", ["trafic", "traffic"]),
        ("traffic: {vehicles: -1}", "traffic.vehicles", ["0..500"]),
        ("duration: {frames: 10, seconds: 2}", "duration", ["exactly one of frames or seconds"]),
        ("duration: {frames: 0}", "duration", ["1 or more"]),
        ("cameras: {mount: dashboard}", "cameras.mount", ["'hood'", "'bumper'"]),
        ("cameras: {width: 8}", "cameras.width", ["16..4096"]),
        ("cameras: {sensors: [rgb, lidar]}", "cameras.sensors.1", ["'semantic'", "'flow'"]),
        ("cameras: {sensors: [rgb]}", "cameras.sensors", ["'semantic'"]),
        ("rendering: {engine: tensorflow}", "rendering.engine", ["'torch'", "'tensorrt'"]),
        ("ego: {blueprint: walker.pedestrian.0001}", "ego.blueprint", ["vehicle."]),
        ("ego: {spawn_point: near the park}", "ego.spawn_point", ["index", "pose"]),
        ("route: {waypoints: [{x: 1, y: 2}], destination: {x: 3, y: 4}}", "route", ["not both"]),
        ("route: {autopilot: false, destination: {x: 3, y: 4}}", "route", ["autopilot: true"]),
        ("fixed_delta_s: 0.5", "fixed_delta_s", ["0.001..0.1"]),
    ],
)
def test_bad_fields_are_named_with_the_allowed_values(
    tmp_path: Path, bad: str, field: str, names: list[str]
) -> None:
    path = write(tmp_path, f"name: broken\n{bad}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert str(path) in message
    problem_lines = message.splitlines()[1:]
    assert len(problem_lines) == 1, message  # one problem, one line: no union noise
    assert problem_lines[0].strip().startswith(f"{field}:"), message
    for name in names:
        assert name in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "weather: Sunny\ncameras: {width: 8, fov: 200}\n"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    message = str(caught.value)
    assert "4 problem(s)" in message
    for field in ("name:", "weather:", "cameras.width:", "cameras.fov:"):
        assert f"  {field}" in message


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ScenarioError, match="a scenario is a mapping"):
        load_scenario(write(tmp_path, "- just\n- a list\n"))


def test_schema_choices_match_the_sources() -> None:
    mount_choices = Cameras.model_fields["mount"].annotation.__args__
    assert set(mount_choices) == set(CAMERA_MOUNTS)
    assert parse_scenario({"name": "n"}).weather == "ClearNoon"


def test_camera_mounts_match_the_builtin_world() -> None:
    from carla_neural.sources.world.camera import MOUNTS

    assert list(CAMERA_MOUNTS) == list(MOUNTS)
    for name, mount in MOUNTS.items():
        carla_mount = CAMERA_MOUNTS[name]
        assert (carla_mount.x, -carla_mount.y, carla_mount.z, carla_mount.pitch) == pytest.approx(
            (mount.forward, mount.left, mount.up, mount.pitch_deg))


def test_builtin_world_overrides_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, "name: n\nbuiltin: {layout: highway, lanes: 3}\n"))
    assert "builtin: unknown built-in world field(s) lanes; allowed: layout" in str(caught.value)
