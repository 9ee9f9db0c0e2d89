"""Gather one tick's sensor measurements, keyed by frame id, from per-sensor callbacks.

CARLA delivers each sensor's data on its own thread, in any order, sometimes late and
sometimes not at all. The assembler keeps a small pending map per sensor and hands back a
complete set for one frame id, or raises `SensorTimeout` naming the sensors that stayed silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Measurement = TypeVar("Measurement")


class SensorTimeout(TimeoutError):
    """Some sensors sent nothing for a frame within the timeout."""

    def __init__(self, frame_id: int, missing: list[str], received: list[str], timeout_s: float):
        self.frame_id = frame_id
        self.missing = missing
        self.received = received
        self.timeout_s = timeout_s
        got = ", ".join(received) if received else "nothing"
        super().__init__(
            f"no data from sensor(s) {', '.join(missing)} for frame {frame_id} within "
            f"{timeout_s:g} s (received: {got}); is the simulator ticking and are the "
            "sensors listening?"
        )


class FrameAssembler(Generic[Measurement]):
    """Per-sensor pending maps `frame_id -> measurement`; thread-safe `put`, blocking `collect`.

    Data for frames older than the last collected one is late and dropped; data for newer
    frames is kept until asked for (out-of-order delivery). Each sensor keeps at most
    `max_pending` frames, dropping its oldest, so a stalled consumer cannot grow memory.
    """

    def __init__(self, sensor_names: Iterable[str], max_pending: int = 32) -> None:
        self.sensor_names: tuple[str, ...] = tuple(sensor_names)
        if not self.sensor_names:
            raise ValueError("FrameAssembler needs at least one sensor name")
        if len(set(self.sensor_names)) != len(self.sensor_names):
            raise ValueError(f"duplicate sensor names: {self.sensor_names}")
        self.max_pending = max_pending
        self._pending: dict[str, dict[int, Measurement]] = {n: {} for n in self.sensor_names}
        self._changed = threading.Condition()
        self._last_collected = -1
        self.dropped_late = 0
        self.dropped_overflow = 0

    def put(self, sensor_name: str, frame_id: int, measurement: Measurement) -> None:
        """Store one sensor's measurement for `frame_id` (called from sensor threads)."""
        with self._changed:
            pending = self._pending.get(sensor_name)
            if pending is None:
                raise KeyError(f"unknown sensor {sensor_name!r}; known: {self.sensor_names}")
            if frame_id <= self._last_collected:
                self.dropped_late += 1
                log.debug("dropped late data from %s for frame %d", sensor_name, frame_id)
                return
            pending[frame_id] = measurement
            while len(pending) > self.max_pending:
                del pending[min(pending)]
                self.dropped_overflow += 1
            self._changed.notify_all()

    def collect(self, frame_id: int, timeout_s: float) -> dict[str, Measurement]:
        """Wait until every sensor has data for `frame_id`; return `{sensor_name: measurement}`.

        Older pending data is discarded. Raises `SensorTimeout` after `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                missing = [n for n in self.sensor_names if frame_id not in self._pending[n]]
                if not missing:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    received = [n for n in self.sensor_names if n not in missing]
                    self._forget_up_to(frame_id)
                    raise SensorTimeout(frame_id, missing, received, timeout_s)
                self._changed.wait(remaining)
            measurements = {n: self._pending[n].pop(frame_id) for n in self.sensor_names}
            self._forget_up_to(frame_id)
            return measurements

    def clear(self) -> None:
        """Drop everything pending and accept any frame id again (after a sensor respawn)."""
        with self._changed:
            for pending in self._pending.values():
                pending.clear()
            self._last_collected = -1

    def pending_frames(self, sensor_name: str) -> list[int]:
        """Frame ids currently held for one sensor, ascending."""
        with self._changed:
            return sorted(self._pending[sensor_name])

    def _forget_up_to(self, frame_id: int) -> None:
        self._last_collected = max(self._last_collected, frame_id)
        for pending in self._pending.values():
            for stale in [f for f in pending if f <= frame_id]:
                del pending[stale]


def benchmark(width: int = 1024, height: int = 512, frames: int = 200) -> dict[str, float]:
    """Cost per frame of joining five camera streams and viewing them as arrays (no simulator).

    Five threads deliver CARLA-sized buffers as CARLA's sensor threads would; the main thread
    collects each frame and makes the Frame arrays. Returns milliseconds per frame.
    """
    import queue as queue_module
    from types import SimpleNamespace

    import numpy as np

    from carla_neural.sources.carla_images import flow_image_to_array, image_to_bgra

    names = ("semantic", "instance", "rgb", "depth", "flow")
    assembler: FrameAssembler[Any] = FrameAssembler(names)
    buffers = {name: np.zeros((height, width, 2 if name == "flow" else 4),
                              np.float32 if name == "flow" else np.uint8) for name in names}
    tick_queues = {name: queue_module.Queue() for name in names}

    def sensor_thread(name: str) -> None:
        while (frame_id := tick_queues[name].get()) is not None:
            pixels = buffers[name]
            assembler.put(name, frame_id, SimpleNamespace(
                frame=frame_id, width=width, height=height, raw_data=memoryview(pixels).cast("B")))

    threads = [threading.Thread(target=sensor_thread, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    collect_s = 0.0
    started = time.perf_counter()
    for frame_id in range(frames):
        for name in names:
            tick_queues[name].put(frame_id)
        before = time.perf_counter()
        measurements = assembler.collect(frame_id, timeout_s=5.0)
        for name, measurement in measurements.items():
            (flow_image_to_array if name == "flow" else image_to_bgra)(measurement)
        collect_s += time.perf_counter() - before
    total_s = time.perf_counter() - started
    for name in names:
        tick_queues[name].put(None)
    return {"width": width, "height": height, "frames": frames,
            "frame_ms": 1000.0 * total_s / frames, "collect_and_view_ms": 1000.0 * collect_s / frames}


if __name__ == "__main__":
    import json

    print(json.dumps(benchmark(), indent=2))
