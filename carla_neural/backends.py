"""Render backends: what the pipeline renders with, in this process or behind a worker.

`ClientBackend` wraps a render client (carla_neural.render_client; the worker process queues the
frames in flight), `InProcessBackend` a `SequentialRenderer` (benchmarks, no worker; frames in
flight queue for a render thread). Both report what each frame cost in `Rendered`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from renderer.protocol import StyleChoice


@dataclass
class Rendered:
    """One rendered frame: (H, W, 3) uint8 RGB and what it cost."""

    frame_id: int
    rgb: np.ndarray
    round_trip_ms: float
    # The renderer's own time when the worker reports it; else None (all counted as render).
    worker_ms: float | None = None
    # The round trip's own cost (see RenderResult.transport_ms); None where unknown or in-process.
    transport_ms: float | None = None


class RenderBackend(Protocol):
    """What the pipeline needs of a renderer, in-process or behind a worker."""

    def render(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> Rendered:
        """Render one frame and wait for it (lock-step)."""

    def send(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        """Lock-step with frames in flight: start a frame; `receive()` returns frames in the order sent."""

    def receive(self) -> Rendered:
        """The oldest frame sent and not yet received, waiting for it."""

    def submit(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        """Hand a frame over without waiting (latest-wins)."""

    def latest(self) -> Rendered | None:
        """The newest rendered frame not returned before, or None."""

    def state(self) -> str:
        """A word for the HUD: ready, rendering, restarting, ..."""

    def close(self) -> None:
        """Release the renderer or the connection."""


class InProcessBackend:
    """A `SequentialRenderer` (anything with `step(label_ids, instance_ids)`) in this process;
    frames sent in lock-step render on a thread of their own."""

    def __init__(self, renderer: Any):
        self.renderer = renderer
        self._latest: Rendered | None = None
        self._thread: _RenderThread | None = None

    def render(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> Rendered:
        start = time.perf_counter()
        rgb = self.renderer.step(label_ids, instance_ids)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return Rendered(frame_id, rgb, elapsed_ms, elapsed_ms)

    def send(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        if self._thread is None:
            self._thread = _RenderThread(self)
        self._thread.submit(label_ids, instance_ids, frame_id)

    def receive(self) -> Rendered:
        if self._thread is None:
            raise RuntimeError("no frame in flight: send() one first")
        return self._thread.result()

    def submit(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        # In-process there is nothing to overlap with: render now, hand it out on latest().
        self._latest = self.render(label_ids, instance_ids, frame_id)

    def latest(self) -> Rendered | None:
        result, self._latest = self._latest, None
        return result

    def state(self) -> str:
        return "in-process"

    def set_style(self, choice: StyleChoice | None) -> None:
        """Render the following frames in ``choice`` (a new sequence starts)."""
        if self._thread is not None:
            self._thread.close()
            self._thread = None
        self.renderer.apply_style(choice)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None


class ClientBackend:
    """A render client (carla_neural.render_client.RenderClient) as a pipeline backend."""

    def __init__(self, client: Any):
        self.client = client
        self._last_latest_id: int | None = None

    def render(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> Rendered:
        start = time.perf_counter()
        result = self.client.render_result(frame_id, label_ids, instance_ids)
        round_trip_ms = (time.perf_counter() - start) * 1e3
        return Rendered(frame_id, result.rgb, round_trip_ms, float(result.render_ms), result.transport_ms)

    def send(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        self.client.send(frame_id, label_ids, instance_ids)

    def receive(self) -> Rendered:
        result = self.client.receive()
        return Rendered(result.frame_id, result.rgb, float(result.latency_ms), float(result.render_ms),
                        result.transport_ms)

    def submit(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        self.client.submit(frame_id, label_ids, instance_ids)

    def latest(self) -> Rendered | None:
        result = self.client.latest()
        if result is None or result.frame_id == self._last_latest_id:
            return None
        self._last_latest_id = result.frame_id
        return Rendered(result.frame_id, result.rgb, float(result.latency_ms), float(result.render_ms))

    def state(self) -> str:
        return str(self.client.state)

    def set_style(self, choice: StyleChoice | None) -> None:
        """Render the following frames in ``choice`` (a new sequence starts)."""
        self._last_latest_id = None
        self.client.set_style(choice)

    def close(self) -> None:
        self.client.close()


class _RenderThread:
    """Runs backend.render() off the main thread, jobs in the order submitted, results in order."""

    def __init__(self, backend: RenderBackend):
        self._backend = backend
        self._jobs: queue.Queue[tuple[np.ndarray, np.ndarray | None, int] | None] = queue.Queue()
        self._results: queue.Queue[Rendered | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="render", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            label_ids, instance_ids, frame_id = job
            try:
                result: Rendered | BaseException = self._backend.render(label_ids, instance_ids, frame_id)
            except BaseException as error:  # handed to the main thread, which raises it
                result = error
            self._results.put(result)

    def submit(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> None:
        self._jobs.put((label_ids, instance_ids, frame_id))

    def result(self) -> Rendered:
        result = self._results.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=60)
