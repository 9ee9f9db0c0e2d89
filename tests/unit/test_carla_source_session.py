"""CarlaSource's whole session against a recording stand-in for the `carla` module.

This checks our side of the conversation (what we ask of the server, in which order, and how we
turn sensor callbacks into Frames); it cannot check the server's side. That needs a real server:
tests/integration/test_carla_server.py.
"""

from __future__ import annotations

import itertools
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from carla_neural.sources import carla_source
from carla_neural.sources.assembler import SensorTimeout
from carla_neural.sources.base import VehicleControl
from carla_neural.sources.carla_source import CameraRig, CarlaConfig, CarlaSource


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, *entry: Any) -> None:
        self.calls.append(entry)

    def names(self) -> list[str]:
        return [entry[0] for entry in self.calls]


def make_carla(log: Recorder, drop_sensor: str | None = None, out_of_order: bool = True) -> SimpleNamespace:
    """A stand-in `carla` module whose world ticks deliver sensor images from other threads."""
    ids = itertools.count(100)

    class Location(SimpleNamespace):
        def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
            super().__init__(x=x, y=y, z=z)

        def distance(self, other: "Location") -> float:
            return float(np.hypot(self.x - other.x, self.y - other.y))

    def Rotation(pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> SimpleNamespace:
        return SimpleNamespace(pitch=pitch, yaw=yaw, roll=roll)

    def Transform(location: Any = None, rotation: Any = None) -> SimpleNamespace:
        return SimpleNamespace(location=location or Location(), rotation=rotation or Rotation())

    class Blueprint:
        def __init__(self, blueprint_id: str) -> None:
            self.id = blueprint_id
            self.attributes: dict[str, str] = {"number_of_wheels": "4", "role_name": ""}

        def has_attribute(self, name: str) -> bool:
            return name in self.attributes

        def set_attribute(self, name: str, value: str) -> None:
            self.attributes[name] = value

        def get_attribute(self, name: str) -> str:
            return self.attributes[name]

    class Library:
        def filter(self, pattern: str) -> list[Blueprint]:
            prefix = pattern.rstrip("*")
            return [Blueprint(pattern if not pattern.endswith("*") else prefix + "x")]

        def find(self, blueprint_id: str) -> Blueprint:
            return Blueprint(blueprint_id)

    class Actor:
        def __init__(self, type_id: str, attributes: dict, parent: Any = None) -> None:
            self.id = next(ids)
            self.type_id = type_id
            self.attributes = dict(attributes)
            self.callback = None

        def listen(self, callback: Any) -> None:
            log("listen", self.type_id)
            self.callback = callback

        def stop(self) -> None:
            log("stop", self.type_id)
            self.callback = None

        def get_transform(self) -> Any:
            return Transform(Location(10.0, 5.0, 0.0), Rotation(yaw=90.0))

        def get_velocity(self) -> Any:
            return SimpleNamespace(x=3.0, y=4.0, z=0.0)

        def get_control(self) -> Any:
            return SimpleNamespace(throttle=0.5, steer=0.1, brake=0.0, hand_brake=False, reverse=False)

        def apply_control(self, control: Any) -> None:
            log("apply_control", control.throttle, control.steer)

        def set_autopilot(self, enabled: bool, port: int) -> None:
            log("set_autopilot", enabled, port)

    class Map:
        def __init__(self, name: str) -> None:
            self.name = name

        def get_spawn_points(self) -> list:
            return [Transform(Location(float(i) * 10, 0.0, 0.5)) for i in range(5)]

    class World:
        def __init__(self) -> None:
            self.settings = SimpleNamespace(synchronous_mode=False, fixed_delta_seconds=None,
                                            no_rendering_mode=False)
            self.frame = 1000
            self.sensors: list[Actor] = []
            self.map_name = "Carla/Maps/Town10HD_Opt"

        def get_settings(self) -> SimpleNamespace:
            return SimpleNamespace(**vars(self.settings))

        def apply_settings(self, settings: Any) -> None:
            log("apply_settings", settings.synchronous_mode, settings.fixed_delta_seconds)
            self.settings = settings

        def get_map(self) -> Map:
            return Map(self.map_name)

        def get_blueprint_library(self) -> Library:
            return Library()

        def try_spawn_actor(self, blueprint: Blueprint, transform: Any) -> Actor:
            log("spawn", blueprint.id)
            return Actor(blueprint.id, blueprint.attributes)

        def spawn_actor(self, blueprint: Blueprint, transform: Any, attach_to: Any = None) -> Actor:
            log("spawn", blueprint.id, blueprint.attributes["image_size_x"], transform.location.z)
            actor = Actor(blueprint.id, blueprint.attributes, attach_to)
            self.sensors.append(actor)
            return actor

        def set_pedestrians_seed(self, seed: int) -> None:
            log("set_pedestrians_seed", seed)

        def set_weather(self, weather: Any) -> None:
            log("set_weather", weather)

        def get_random_location_from_navigation(self) -> Location:
            return Location(1.0, 2.0, 0.0)

        def get_actors(self, actor_ids: list[int]) -> list:
            controllers = []
            for actor_id in actor_ids:
                controller = SimpleNamespace(
                    id=actor_id, type_id="controller.ai.walker",
                    start=lambda: log("walker.start"), stop=lambda: log("walker.stop"),
                    go_to_location=lambda location: log("walker.go_to"),
                    set_max_speed=lambda speed: log("walker.speed"))
                controllers.append(controller)
            return controllers

        def tick(self, timeout_s: float) -> int:
            self.frame += 1
            frame = self.frame
            live = [s for s in self.sensors if s.callback is not None and
                    not s.type_id.endswith(drop_sensor or "-")]
            order = list(reversed(live)) if out_of_order else live

            callbacks = [(sensor, sensor.callback) for sensor in order]

            def deliver() -> None:
                for sensor, callback in callbacks:
                    width = int(sensor.attributes["image_size_x"])
                    height = int(sensor.attributes["image_size_y"])
                    channels, dtype = (2, np.float32) if "optical_flow" in sensor.type_id else (4, np.uint8)
                    pixels = np.full((height, width, channels), frame % 7, dtype)
                    image = SimpleNamespace(frame=frame, timestamp=frame * 0.05, width=width, height=height,
                                            raw_data=memoryview(pixels).cast("B"), pixels=pixels)
                    callback(image)

            threading.Thread(target=deliver).start()
            return frame

    world = World()

    class TrafficManager:
        def set_synchronous_mode(self, enabled: bool) -> None:
            log("tm.set_synchronous_mode", enabled)

        def set_random_device_seed(self, seed: int) -> None:
            log("tm.set_random_device_seed", seed)

        def set_path(self, actor: Any, path: list) -> None:
            log("tm.set_path", [(p.x, p.y) for p in path])

    class Client:
        def __init__(self, host: str, port: int, worker_threads: int = 0) -> None:
            log("Client", host, port)

        def set_timeout(self, seconds: float) -> None:
            log("set_timeout", seconds)

        def get_server_version(self) -> str:
            return "0.9.16"

        def get_client_version(self) -> str:
            return "0.9.16"

        def get_world(self) -> World:
            return world

        def get_available_maps(self) -> list[str]:
            return ["/Game/Carla/Maps/Town03", "/Game/Carla/Maps/Town10HD_Opt"]

        def load_world(self, map_name: str) -> World:
            log("load_world", map_name)
            world.map_name = f"Carla/Maps/{map_name}"
            return world

        def get_trafficmanager(self, port: int) -> TrafficManager:
            return TrafficManager()

        def apply_batch_sync(self, commands: list, do_tick: bool = False) -> list:
            log("apply_batch_sync", [c.kind for c in commands], do_tick)
            return [SimpleNamespace(error="", actor_id=next(ids)) for _ in commands]

    def command_factory(kind: str) -> Any:
        def make(*args: Any) -> SimpleNamespace:
            return SimpleNamespace(kind=kind, args=args, then=lambda other: SimpleNamespace(kind=kind + "+" + other.kind))
        return make

    presets = {name: f"preset:{name}" for name in carla_source.CARLA_WEATHER_PRESETS}
    return SimpleNamespace(
        Client=Client, Transform=Transform, Location=Location, Rotation=Rotation,
        VehicleControl=lambda **kw: SimpleNamespace(**kw),
        WeatherParameters=SimpleNamespace(**presets),
        command=SimpleNamespace(DestroyActor=command_factory("destroy"), SpawnActor=command_factory("spawn"),
                                SetAutopilot=command_factory("autopilot"), FutureActor=object()),
        world=world,
    )


@pytest.fixture()
def log() -> Recorder:
    return Recorder()


@pytest.fixture(autouse=True)
def no_port_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in server has no port: connect()'s TCP probe would find nothing there."""
    from carla_neural.sources import carla_session

    monkeypatch.setattr(carla_session, "probe_port", lambda host, port, timeout_s=1.0: None)


def open_source(monkeypatch: pytest.MonkeyPatch, fake: Any, **config: Any) -> CarlaSource:
    monkeypatch.setattr(carla_source, "import_carla", lambda: fake)
    defaults = {"camera": CameraRig(width=8, height=4), "sensor_timeout_s": 0.3, "vehicles": 2}
    return CarlaSource(CarlaConfig(**{**defaults, **config}))


def test_a_session_sets_up_ticks_and_restores_in_order(monkeypatch: pytest.MonkeyPatch, log: Recorder) -> None:
    fake = make_carla(log)
    source = open_source(monkeypatch, fake, weather="WetSunset", route=[(1.0, 2.0, 0.0)])
    setup = log.names()
    assert setup.index("apply_settings") < setup.index("tm.set_synchronous_mode") < setup.index("spawn")
    assert log.calls[setup.index("apply_settings")] == ("apply_settings", True, 0.05)
    assert ("set_weather", "preset:WetSunset") in log.calls
    assert setup.count("listen") == 5
    assert ("apply_batch_sync", ["spawn+autopilot", "spawn+autopilot"], True) in log.calls
    assert ("tm.set_path", [(1.0, 2.0)]) in log.calls

    frames = [source.tick() for _ in range(3)]
    assert [f.frame_id for f in frames] == [1002, 1003, 1004]  # one setup tick before
    frame = frames[-1]
    assert frame.semantic_bgra.shape == (4, 8, 4) and frame.semantic_bgra.dtype == np.uint8
    assert frame.flow.shape == (4, 8, 2) and frame.flow.dtype == np.float32
    assert int(frame.semantic_bgra[0, 0, 2]) == 1004 % 7  # this tick's image, not another's
    assert frame.sim_time == pytest.approx(1004 * 0.05)
    assert frame.ego.speed_mps == pytest.approx(5.0) and frame.ego.yaw_deg == 90.0
    assert frame.ego.autopilot is True

    source.apply_control(VehicleControl(throttle=0.7, steer=-0.2))
    assert log.calls[-2:] == [("set_autopilot", False, 8000), ("apply_control", 0.7, -0.2)]

    source.set_mount("chase")
    assert source.mount == "chase" and source.tick().frame_id == 1005

    log.calls.clear()
    source.close()
    names = log.names()
    assert names == ["set_timeout"] + ["stop"] * 5 + ["tm.set_synchronous_mode", "apply_settings",
                                                       "apply_batch_sync"]
    assert log.calls[-3] == ("tm.set_synchronous_mode", False)
    assert log.calls[-2] == ("apply_settings", False, None)
    destroyed = log.calls[-1][1]
    assert destroyed[:5] == ["destroy"] * 5 and len(destroyed) == 8  # 5 cameras, ego, 2 cars
    source.close()
    assert len(log.calls) == 9  # nothing twice


def test_a_silent_sensor_is_named_and_the_server_still_restored(monkeypatch: pytest.MonkeyPatch,
                                                                log: Recorder) -> None:
    fake = make_carla(log, drop_sensor="optical_flow")
    with pytest.raises(SensorTimeout, match="flow"):
        with open_source(monkeypatch, fake) as source:
            source.tick()
    assert log.calls[-2] == ("apply_settings", False, None)
    assert log.names()[-1] == "apply_batch_sync"


def test_a_failed_setup_undoes_what_was_done(monkeypatch: pytest.MonkeyPatch, log: Recorder) -> None:
    fake = make_carla(log)
    with pytest.raises(ValueError, match="spawn point 9 does not exist on this map: choose 0..4"):
        open_source(monkeypatch, fake, spawn_point=9)
    names = log.names()
    assert "spawn" not in names
    assert names[-3:] == ["set_timeout", "tm.set_synchronous_mode", "apply_settings"]
    assert log.calls[-1] == ("apply_settings", False, None)


def test_unknown_weather_preset_lists_the_choices(monkeypatch: pytest.MonkeyPatch, log: Recorder) -> None:
    with open_source(monkeypatch, make_carla(log), vehicles=0) as source:
        with pytest.raises(ValueError, match="unknown weather preset 'Sunny'.*ClearNoon"):
            source.set_weather("Sunny")


def test_a_scenario_opens_on_carla_with_its_settings(monkeypatch: pytest.MonkeyPatch, log: Recorder) -> None:
    from carla_neural.sources import carla_session
    from scenarios.runner import check_carla, open_source as open_scenario_source, read_scenario

    fake = make_carla(log)
    monkeypatch.setattr(carla_source, "import_carla", lambda: fake)
    monkeypatch.setattr(carla_session, "import_carla", lambda: fake)
    with pytest.raises(ValueError, match="map 'Town99' is not on this server; available: Town03, Town10HD_Opt"):
        carla_session.load_map(fake.Client("h", 1), "Town99", 3.0)
    log.calls.clear()
    assert check_carla("10.1.2.3", 2100, 3.0) == "0.9.16"
    assert log.calls[:2] == [("Client", "10.1.2.3", 2100), ("set_timeout", 3.0)]
    scenario = read_scenario("rain_night")
    with open_scenario_source(scenario, "carla", "10.1.2.3", 2100, 3.0) as (source, text):
        assert text == "carla 10.1.2.3:2100 (client 0.9.16, server 0.9.16, map Town03)"
        assert source.config.map_name == "Town03" and source.config.walkers == 10
        frame = source.tick()
        assert frame.semantic_bgra.shape == (256, 512, 4)
    assert ("set_weather", "preset:HardRainNight") in log.calls
    names = log.names()
    assert names.count("walker.start") == 10 and names.count("walker.stop") == 10
    last_tm_call = len(names) - 1 - names[::-1].index("tm.set_synchronous_mode")
    assert max(i for i, name in enumerate(names) if name == "walker.stop") < last_tm_call
    assert names.index("load_world") < names.index("apply_settings")  # settings saved after the load
    assert ("load_world", "Town03") in log.calls
    assert log.calls[-2] == ("apply_settings", False, None)


def test_a_server_that_stops_answering_is_reported(monkeypatch: pytest.MonkeyPatch, log: Recorder) -> None:
    from carla_neural.sources.carla_session import CarlaConnectionError

    fake = make_carla(log)
    with open_source(monkeypatch, fake, vehicles=0) as source:
        def hung(timeout_s: float) -> int:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator")

        monkeypatch.setattr(fake.world, "tick", hung)
        with pytest.raises(CarlaConnectionError, match="stopped answering.*still running"):
            source.tick()
    assert log.calls[-2] == ("apply_settings", False, None)


def test_settings_that_fail_after_the_switch_are_still_restored(monkeypatch: pytest.MonkeyPatch,
                                                                log: Recorder) -> None:
    # World.apply_settings ticks until fixed_delta_seconds is in effect, and can time out after
    # the server is already synchronous.
    fake = make_carla(log)
    apply = fake.world.apply_settings

    def switch_then_time_out(settings: Any) -> None:
        apply(settings)
        if settings.synchronous_mode:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator")

    monkeypatch.setattr(fake.world, "apply_settings", switch_then_time_out)
    with pytest.raises(RuntimeError, match="time-out"):
        open_source(monkeypatch, fake)
    assert "spawn" not in log.names()
    assert log.calls[-1] == ("apply_settings", False, None)
    assert fake.world.settings.synchronous_mode is False


def test_a_setup_tick_that_times_out_is_a_connection_error(monkeypatch: pytest.MonkeyPatch,
                                                           log: Recorder) -> None:
    from carla_neural.sources.carla_session import CarlaConnectionError

    fake = make_carla(log)

    def hung(timeout_s: float) -> int:
        raise RuntimeError("time-out of 10000ms while waiting for the simulator")

    monkeypatch.setattr(fake.world, "tick", hung)
    with pytest.raises(CarlaConnectionError, match="stopped answering"):
        open_source(monkeypatch, fake)
    assert ("apply_settings", False, None) in log.calls[-3:]


def test_walkers_without_a_navigation_destination_stand(monkeypatch: pytest.MonkeyPatch, log: Recorder,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Spawn locations come first (two walkers), then the maps without a navigation mesh give None.
    fake = make_carla(log)
    answers = iter([fake.Location(1.0, 2.0, 0.0), fake.Location(3.0, 2.0, 0.0)])
    monkeypatch.setattr(fake.world, "get_random_location_from_navigation", lambda: next(answers, None))
    with open_source(monkeypatch, fake, vehicles=0, walkers=2) as source:
        assert source.tick().frame_id > 0
    names = log.names()
    assert names.count("walker.start") == 2 and "walker.go_to" not in names
    assert "2 of 2 walkers stand still" in caplog.text


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_carla_cannot_take_changes_nothing(monkeypatch: pytest.MonkeyPatch, log: Recorder, seed: int) -> None:
    with pytest.raises(ValueError, match=r"seed .* unsigned 32-bit \(0\.\.4294967295\)"):
        open_source(monkeypatch, make_carla(log), seed=seed)
    assert log.calls == []  # not even connected


def test_dataset_export_tells_a_refused_setup_from_a_missing_server(monkeypatch: pytest.MonkeyPatch,
                                                                     log: Recorder, tmp_path) -> None:
    from carla_neural.dataset_export import ExportConfig, ExportError, export_dataset

    fake = make_carla(log)
    monkeypatch.setattr(carla_source, "import_carla", lambda: fake)
    monkeypatch.setattr(fake.world, "get_blueprint_library",
                        lambda: SimpleNamespace(filter=lambda pattern: [], find=lambda name: None))
    with pytest.raises(ExportError) as error:
        export_dataset(ExportConfig(out=str(tmp_path / "out"), world="carla", sequences=1, frames=1))
    message = str(error.value)
    assert "answered but could not set up sequence 0" in message and "no vehicle blueprint matches" in message
    assert "cannot reach" not in message
    assert log.calls[-1] == ("apply_settings", False, None)
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        ExportConfig(out=str(tmp_path / "out"), world="carla", seed=2**32 - 1, sequences=2).validate()


def test_a_closed_port_is_reported_at_once_with_the_builtin_world(monkeypatch: pytest.MonkeyPatch,
                                                                  log: Recorder) -> None:
    import socket

    from carla_neural.sources import carla_session
    from carla_neural.sources.carla_session import CarlaConnectionError

    monkeypatch.undo()  # the real probe
    with socket.socket() as placeholder:  # a loopback port that was free a moment ago, now closed
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(CarlaConnectionError, match=rf"no CARLA server at 127.0.0.1:{port} \(connection refused\)\. "
                                                   "`--world builtin` runs without a server"):
        carla_session.connect(make_carla(log), "127.0.0.1", port, 10.0)
    assert log.calls == []  # no client was made, so nothing waited for its 10 s timeout
