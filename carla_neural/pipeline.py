"""source -> remap -> renderer -> display and recorder, with per-stage timing on every frame.

Two modes:

- lock-step ("lockstep"): every frame is rendered, in order (recording, demo). Up to `in_flight`
  (2) frames are with the renderer at once: while it renders frame N, frame N + 1 already waits
  in its queue, and the main thread shows and records frame N - 1 and ticks the world and remaps
  frame N + 2. The renderer goes from one frame to the next without waiting for us, so the work
  around it hides behind it, the transport round trip included.
- latest-wins ("latest"): interactive driving. Each frame is submitted and the newest rendered
  image is shown; the simulation never waits for the renderer.

Stages timed into `Frame.timings_ms` (milliseconds): world (source.tick), remap (label ids,
instance ids, palette and RGB conversion), wait (main thread blocked on the renderer), transport
(request/reply round trip minus the worker's own render time and the time the frame waited
behind the one before; only for frames whose reply the main thread waited for, as a reply that
came in earlier has no known arrival time), render (the worker's render time), display (draw +
keyboard), record_queue (hand-off to the recorder thread; the recorder adds "record", its encode
time), frame (the main loop's period for this frame).

The renderer sits behind `RenderBackend`: `ClientBackend` wraps the ZeroMQ `RenderClient`
(worker process; frames in flight queue in the worker), `InProcessBackend` wraps a
`SequentialRenderer` (benchmarks, no worker; frames in flight queue for a render thread).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from carla_neural.display import Action, Display, HudInfo, InputState
from carla_neural.recorder import FrameRecord, Recorder, timing_statistics
from carla_neural.remap import Remapper, colorize_label_ids
from carla_neural.sources.base import Frame, Source
from carla_neural.sources.encoding import backward_flow_px, bgra_to_rgb

log = logging.getLogger(__name__)

Mode = Literal["lockstep", "latest"]
MODES = ("lockstep", "latest")


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

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None


class ClientBackend:
    """The ZeroMQ `RenderClient` (carla_neural.render_client) as a pipeline backend."""

    def __init__(self, client: Any):
        self.client = client
        self._last_latest_id: int | None = None

    def render(self, label_ids: np.ndarray, instance_ids: np.ndarray | None, frame_id: int) -> Rendered:
        start = time.perf_counter()
        rgb = self.client.render(frame_id, label_ids, instance_ids)
        round_trip_ms = (time.perf_counter() - start) * 1e3
        result = self.client.last_result
        worker_ms = float(result.render_ms) if result is not None else None
        transport_ms = result.transport_ms if result is not None else None
        return Rendered(frame_id, rgb, round_trip_ms, worker_ms, transport_ms)

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
        return str(getattr(self.client, "state", "connected"))

    def close(self) -> None:
        self.client.close()


@dataclass
class Prepared:
    """A frame with everything derived from it before rendering."""

    frame: Frame
    label_ids: np.ndarray
    instance_ids: np.ndarray | None
    raw_rgb: np.ndarray | None
    label_rgb: np.ndarray
    acquired_at: float


@dataclass
class Presented:
    """What `run()`'s callback gets per shown frame."""

    frame: Frame
    label_ids: np.ndarray
    neural_rgb: np.ndarray | None
    input: InputState | None


@dataclass
class PipelineConfig:
    """How the pipeline runs.

    mode: "lockstep" (every frame rendered, in order) or "latest" (latest-wins, interactive).
    overlap: in lock-step, keep frames in flight with the renderer while presenting and preparing
        others; False renders one frame at a time, nothing overlapped.
    in_flight: lock-step frames with the renderer at once when overlapping (1..4; 2 keeps the
        renderer busy while a reply travels back; a ClientBackend's client must allow as many).
    tag_scheme: CARLA tag scheme or version; None takes each frame's `tag_scheme`.
    unknown_tags: "error" or "unlabeled" (see Remapper).
    remap_overrides: YAML file or mapping of tag overrides (see Remapper).
    send_instances: send instance ids to the renderer (vid2vid's edge channel).
    record_flow: compute backward flow for the recorder's flow PNGs.
    max_fps: cap on frames per second (e.g. 20 for a 0.05 s simulation step, so that driving
        runs in real time); None runs as fast as the slowest stage allows.
    """

    mode: Mode = "lockstep"
    overlap: bool = True
    in_flight: int = 2
    tag_scheme: str | None = None
    unknown_tags: Literal["error", "unlabeled"] = "error"
    remap_overrides: Any = None
    send_instances: bool = True
    record_flow: bool = False
    max_fps: float | None = None
    rate_window: int = 30

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: allowed modes are {MODES}")
        if not 1 <= self.in_flight <= 4:
            raise ValueError(f"in_flight must be 1..4 (the worker queues at most 4 frames per session), "
                             f"got {self.in_flight}")
        if self.max_fps is not None and not self.max_fps > 0:
            raise ValueError(f"max_fps must be positive or None, got {self.max_fps}")


