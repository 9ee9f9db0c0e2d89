"""Cleanup of a CARLA session: the undo logic, tested with the order of the calls it makes.

The server-touching path (a real CarlaSource against a running server) is in
tests/integration/test_carla_server.py and needs a CARLA server.
"""

from __future__ import annotations

import logging
import os
import signal
from types import SimpleNamespace

import pytest

from carla_neural.sources.carla_session import SpawnedActors, check_versions, enter_synchronous_mode
from carla_neural.sources.teardown import Teardown


def test_steps_run_newest_first_and_only_once() -> None:
    calls: list[str] = []
    teardown = Teardown()
    teardown.add("first", calls.append, "first")
    teardown.add("second", calls.append, "second")
    teardown.add("third", calls.append, "third")
    assert teardown.run() == []
    assert calls == ["third", "second", "first"]
    teardown.run()
    assert calls == ["third", "second", "first"]


def test_a_failing_step_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("time-out of 5000ms while waiting for the simulator")

    teardown = Teardown()
    teardown.add("restore settings", calls.append, "restore settings")
    teardown.add("put the TM back", broken)
    teardown.add("stop sensors", calls.append, "stop sensors")
    with caplog.at_level(logging.ERROR):
        failures = teardown.run()
    assert calls == ["stop sensors", "broken", "restore settings"]
    assert [f.step for f in failures] == ["put the TM back"]
    assert "could not put the TM back: time-out" in caplog.text


def test_ctrl_c_during_cleanup_finishes_cleanup_then_interrupts() -> None:
    calls: list[str] = []

    def interrupted_step() -> None:
        calls.append("signal")
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C arriving mid-cleanup
        calls.append("after signal")

    teardown = Teardown()
    teardown.add("destroy actors", calls.append, "destroy actors")
    teardown.add("restore settings", calls.append, "restore settings")
    teardown.add("interrupted", interrupted_step)
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        teardown.run()
    assert calls == ["signal", "after signal", "restore settings", "destroy actors"]
    assert signal.getsignal(signal.SIGINT) is previous


def test_keyboard_interrupt_raised_inside_a_step_still_runs_the_rest() -> None:
    calls: list[str] = []

    def raises_interrupt() -> None:
        raise KeyboardInterrupt

    teardown = Teardown()
    teardown.add("destroy actors", calls.append, "destroy actors")
    teardown.add("interrupted", raises_interrupt)
    with pytest.raises(KeyboardInterrupt):
        teardown.run()
    assert calls == ["destroy actors"]


class RecordingWorld:
    """Records the settings calls a CARLA world receives."""

    def __init__(self, calls: list[tuple]) -> None:
        self.calls = calls
        self.settings = SimpleNamespace(synchronous_mode=False, fixed_delta_seconds=None,
                                        no_rendering_mode=True)

    def get_settings(self) -> SimpleNamespace:
        return SimpleNamespace(**vars(self.settings))

    def apply_settings(self, settings: SimpleNamespace) -> int:
        self.calls.append(("world.apply_settings", settings.synchronous_mode,
                           settings.fixed_delta_seconds, settings.no_rendering_mode))
        self.settings = settings
        return 0


class RecordingTrafficManager:
    def __init__(self, calls: list[tuple]) -> None:
        self.calls = calls

    def set_synchronous_mode(self, enabled: bool) -> None:
        self.calls.append(("tm.set_synchronous_mode", enabled))

    def set_random_device_seed(self, seed: int) -> None:
        self.calls.append(("tm.set_random_device_seed", seed))


def test_synchronous_mode_is_entered_and_undone_in_order() -> None:
    calls: list[tuple] = []
    world, traffic_manager = RecordingWorld(calls), RecordingTrafficManager(calls)
    teardown = Teardown()
    enter_synchronous_mode(world, traffic_manager, 0.05, seed=7, teardown=teardown)
    assert calls == [
        ("world.apply_settings", True, 0.05, False),
        ("tm.set_synchronous_mode", True),
        ("tm.set_random_device_seed", 7),
    ]
    calls.clear()
    teardown.run()
    # TM first, then the world's own original settings (asynchronous, as found).
    assert calls == [("tm.set_synchronous_mode", False), ("world.apply_settings", False, None, True)]


def test_a_failure_after_sync_mode_still_restores_it() -> None:
    calls: list[tuple] = []
    world, traffic_manager = RecordingWorld(calls), RecordingTrafficManager(calls)
    teardown = Teardown()
    enter_synchronous_mode(world, traffic_manager, 0.1, seed=0, teardown=teardown)
    try:
        raise RuntimeError("spawn failed")
    except RuntimeError:
        teardown.run()
    assert world.settings.synchronous_mode is False
    assert calls[-1] == ("world.apply_settings", False, None, True)


def test_spawned_actors_are_stopped_then_destroyed_in_one_batch() -> None:
    calls: list[tuple] = []

    def actor(actor_id: int, type_id: str) -> SimpleNamespace:
        return SimpleNamespace(id=actor_id, type_id=type_id,
                               stop=lambda: calls.append(("stop", actor_id)))

    class Client:
        def apply_batch_sync(self, commands: list) -> list:
            calls.append(("apply_batch_sync", [c.actor_id for c in commands]))
            return [SimpleNamespace(error="") for _ in commands]

    carla = SimpleNamespace(command=SimpleNamespace(
        DestroyActor=lambda actor_id: SimpleNamespace(actor_id=actor_id)))
    actors = SpawnedActors(Client(), carla)
    actors.add(actor(1, "vehicle.lincoln.mkz_2020"))
    actors.add(actor(2, "sensor.camera.semantic_segmentation"))
    actors.add(actor(3, "walker.pedestrian.0001"))
    actors.add(actor(4, "controller.ai.walker"))
    actors.stop_and_destroy_all()
    assert calls == [("stop", 2), ("stop", 4), ("apply_batch_sync", [2, 4, 1, 3])]
    assert len(actors) == 0
    actors.destroy()  # nothing left: no second batch
    assert len(calls) == 3


def test_batch_spawned_actors_are_destroyed_by_id_before_the_client_sees_them() -> None:
    batches: list[list[int]] = []

    class Client:
        def apply_batch_sync(self, commands: list) -> list:
            batches.append([c.actor_id for c in commands])
            return [SimpleNamespace(error="") for _ in commands]

    carla = SimpleNamespace(command=SimpleNamespace(
        DestroyActor=lambda actor_id: SimpleNamespace(actor_id=actor_id)))
    actors = SpawnedActors(Client(), carla)
    actors.add_id(10, "vehicle")
    actors.add_id(11, "walker.pedestrian")
    actors.add_id(12, "controller.ai.walker")
    stopped: list[int] = []
    actors.attach(SimpleNamespace(id=12, stop=lambda: stopped.append(12)))
    actors.attach(SimpleNamespace(id=99, stop=lambda: stopped.append(99)))  # not ours: ignored
    actors.stop_and_destroy_all()
    assert stopped == [12]
    assert batches == [[12, 10, 11]]


def test_version_mismatch_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert check_versions("0.9.16", "0.9.16-3-gdeadbee") is True
        assert caplog.text == ""
        assert check_versions("0.9.16", "0.9.15") is False
    assert "0.9.16" in caplog.text and "0.9.15" in caplog.text and "pip install carla==0.9.15" in caplog.text
