"""CARLA sensor buffers viewed as Frame arrays: shapes, dtypes, no copies, no dangling memory."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from carla_neural.sources.carla_images import flow_image_to_array, image_to_bgra
from carla_neural.sources.carla_source import CARLA_WEATHER_PRESETS, SENSOR_BLUEPRINTS


class FakeMeasurement:
    """Stands in for carla.Image: raw_data is a memoryview that does not own the pixels."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.height, self.width = pixels.shape[:2]
        self.frame, self.timestamp = 12, 0.6
        self._pixels = np.ascontiguousarray(pixels)

    @property
    def raw_data(self) -> memoryview:
        return memoryview(self._pixels).cast("B")


def test_camera_image_becomes_a_bgra_view_without_copy() -> None:
    bgra = np.random.default_rng(0).integers(0, 256, (6, 8, 4), dtype=np.uint8)
    measurement = FakeMeasurement(bgra)
    view = image_to_bgra(measurement)
    assert view.shape == (6, 8, 4) and view.dtype == np.uint8
    assert np.array_equal(view, bgra)
    assert np.shares_memory(view, measurement._pixels)
    assert not view.flags.writeable
    # The semantic tag is read from the red channel (index 2), as remap does.
    assert view[2, 3, 2] == bgra[2, 3, 2]


def test_flow_image_becomes_two_float32_per_pixel() -> None:
    flow = np.random.default_rng(1).uniform(-2, 2, (4, 5, 2)).astype(np.float32)
    view = flow_image_to_array(FakeMeasurement(flow))
    assert view.shape == (4, 5, 2) and view.dtype == np.float32
    assert np.array_equal(view, flow)


def test_view_keeps_the_measurement_alive() -> None:
    measurement = FakeMeasurement(np.zeros((2, 2, 4), np.uint8))
    alive = weakref.ref(measurement)
    view = image_to_bgra(measurement)
    del measurement
    gc.collect()
    assert alive() is not None, "the array would point into freed sensor memory"
    del view
    gc.collect()
    assert alive() is None


def test_wrong_buffer_size_names_the_problem() -> None:
    flow_sized = FakeMeasurement(np.zeros((4, 5, 2), np.float32))
    flow_sized.width = 7
    with pytest.raises(ValueError, match="expected 4x7x4"):
        image_to_bgra(flow_sized)


def test_weather_presets_match_the_carla_client() -> None:
    carla = pytest.importorskip("carla", reason="needs the carla client wheel (carla extra)")
    names = {n for n in dir(carla.WeatherParameters) if n[0].isupper()}
    assert set(CARLA_WEATHER_PRESETS) == names


def test_sensor_blueprints_are_carla_cameras() -> None:
    assert set(SENSOR_BLUEPRINTS) == {"semantic", "instance", "rgb", "flow", "depth"}
    assert all(bp.startswith("sensor.camera.") for bp in SENSOR_BLUEPRINTS.values())


def test_custom_weather_keeps_the_preset_where_the_scenario_is_silent() -> None:
    carla = pytest.importorskip("carla", reason="needs the carla client wheel (carla extra)")
    from carla_neural.sources.carla_source import custom_weather

    weather = custom_weather(carla, {"precipitation": 70.0, "sun_altitude_angle": -20.0})
    assert weather.precipitation == pytest.approx(70.0) and weather.sun_altitude_angle == pytest.approx(-20.0)
    assert weather.scattering_intensity == pytest.approx(carla.WeatherParameters.ClearNoon.scattering_intensity)
    with pytest.raises(ValueError, match="unknown weather fields"):
        custom_weather(carla, {"sunshine": 1.0})


def test_scenario_weather_defaults_are_carlas_clear_noon() -> None:
    carla = pytest.importorskip("carla", reason="needs the carla client wheel (carla extra)")
    from scenarios.schema import WeatherParameters

    for name, value in WeatherParameters().model_dump().items():
        assert getattr(carla.WeatherParameters.ClearNoon, name) == pytest.approx(value), name