class _Rate:
    """Events per second over the last `window` events."""

    def __init__(self, window: int):
        self._times: collections.deque[float] = collections.deque(maxlen=max(2, window))

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.perf_counter() if now is None else now)

    @property
    def per_second(self) -> float | None:
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return None
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


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


class Pipeline:
    """Drives frames from a source through remap and renderer to a display and a recorder.

    display and recorder are optional. `run()` returns a summary (frames, fps, per-stage
    timing statistics). The caller owns source, backend, display and recorder and closes them.
    """

    def __init__(
        self,
        source: Source,
        backend: RenderBackend,
        display: Display | None = None,
        recorder: Recorder | None = None,
        config: PipelineConfig | None = None,
    ):
        self.source = source
        self.backend = backend
        self.display = display
        self.recorder = recorder
        self.config = config or PipelineConfig()
        self._remappers: dict[str, Remapper] = {}
        self._stage_samples: dict[str, list[float]] = collections.defaultdict(list)
        self._paired_ms: list[tuple[float, float]] = []  # (frame period, render) of frames with both
        self._sim_rate = _Rate(self.config.rate_window)
        self._render_rate = _Rate(self.config.rate_window)
        self._latency_ms: float | None = None
        self._last_present: float | None = None
        self._autopilot = display.keyboard.autopilot if display is not None else True
        presets = list(source.weather_presets)
        current = _current_weather(source)
        self._weather_index = presets.index(current) if current in presets else 0
        self._stopped = False
        self._warned: set[str] = set()
        self.frames_presented = 0
        self._run_start = 0
        self._wall_s = 0.0

    # --- stages --------------------------------------------------------------------------

    def remapper(self, scheme: str) -> Remapper:
        """The Remapper for a tag scheme (one per scheme, built on first use)."""
        scheme = self.config.tag_scheme or scheme
        remapper = self._remappers.get(scheme)
        if remapper is None:
            remapper = Remapper(scheme, overrides=self.config.remap_overrides, unknown=self.config.unknown_tags)
            self._remappers[scheme] = remapper
        return remapper

    def _acquire(self) -> Prepared:
        start = time.perf_counter()
        frame = self.source.tick()
        ticked = time.perf_counter()
        remapper = self.remapper(frame.tag_scheme)
        label_ids = remapper.label_ids(frame.semantic_bgra)
        instance_ids = None
        if self.config.send_instances and frame.instance_bgra is not None:
            instance_ids = remapper.instance_ids(frame.instance_bgra)
        raw_rgb = None
        if frame.rgb_bgra is not None:
            raw_rgb = bgra_to_rgb(frame.rgb_bgra)
        label_rgb = colorize_label_ids(label_ids)
        done = time.perf_counter()
        frame.timings_ms["world"] = (ticked - start) * 1e3
        frame.timings_ms["remap"] = (done - ticked) * 1e3
        self._sim_rate.tick(done)
        return Prepared(frame, label_ids, instance_ids, raw_rgb, label_rgb, done)

    def _account_render(self, prepared: Prepared, result: Rendered, wait_ms: float) -> None:
        timings = prepared.frame.timings_ms
        timings["wait"] = wait_ms
        timings["render"] = result.worker_ms if result.worker_ms is not None else result.round_trip_ms
        if result.transport_ms is not None:
            timings["transport"] = result.transport_ms
        self._latency_ms = (time.perf_counter() - prepared.acquired_at) * 1e3
        self._render_rate.tick()

    def _present(self, prepared: Prepared, neural_rgb: np.ndarray | None) -> InputState | None:
        frame = prepared.frame
        timings = frame.timings_ms
        state = None
        if self.display is not None:
            start = time.perf_counter()
            self.display.show(
                {"raw": prepared.raw_rgb, "labels": prepared.label_rgb, "neural": neural_rgb},
                self.hud(frame.frame_id),
            )
            state = self.display.poll()
            timings["display"] = (time.perf_counter() - start) * 1e3
            self._apply_input(state)
        now = time.perf_counter()
        if self.config.max_fps is not None and self._last_present is not None:
            due = self._last_present + 1.0 / self.config.max_fps
            if now < due:
                time.sleep(due - now)
                now = time.perf_counter()
        if self._last_present is not None:
            timings["frame"] = (now - self._last_present) * 1e3
        self._last_present = now
        if self.recorder is not None:
            start = time.perf_counter()
            flow_px = None
            if self.config.record_flow and frame.flow is not None:
                flow_px = backward_flow_px(frame.flow)
            self.recorder.write(FrameRecord(
                frame_id=frame.frame_id,
                sim_time=frame.sim_time,
                timings_ms=dict(timings),
                raw=prepared.raw_rgb,
                labels=prepared.label_rgb,
                neural=neural_rgb,
                label_ids=prepared.label_ids,
                instance_ids=prepared.instance_ids,
                flow_px=flow_px,
                extra=_ego_fields(frame),
            ))
            timings["record_queue"] = (time.perf_counter() - start) * 1e3
        for stage, ms in timings.items():
            self._stage_samples[stage].append(ms)
        if "frame" in timings and "render" in timings:
            self._paired_ms.append((timings["frame"], timings["render"]))
        self.frames_presented += 1
        return state

    def hud(self, frame_id: int | None) -> HudInfo:
        """The HUD's numbers now."""
        return HudInfo(
            sim_fps=self._sim_rate.per_second,
            render_fps=self._render_rate.per_second,
            latency_ms=self._latency_ms,
            frame_id=frame_id,
            worker_state=self.backend.state(),
            extra={
                "mode": self.config.mode,
                "autopilot": "on" if self._autopilot else "off",
                **({"weather": weather} if (weather := _current_weather(self.source)) else {}),
            },
        )

    def _apply_input(self, state: InputState) -> None:
        """Turn keys into source calls: autopilot, manual control, weather; Esc stops the run."""
        if state.quit:
            self._stopped = True
        try:
            if state.autopilot != self._autopilot:
                self.source.set_autopilot(state.autopilot)
                self._autopilot = state.autopilot
            if not self._autopilot:
                self.source.apply_control(state.control)
            presets = self.source.weather_presets
            for action in state.actions:
                if action is Action.NEXT_CAMERA:
                    next_mount = getattr(self.source, "next_mount", None)
                    if next_mount is None:
                        raise NotImplementedError(f"{type(self.source).__name__} has one camera position")
                    next_mount()
                if presets and action in (Action.NEXT_WEATHER, Action.PREVIOUS_WEATHER):
                    step = 1 if action is Action.NEXT_WEATHER else -1
                    self._weather_index = (self._weather_index + step) % len(presets)
                    self.source.set_weather(presets[self._weather_index])
        except NotImplementedError as error:
            # A source without autopilot, weather or mounts: say so once, not every frame.
            self._autopilot = state.autopilot
            if str(error) not in self._warned:
                self._warned.add(str(error))
                log.warning("%s", error)

    def stop(self) -> None:
        """Ask `run()` to stop after the frame in hand."""
        self._stopped = True

    # --- loops ---------------------------------------------------------------------------

    def run(
        self,
        max_frames: int | None = None,
        on_frame: Callable[[Presented], bool | None] | None = None,
    ) -> dict[str, Any]:
        """Run until `max_frames` are presented, Esc, `stop()`, or on_frame returning False."""
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self._stopped = False
        self._run_start = self.frames_presented
        self._last_present = None  # a pause between runs is no frame period
        started = time.perf_counter()
        if self.config.mode == "latest":
            self._run_latest(max_frames, on_frame)
        elif self.config.overlap:
            self._run_lockstep_overlapped(max_frames, on_frame)
        else:
            self._run_lockstep_serial(max_frames, on_frame)
        self._wall_s += time.perf_counter() - started
        return self.summary()

    def _done(self, count: int, max_frames: int | None) -> bool:
        return self._stopped or (max_frames is not None and count >= max_frames)

    @property
    def _presented_this_run(self) -> int:
        return self.frames_presented - self._run_start

    def _callback(self, on_frame: Callable[[Presented], bool | None] | None, prepared: Prepared,
                  neural_rgb: np.ndarray | None, state: InputState | None) -> None:
        if on_frame is not None and on_frame(Presented(prepared.frame, prepared.label_ids, neural_rgb, state)) is False:
            self._stopped = True

    def _run_lockstep_serial(self, max_frames: int | None, on_frame: Any) -> None:
        while not self._done(self._presented_this_run, max_frames):
            prepared = self._acquire()
            start = time.perf_counter()
            result = self.backend.render(prepared.label_ids, prepared.instance_ids, prepared.frame.frame_id)
            self._account_render(prepared, result, (time.perf_counter() - start) * 1e3)
            state = self._present(prepared, result.rgb)
            self._callback(on_frame, prepared, result.rgb, state)

    def _run_lockstep_overlapped(self, max_frames: int | None, on_frame: Any) -> None:
        in_flight: collections.deque[Prepared] = collections.deque()
        acquired = 0
        while True:
            # Top up the renderer's queue; this overlaps with the render of the frames in it.
            while len(in_flight) < self.config.in_flight and not self._done(acquired, max_frames):
                prepared = self._acquire()
                acquired += 1
                self.backend.send(prepared.label_ids, prepared.instance_ids, prepared.frame.frame_id)
                in_flight.append(prepared)
            if not in_flight:
                return
            oldest = in_flight.popleft()
            start = time.perf_counter()
            result = self.backend.receive()
            self._account_render(oldest, result, (time.perf_counter() - start) * 1e3)
            # Every acquired frame is rendered and presented, so a stop still leaves a complete
            # lock-step sequence.
            state = self._present(oldest, result.rgb)
            self._callback(on_frame, oldest, result.rgb, state)

    def _run_latest(self, max_frames: int | None, on_frame: Any) -> None:
        newest: Rendered | None = None
        while not self._done(self._presented_this_run, max_frames):
            prepared = self._acquire()
            start = time.perf_counter()
            self.backend.submit(prepared.label_ids, prepared.instance_ids, prepared.frame.frame_id)
            result = self.backend.latest()
            prepared.frame.timings_ms["submit"] = (time.perf_counter() - start) * 1e3
            if result is not None:
                newest = result
                self._render_rate.tick()
                self._latency_ms = result.round_trip_ms or self._latency_ms
                if result.worker_ms is not None:
                    prepared.frame.timings_ms["render"] = result.worker_ms
            neural = newest.rgb if newest is not None else None
            state = self._present(prepared, neural)
            self._callback(on_frame, prepared, neural, state)

    def summary(self, wall_s: float | None = None) -> dict[str, Any]:
        """Frames, wall time, fps, per-stage statistics and the cost of the pipeline around the renderer.

        Covers every `run()` of this pipeline so far; wall_s overrides the time spent in them.
        """
        wall_s = self._wall_s if wall_s is None else wall_s
        statistics = timing_statistics(self._stage_samples)
        summary: dict[str, Any] = {
            "mode": self.config.mode,
            "overlap": self.config.overlap if self.config.mode == "lockstep" else None,
            "frames": self.frames_presented,
            "wall_s": round(wall_s, 3),
            "fps": round(self.frames_presented / wall_s, 3) if wall_s > 0 else None,
            "stages_ms": statistics,
        }
        summary.update(overhead(self._paired_ms))
        unknown_tags: collections.Counter[int] = collections.Counter()
        for remapper in self._remappers.values():
            unknown_tags.update(remapper.unknown_pixel_counts)
        if unknown_tags:
            summary["unknown_tags_px"] = {str(tag): count for tag, count in sorted(unknown_tags.items())}
        return summary


