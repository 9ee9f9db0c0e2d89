"""The frame assembler: per-sensor data joined by frame id, whatever order and timing it arrives in."""

from __future__ import annotations

import threading
import time

import pytest

from carla_neural.sources.assembler import FrameAssembler, SensorTimeout

SENSORS = ("semantic", "instance", "flow")


def test_complete_frame_is_returned_per_sensor() -> None:
    assembler = FrameAssembler(SENSORS)
    for name in SENSORS:
        assembler.put(name, 7, f"{name}@7")
    assert assembler.collect(7, timeout_s=0.5) == {n: f"{n}@7" for n in SENSORS}


def test_out_of_order_delivery_keeps_the_next_frame() -> None:
    assembler = FrameAssembler(SENSORS)
    # Frame 11 data arrives before frame 10 is complete, and interleaved.
    assembler.put("flow", 11, "flow@11")
    assembler.put("semantic", 10, "semantic@10")
    assembler.put("semantic", 11, "semantic@11")
    assembler.put("instance", 11, "instance@11")
    assembler.put("flow", 10, "flow@10")
    assembler.put("instance", 10, "instance@10")
    assert assembler.collect(10, 0.5)["flow"] == "flow@10"
    assert assembler.collect(11, 0.5) == {n: f"{n}@11" for n in SENSORS}


def test_data_arriving_from_other_threads_while_waiting() -> None:
    assembler = FrameAssembler(SENSORS)

    def deliver(name: str, delay_s: float) -> None:
        time.sleep(delay_s)
        assembler.put(name, 3, name)

    threads = [threading.Thread(target=deliver, args=(n, 0.02 * i)) for i, n in enumerate(SENSORS)]
    for thread in threads:
        thread.start()
    got = assembler.collect(3, timeout_s=5.0)
    for thread in threads:
        thread.join()
    assert got == {n: n for n in SENSORS}


def test_missing_sensor_times_out_naming_it() -> None:
    assembler = FrameAssembler(SENSORS)
    assembler.put("semantic", 5, "s")
    assembler.put("instance", 5, "i")
    started = time.monotonic()
    with pytest.raises(SensorTimeout) as caught:
        assembler.collect(5, timeout_s=0.1)
    assert time.monotonic() - started < 2.0
    assert caught.value.missing == ["flow"]
    assert caught.value.received == ["semantic", "instance"]
    assert "flow" in str(caught.value) and "frame 5" in str(caught.value)


def test_late_data_for_a_collected_or_abandoned_frame_is_dropped() -> None:
    assembler = FrameAssembler(SENSORS)
    for name in SENSORS:
        assembler.put(name, 1, name)
    assembler.collect(1, 0.1)
    assembler.put("flow", 1, "late")  # frame 1 already delivered
    assert assembler.pending_frames("flow") == []
    assembler.put("semantic", 2, "s")
    with pytest.raises(SensorTimeout):
        assembler.collect(2, 0.05)
    assembler.put("flow", 2, "late")  # frame 2 was given up on
    assert assembler.pending_frames("flow") == []
    assert assembler.dropped_late == 2


def test_collecting_a_frame_discards_older_pending_data() -> None:
    assembler = FrameAssembler(SENSORS)
    assembler.put("semantic", 4, "old")  # frame 4 never completes
    for name in SENSORS:
        assembler.put(name, 6, name)
    assembler.collect(6, 0.1)
    assert all(assembler.pending_frames(n) == [] for n in SENSORS)


def test_pending_data_is_bounded_per_sensor() -> None:
    assembler = FrameAssembler(SENSORS, max_pending=4)
    for frame_id in range(10):
        assembler.put("semantic", frame_id, frame_id)
    assert assembler.pending_frames("semantic") == [6, 7, 8, 9]
    assert assembler.dropped_overflow == 6


def test_clear_accepts_restarted_frame_ids() -> None:
    assembler = FrameAssembler(("semantic",))
    assembler.put("semantic", 50, "a")
    assembler.collect(50, 0.1)
    assembler.clear()
    assembler.put("semantic", 3, "b")  # e.g. after the world was reloaded
    assert assembler.collect(3, 0.1) == {"semantic": "b"}


def test_unknown_sensor_and_bad_names_are_rejected() -> None:
    assembler = FrameAssembler(SENSORS)
    with pytest.raises(KeyError, match="unknown sensor 'lidar'"):
        assembler.put("lidar", 1, None)
    with pytest.raises(ValueError, match="duplicate"):
        FrameAssembler(("rgb", "rgb"))
    with pytest.raises(ValueError, match="at least one"):
        FrameAssembler(())
