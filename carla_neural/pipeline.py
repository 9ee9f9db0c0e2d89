"""source -> remap -> renderer -> view and recorder, with per-stage timing on every frame.

The pipeline moves frames and times them; nothing else. A label transform (PipelineConfig's
`label_transform`, switched by `adapt_labels`) sits between remap and the renderer: the renderer
and the labels panel/video get the transformed ids, the recorder's label_ids PNGs stay the
simulator's ground truth (datasets and gap metrics need them). What the frames come from (a Source),
what renders them (a RenderBackend, carla_neural.backends), where they are shown (a view such as
carla_neural.display.live.LiveView, which also turns keys into source control) and where they
are written (a Recorder) are handed to it by the run assembly (carla_neural.runs).

Two modes:

- lock-step ("lockstep"): every frame is rendered, in order (recording, demo). Up to `in_flight`
  (2) frames are with the renderer at once: while it renders frame N, frame N + 1 already waits
  in its queue, and the main thread shows and records frame N - 1 and ticks the world and remaps
  frame N + 2. The renderer goes from one frame to the next without waiting for us, so the work
  around it hides behind it, the transport round trip included.
- latest-wins ("latest"): interactive driving. Each frame is submitted and the newest rendered
  image is shown; the simulation never waits for the renderer.

Stages timed into `Frame.timings_ms` (milliseconds): world (source.tick), remap (label ids,
instance ids — taken as they are from a frame that carries Cityscapes ids, such as a replayed
one —, palette and RGB conversion), adapt (the label transform, carla_neural.label_transform,
on frames it is applied to), wait (main thread blocked on the renderer), transport
(request/reply round trip minus the worker's own render time and the time the frame waited
behind the one before; only for frames whose reply the main thread waited for, as a reply that
came in earlier has no known arrival time), render (the worker's render time), display (draw +
keyboard), record_queue (hand-off to the recorder thread; the recorder adds "record", its encode
time), frame (the main loop's period for this frame).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from carla_neural.backends import Rendered, RenderBackend
from carla_neural.display.keys import InputState
from carla_neural.display.live import Shown
from carla_neural.recorder import Recorder, frame_record, timing_statistics
from carla_neural.remap import Remapper, colorize_label_ids
from carla_neural.sources.base import Frame, Source
from carla_neural.sources.encoding import bgra_to_rgb

log = logging.getLogger(__name__)

Mode = Literal["lockstep", "latest"]
MODES = ("lockstep", "latest")


class View(Protocol):
    """Where the pipeline shows frames (carla_neural.display.live.LiveView)."""

    def show(self, shown: Shown) -> InputState | None:
        """Show one frame; the keys read meanwhile (quit stops the run)."""


@dataclass
class Prepared:
    """A frame with everything derived from it before rendering."""

    frame: Frame
    label_ids: np.ndarray  # the simulator's, remapped: what the recorder writes
    instance_ids: np.ndarray | None
    raw_rgb: np.ndarray | None
    label_rgb: np.ndarray  # the palette of render_label_ids
    acquired_at: float
    render_label_ids: np.ndarray  # what the renderer gets: label_ids after the label transform, if on


@dataclass
class Presented:
    """What `run()`'s callback gets per shown frame."""

    frame: Frame
    label_ids: np.ndarray  # the simulator's (remapped)
    neural_rgb: np.ndarray | None
    input: InputState | None
    render_label_ids: np.ndarray | None = None  # what the renderer got (after the label transform, if on)


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
    label_transform: (H, W) uint8 labelIds -> (H, W) uint8 labelIds between remap and the
        renderer (carla_neural.label_transform.LabelTransform); None: none.
    adapt_labels: whether label_transform is applied at the start (Pipeline.adapt_labels switches it).
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
    label_transform: Callable[[np.ndarray], np.ndarray] | None = None
    adapt_labels: bool = True
    max_fps: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: allowed modes are {MODES}")
        if not 1 <= self.in_flight <= 4:
            raise ValueError(f"in_flight must be 1..4 (the worker queues at most 4 frames per session), "
                             f"got {self.in_flight}")
        if self.max_fps is not None and not self.max_fps > 0:
            raise ValueError(f"max_fps must be positive or None, got {self.max_fps}")