def _current_weather(source: Source) -> str | None:
    """The source's weather preset name, or None for sources without weather."""
    try:
        return str(source.weather)
    except (AttributeError, NotImplementedError):
        return None


def _ego_fields(frame: Frame) -> dict[str, Any]:
    """The ego vehicle's state for frames.jsonl (position m, yaw deg, speed m/s, control)."""
    ego = frame.ego
    if ego is None:
        return {}
    control = ego.control
    return {"ego": {
        "x": round(ego.x, 3), "y": round(ego.y, 3), "z": round(ego.z, 3),
        "yaw_deg": round(ego.yaw_deg, 2), "speed_mps": round(ego.speed_mps, 3), "autopilot": ego.autopilot,
        "throttle": control.throttle, "steer": control.steer, "brake": control.brake,
        "hand_brake": control.hand_brake, "reverse": control.reverse,
    }}


def overhead(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """The pipeline's cost around the renderer from (frame period ms, render ms) per frame.

    Only frames with both count: a run's first frame has no period, and its render (the
    single-image generator, the slowest) would otherwise weigh on one side only. Means, not
    medians: the frame periods sum to the run's wall time, so the difference of the means is the
    time per frame spent outside the renderer.
    """
    if not pairs:
        return {}
    frame_ms = float(np.mean([frame for frame, _ in pairs]))
    render_ms = float(np.mean([render for _, render in pairs]))
    if frame_ms <= 0:
        return {}
    return {
        "frame_ms_mean": round(frame_ms, 3),
        "render_ms_mean": round(render_ms, 3),
        "frame_ms_median": round(float(np.median([frame for frame, _ in pairs])), 3),
        "render_ms_median": round(float(np.median([render for _, render in pairs])), 3),
        "pipeline_overhead_pct": round(100.0 * (frame_ms - render_ms) / frame_ms, 2),
    }
