"""A scenario mapped onto the built-in world and onto drive's options."""

from __future__ import annotations

import logging

import pytest

from carla_neural.sources.world import WEATHER_PRESETS
from scenarios.mapping import nearest_builtin_weather, world_config
from scenarios.runner import builtin_scenarios, drive_scenario, read_scenario
from scenarios.schema import ScenarioError, WeatherParameters, parse_scenario


# What each shipped scenario's weather (a CARLA preset) is in the built-in world.
WEATHER_OF = {"urban_day": "ClearNoon", "rain_night": "HardRainNight", "highway": "CloudyNoon",
              "dense_traffic": "CloudyNoon"}


def test_every_builtin_scenario_has_a_builtin_world_counterpart() -> None:
    layouts = {}
    assert set(builtin_scenarios()) == set(WEATHER_OF)
    for name in builtin_scenarios():
        scenario = read_scenario(name)
        config = world_config(scenario)
        layouts[name] = config.layout
        assert (config.width, config.height, config.fov_deg) == (
            scenario.cameras.width, scenario.cameras.height, scenario.cameras.fov)
        assert config.weather == WEATHER_OF[name]
        assert config.seed == scenario.traffic.seed
        assert config.walkers == scenario.traffic.walkers
    assert layouts["highway"] == "highway" and layouts["urban_day"] == "urban"
    assert world_config(read_scenario("rain_night")).weather == "HardRainNight"
    assert world_config(read_scenario("dense_traffic")).vehicles == 100


@pytest.mark.parametrize(
    ("parameters", "preset"),
    [
        ({"sun_altitude_angle": 60}, "ClearNoon"),
        ({"sun_altitude_angle": 60, "cloudiness": 90}, "CloudyNoon"),
        ({"sun_altitude_angle": 5, "precipitation": 50}, "MidRainSunset"),
        ({"sun_altitude_angle": -30, "precipitation": 90}, "HardRainNight"),
        ({"sun_altitude_angle": -30, "precipitation": 10}, "SoftRainNight"),
        ({"sun_altitude_angle": 30, "wetness": 80, "cloudiness": 70}, "WetCloudyNoon"),
    ],
)
def test_custom_weather_maps_to_a_world_preset(parameters: dict, preset: str) -> None:
    assert nearest_builtin_weather(WeatherParameters(**parameters)) == preset
    assert preset in WEATHER_PRESETS


def test_every_carla_preset_has_a_world_preset() -> None:
    from carla_neural.sources.carla_source import CARLA_WEATHER_PRESETS

    for name in CARLA_WEATHER_PRESETS:
        assert nearest_builtin_weather(name) in WEATHER_PRESETS


def test_builtin_overrides_and_missing_counterpart() -> None:
    scenario = parse_scenario({"name": "n", "traffic": {"vehicles": 450}, "builtin": {"blocks": 2}})
    config = world_config(scenario)
    assert config.blocks == 2 and config.vehicles == 300  # the world's cap
    with pytest.raises(ScenarioError, match="no built-in world counterpart"):
        world_config(parse_scenario({"name": "n", "builtin": None}))
    with pytest.raises(ScenarioError, match="blocks=99"):
        world_config(parse_scenario({"name": "n", "builtin": {"blocks": 99}}))


def test_route_coordinates_are_ignored_on_the_builtin_world_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    scenario = parse_scenario({"name": "n", "route": {"destination": {"x": 1, "y": 2}}})
    with caplog.at_level(logging.WARNING):
        assert world_config(scenario).autopilot is True
    assert "waypoints/destination are ignored" in caplog.text


def test_drive_options_override_a_scenario() -> None:
    scenario = drive_scenario("rain_night", size=(320, 160), fov=100, vehicles=3, autopilot=False)
    assert scenario.weather == "HardRainNight" and scenario.map == "Town03"
    assert (scenario.cameras.width, scenario.cameras.height, scenario.cameras.fov) == (320, 160, 100)
    assert scenario.traffic.vehicles == 3 and scenario.traffic.walkers == 10
    assert scenario.route.autopilot is False
    plain = drive_scenario(None, map_name="Town05", autopilot=True)
    assert plain.map == "Town05" and plain.route.autopilot is True
    with pytest.raises(ScenarioError, match="cameras.width"):
        drive_scenario(None, size=(8, 8))


def test_the_label_transform_follows_the_scenario_and_the_command_line_wins(tmp_path) -> None:
    import json

    from carla_neural.label_transform import CALIBRATED_CONFIG, TransformConfigError
    from carla_neural.runs import BackendSpec
    from scenarios.runner import record_spec, scenario_adapt

    config = tmp_path / "median.json"
    config.write_text(json.dumps({"median_kernel": 5}))
    plain = parse_scenario({"name": "plain"}, origin="test")
    adapted = parse_scenario({"name": "adapted", "rendering": {"adapt_labels": True}}, origin="test")
    own_file = parse_scenario({"name": "own", "rendering": {"adapt_labels": True, "transform_config": str(config)}},
                              origin="test")
    assert scenario_adapt(plain) is None  # off by default
    spec = record_spec(adapted, BackendSpec(), tmp_path / "run", world="builtin", frames=1).adapt
    assert spec.enabled and spec.config_file == CALIBRATED_CONFIG and spec.config.median_kernel == 3
    assert scenario_adapt(own_file).config.median_kernel == 5
    assert scenario_adapt(adapted, adapt_labels=False) is None  # --no-adapt-labels
    assert scenario_adapt(plain, transform_config=config).enabled  # a file alone turns it on
    assert scenario_adapt(plain, adapt_labels=False, transform_config=config) is None
    # A scenario's file without adapt_labels only says which config to use when it is switched on.
    file_only = parse_scenario({"name": "f", "rendering": {"transform_config": str(config)}}, origin="test")
    assert scenario_adapt(file_only) is None
    kept = scenario_adapt(file_only, keep_off=True)  # drive: configured, off, T switches it on
    assert not kept.enabled and kept.config.median_kernel == 5
    with pytest.raises(TransformConfigError, match="missing.json does not exist"):
        scenario_adapt(plain, transform_config=tmp_path / "missing.json")


def test_the_default_model_of_each_world_and_its_label_transform() -> None:
    from carla_neural.runs import BackendSpec, default_checkpoint
    from scenarios.runner import record_spec, scenario_adapt

    # The built-in world renders with the model adapted to its maps, fed the maps it was adapted
    # on (through the transform); CARLA with the street model, maps as they come.
    assert default_checkpoint("builtin") == "bundled-adapted" and default_checkpoint("carla") == "bundled"
    plain = parse_scenario({"name": "plain"}, origin="test")
    assert plain.rendering.checkpoint is None and plain.rendering.adapt_labels is None
    assert all(read_scenario(name).rendering.checkpoint is None for name in builtin_scenarios())
    assert scenario_adapt(plain, checkpoint="bundled-adapted").enabled
    assert scenario_adapt(plain, checkpoint="bundled") is None
    assert scenario_adapt(plain, adapt_labels=False, checkpoint="bundled-adapted") is None  # --no-adapt-labels
    declined = parse_scenario({"name": "d", "rendering": {"adapt_labels": False}}, origin="test")
    assert scenario_adapt(declined, checkpoint="bundled-adapted") is None  # the scenario says off
    spec = record_spec(plain, BackendSpec(checkpoint="bundled-adapted"), "run", world="builtin", frames=1)
    assert spec.adapt is not None and spec.adapt.enabled