class Pipeline:
    """Drives frames from a source through remap and renderer to a view and a recorder.

    view and recorder are optional. `run()` returns a summary (frames, fps, per-stage timing
    statistics). The caller owns source, backend, view and recorder and closes them.
    """

    def __init__(
        self,
        source: Source,
        backend: RenderBackend,
        view: View | None = None,
        recorder: Recorder | None = None,
        config: PipelineConfig | None = None,
    ):
        self.source = source
        self.backend = backend
        self.view = view
        self.recorder = recorder
        self.config = config or PipelineConfig()
        self._remappers: dict[str, Remapper] = {}
        self._stage_samples: dict[str, list[float]] = collections.defaultdict(list)
        self._paired_ms: list[tuple[float, float]] = []  # (frame period, render) of frames with both
        self._latency_ms: float | None = None
        self._newest: Rendered | None = None  # latest-wins: the newest render so far
        self._last_present: float | None = None
        self._stopped = False
        self.frames_presented = 0
        self._run_start = 0
        self._wall_s = 0.0
        self.adapt_labels = self.config.adapt_labels and self.config.label_transform is not None

    def set_adapt_labels(self, on: bool) -> None:
        """Switch the label transform on or off from the next frame acquired (drive's key; frames
        already in flight keep theirs); needs one configured."""
        if on and self.config.label_transform is None:
            raise ValueError("this pipeline has no label transform to switch on (PipelineConfig.label_transform)")
        self.adapt_labels = on
        log.info("label transform %s", "on" if on else "off")

    # --- stages --------------------------------------------------------------------------

    def remapper(self, scheme: str) -> Remapper:
        """The Remapper for a tag scheme (one per scheme, built on first use)."""
        scheme = self.config.tag_scheme or scheme
        remapper = self._remappers.get(scheme)
        if remapper is None:
            remapper = Remapper(scheme, overrides=self.config.remap_overrides, unknown=self.config.unknown_tags)
            self._remappers[scheme] = remapper
        return remapper

    def _label_and_instance_ids(self, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W) uint8 labelIds and (H, W) int32 instance ids or None: the frame's own Cityscapes
        ids where it carries them (a replayed run), else its CARLA images remapped."""
        if frame.label_ids is not None:
            return frame.label_ids, frame.instance_ids if self.config.send_instances else None
        assert frame.semantic_bgra is not None  # Frame.__post_init__: one of the two is set
        remapper = self.remapper(frame.tag_scheme)
        instance_ids = None
        if self.config.send_instances and frame.instance_bgra is not None:
            instance_ids = remapper.instance_ids(frame.instance_bgra)
        return remapper.label_ids(frame.semantic_bgra), instance_ids

    def _acquire(self) -> Prepared:
        start = time.perf_counter()
        frame = self.source.tick()
        ticked = time.perf_counter()
        label_ids, instance_ids = self._label_and_instance_ids(frame)
        render_label_ids = label_ids
        adapt_ms = 0.0
        if self.adapt_labels:
            assert self.config.label_transform is not None
            adapt_start = time.perf_counter()
            render_label_ids = self.config.label_transform(label_ids)
            adapt_ms = (time.perf_counter() - adapt_start) * 1e3
        raw_rgb = None
        if frame.rgb_bgra is not None:
            raw_rgb = bgra_to_rgb(frame.rgb_bgra)
        label_rgb = colorize_label_ids(render_label_ids)
        done = time.perf_counter()
        frame.timings_ms["world"] = (ticked - start) * 1e3
        frame.timings_ms["remap"] = (done - ticked) * 1e3 - adapt_ms
        if self.adapt_labels:
            frame.timings_ms["adapt"] = adapt_ms
        return Prepared(frame, label_ids, instance_ids, raw_rgb, label_rgb, done, render_label_ids)

    def _account_render(self, prepared: Prepared, result: Rendered, wait_ms: float) -> None:
        timings = prepared.frame.timings_ms
        timings["wait"] = wait_ms
        timings["render"] = result.worker_ms if result.worker_ms is not None else result.round_trip_ms
        if result.transport_ms is not None:
            timings["transport"] = result.transport_ms
        self._latency_ms = (time.perf_counter() - prepared.acquired_at) * 1e3

    def _present(self, prepared: Prepared, neural_rgb: np.ndarray | None,
                 rendered: bool = True) -> InputState | None:
        frame = prepared.frame
        timings = frame.timings_ms
        state = None
        if self.view is not None:
            start = time.perf_counter()
            adapt = None if self.config.label_transform is None else self.adapt_labels
            state = self.view.show(Shown(frame, prepared.raw_rgb, prepared.label_rgb, neural_rgb, rendered,
                                         self._latency_ms, self.backend.state(), self.config.mode, adapt))
            timings["display"] = (time.perf_counter() - start) * 1e3
            if state is not None and state.quit:
                self._stopped = True
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
            self.recorder.write(frame_record(frame, raw=prepared.raw_rgb, labels=prepared.label_rgb,
                                             neural=neural_rgb, label_ids=prepared.label_ids,
                                             instance_ids=prepared.instance_ids, flow=self.config.record_flow))
            timings["record_queue"] = (time.perf_counter() - start) * 1e3
        for stage, ms in timings.items():
            self._stage_samples[stage].append(ms)
        if "frame" in timings and "render" in timings:
            self._paired_ms.append((timings["frame"], timings["render"]))
        self.frames_presented += 1
        return state

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
        if on_frame is not None and on_frame(Presented(prepared.frame, prepared.label_ids, neural_rgb, state,
                                                     prepared.render_label_ids)) is False:
            self._stopped = True

    def _run_lockstep_serial(self, max_frames: int | None, on_frame: Any) -> None:
        while not self._done(self._presented_this_run, max_frames):
            prepared = self._acquire()
            start = time.perf_counter()
            result = self.backend.render(prepared.render_label_ids, prepared.instance_ids, prepared.frame.frame_id)
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
                self.backend.send(prepared.render_label_ids, prepared.instance_ids, prepared.frame.frame_id)
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
        # The newest image stays on screen from one run() to the next until a newer one comes.
        newest = self._newest
        while not self._done(self._presented_this_run, max_frames):
            prepared = self._acquire()
            start = time.perf_counter()
            self.backend.submit(prepared.render_label_ids, prepared.instance_ids, prepared.frame.frame_id)
            result = self.backend.latest()
            prepared.frame.timings_ms["submit"] = (time.perf_counter() - start) * 1e3
            if result is not None:
                newest = self._newest = result
                self._latency_ms = result.round_trip_ms or self._latency_ms
                if result.worker_ms is not None:
                    prepared.frame.timings_ms["render"] = result.worker_ms
            neural = newest.rgb if newest is not None else None
            state = self._present(prepared, neural, rendered=result is not None)
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
