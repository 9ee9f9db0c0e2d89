"""Run folders: H.264 videos per stream and side by side, optional PNG frames, per-frame metadata.

Layout (docs/contracts.md): run.json, frames.jsonl, raw.mp4, labels.mp4, neural.mp4,
side_by_side.mp4, frames/{raw,neural,label_ids,instance_ids,flow}/NNNNNN.png, summary.json.

Kill safety. A plain MP4 keeps its index (moov atom) for the end and is unreadable after a
SIGKILL, so each video is a fragmented MP4 (`empty_moov`, one fragment per frame, packets flushed
to the file as they are muxed) encoded with x264's zero-latency tuning (no lookahead, no B-frames,
so every frame leaves the encoder at once). FFmpeg's MP4 muxer writes a frame's fragment when
the *next* frame arrives, so the newest frame is held in memory until then. The recorder
therefore writes the `frames.jsonl` line of frame N only after frame N + 1 has been muxed (the
last line at `close()`): after a kill, every frame listed in frames.jsonl is decodable in every
video, and at most the one frame in flight is lost. PNG frames are written as each frame comes.

Encoding runs in a writer thread (PyAV releases the GIL while encoding) behind a bounded queue,
so that recording overlaps with rendering; `write()` blocks when the queue is full.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from carla_neural.sources.base import Frame
from carla_neural.sources.encoding import backward_flow_px, write_flow_png

log = logging.getLogger(__name__)

VIDEO_STREAMS = ("raw", "labels", "neural")
SIDE_BY_SIDE = "side_by_side"
PNG_KINDS = ("raw", "neural", "label_ids", "instance_ids", "flow")
# One fragment per frame; empty_moov puts a playable header first; default_base_moof keeps
# fragments self-contained for players that read them one by one.
_MOVFLAGS = "frag_every_frame+empty_moov+default_base_moof"


@dataclass
class FrameRecord:
    """What the recorder keeps of one frame; every image is optional.

    raw: (H, W, 3) uint8 RGB from the simulator's colour camera.
    labels: (H, W, 3) uint8 RGB, label ids in the Cityscapes palette.
    neural: (H, W, 3) uint8 RGB from the renderer.
    label_ids: (H, W) uint8 Cityscapes labelIds (PNG only).
    instance_ids: (H, W) int Cityscapes-style instance ids (PNG only, stored uint16).
    flow_px: (H, W, 2) float32 backward flow in pixels (PNG only, KITTI encoding).
    """

    frame_id: int
    sim_time: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    raw: np.ndarray | None = None
    labels: np.ndarray | None = None
    neural: np.ndarray | None = None
    label_ids: np.ndarray | None = None
    instance_ids: np.ndarray | None = None
    flow_px: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def png_path(run_dir: str | Path, kind: str, frame_id: int) -> Path:
    """Where a run folder keeps one PNG frame: frames/<kind>/<frame_id:06d>.png."""
    return Path(run_dir) / "frames" / kind / f"{frame_id:06d}.png"


def frame_record(frame: Frame, *, raw: np.ndarray | None, labels: np.ndarray | None,
                 neural: np.ndarray | None, label_ids: np.ndarray | None, instance_ids: np.ndarray | None,
                 flow: bool) -> FrameRecord:
    """The recorder's row for one frame: its images, timings and ego state (frames.jsonl's `ego`);
    with `flow`, the frame's CARLA flow as backward flow in pixels for the flow PNGs."""
    flow_px = backward_flow_px(frame.flow) if flow and frame.flow is not None else None
    return FrameRecord(frame_id=frame.frame_id, sim_time=frame.sim_time, timings_ms=dict(frame.timings_ms),
                       raw=raw, labels=labels, neural=neural, label_ids=label_ids, instance_ids=instance_ids,
                       flow_px=flow_px, extra=_ego_fields(frame))


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


@dataclass
class RecorderConfig:
    """Which streams to write and how.

    videos: per-stream videos to write (any of raw, labels, neural).
    side_by_side: also write side_by_side.mp4 (the per-stream images next to each other).
    png: PNG kinds to write (any of raw, neural, label_ids, instance_ids, flow); empty for none.
    crf: x264 constant rate factor (lower = better, 18 is visually lossless).
    preset: x264 preset; "ultrafast" keeps encoding far below a frame's render time.
    queue_frames: frames the writer thread may lag behind before `write()` blocks.
    encoder_threads: x264 threads per video (0 = x264's own choice, ~1.5 per core per video);
        1 keeps four encoders from crowding the renderer's cores.
    """

    fps: float = 20.0
    videos: tuple[str, ...] = VIDEO_STREAMS
    side_by_side: bool = True
    png: tuple[str, ...] = ()
    crf: int = 20
    preset: str = "ultrafast"
    queue_frames: int = 8
    encoder_threads: int = 1

    def __post_init__(self) -> None:
        unknown = set(self.videos) - set(VIDEO_STREAMS)
        if unknown:
            raise ValueError(f"unknown video streams {sorted(unknown)}; allowed: {VIDEO_STREAMS}")
        unknown = set(self.png) - set(PNG_KINDS)
        if unknown:
            raise ValueError(f"unknown PNG kinds {sorted(unknown)}; allowed: {PNG_KINDS}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be a positive number, got {self.fps}")


class RecorderError(RuntimeError):
    """The writer thread failed; the message names the cause."""


class _VideoWriter:
    """One kill-safe H.264 stream in a fragmented MP4."""

    def __init__(self, path: Path, width: int, height: int, config: RecorderConfig):
        self.path = path
        self.width, self.height = width, height
        self.frames = 0
        self._container = av.open(
            str(path), "w", format="mp4",
            options={"movflags": _MOVFLAGS, "flush_packets": "1"},
        )
        rate = _fps_fraction(config.fps)
        self._stream = self._container.add_stream(
            "libx264", rate=rate,
            options={"preset": config.preset, "tune": "zerolatency", "crf": str(config.crf),
                     "threads": str(config.encoder_threads)},
        )
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"{self.path.name}: frame of {rgb.shape[1]}x{rgb.shape[0]} after "
                f"{self.width}x{self.height} frames; a video keeps one size"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


def _fps_fraction(fps: float) -> Any:
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def _even(rgb: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: replicate the last row/column where one is odd."""
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        rgb = cv2.copyMakeBorder(rgb, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
    return rgb


def _check_rgb(name: str, rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"FrameRecord.{name} must be an (H, W, 3) uint8 RGB image; got {described}")
    return rgb


def side_by_side(images: Iterable[np.ndarray]) -> np.ndarray:
    """(H, W_i, 3) uint8 images -> (H, sum W_i, 3) uint8; images of another height are resized."""
    images = list(images)
    height = images[0].shape[0]
    fitted = [
        image if image.shape[0] == height
        else cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height),
                        interpolation=cv2.INTER_AREA)
        for image in images
    ]
    return np.hstack(fitted)


def timing_statistics(samples: Mapping[str, list[float]]) -> dict[str, dict[str, float]]:
    """{stage: [ms, ...]} -> {stage: {mean, median, p95, max, count}} (milliseconds)."""
    statistics = {}
    for stage, values in samples.items():
        if not values:
            continue
        array = np.asarray(values, np.float64)
        statistics[stage] = {
            "mean": round(float(array.mean()), 3),
            "median": round(float(np.median(array)), 3),
            "p95": round(float(np.percentile(array, 95)), 3),
            "max": round(float(array.max()), 3),
            "count": int(array.size),
        }
    return statistics


class Recorder:
    """Writes one run folder; a context manager. `write()` per frame, then `close()`.

    run_info: run-level facts for run.json (source, scenario, size, fps, checkpoint, engine,
    tag scheme, ...); the recorder adds the streams it writes and the start time.
    """

    def __init__(
        self,
        out_dir: str | Path,
        config: RecorderConfig | None = None,
        run_info: Mapping[str, Any] | None = None,
        threaded: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.config = config or RecorderConfig()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._videos: dict[str, _VideoWriter] = {}
        self._stage_samples: dict[str, list[float]] = {}
        self._frames_written = 0
        self._first_frame_id: int | None = None
        self._last_frame_id: int | None = None
        self._started = time.time()
        self._pending_line: str | None = None
        self._closed = False
        self._error: BaseException | None = None
        for kind in self.config.png:
            png_path(self.out_dir, kind, 0).parent.mkdir(parents=True, exist_ok=True)
        self.run_info = {
            **dict(run_info or {}),
            "fps": self.config.fps,
            "videos": [f"{name}.mp4" for name in self._video_names()],
            "png": list(self.config.png),
            "started_unix": round(self._started, 3),
        }
        write_json(self.out_dir / "run.json", self.run_info)
        self._jsonl = open(self.out_dir / "frames.jsonl", "w", encoding="utf-8")
        self._queue: queue.Queue[FrameRecord | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, self.config.queue_frames))
            self._thread = threading.Thread(target=self._drain, name="recorder", daemon=True)
            self._thread.start()

    def _video_names(self) -> list[str]:
        names = list(self.config.videos)
        if self.config.side_by_side:
            names.append(SIDE_BY_SIDE)
        return names

    def write(self, record: FrameRecord) -> None:
        """Queue one frame for writing; raises RecorderError if the writer thread failed."""
        if self._closed:
            raise RecorderError("write() after close()")
        self._raise_pending_error()
        for name in ("raw", "labels", "neural"):
            image = getattr(record, name)
            if image is not None:
                _check_rgb(name, image)
        if self._queue is None:
            self._write_now(record)
            return
        while True:
            try:
                self._queue.put(record, timeout=0.5)
                return
            except queue.Full:
                self._raise_pending_error()

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            record = self._queue.get()
            if record is None:
                return
            if self._error is not None:
                continue  # keep consuming so write() never blocks forever
            try:
                self._write_now(record)
            except BaseException as error:  # reported to the caller on its next call
                log.exception("recorder failed on frame %s", record.frame_id)
                self._error = error

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise RecorderError(f"recording to {self.out_dir} failed: {self._error}") from self._error

    def _write_now(self, record: FrameRecord) -> None:
        start = time.perf_counter()
        streams = {name: getattr(record, name) for name in self.config.videos}
        for name, rgb in streams.items():
            self._video(name, rgb, record.frame_id).write(_even(rgb))
        if self.config.side_by_side:
            panels = [getattr(record, name) for name in VIDEO_STREAMS if getattr(record, name) is not None]
            if panels:
                self._video(SIDE_BY_SIDE, panels, record.frame_id).write(_even(side_by_side(panels)))
        self._write_pngs(record)
        timings = dict(record.timings_ms)
        timings["record"] = (time.perf_counter() - start) * 1e3
        line = {
            "frame_id": int(record.frame_id),
            "sim_time": round(float(record.sim_time), 6),
            "timings_ms": {stage: round(float(ms), 3) for stage, ms in timings.items()},
            **record.extra,
        }
        for stage, ms in timings.items():
            self._stage_samples.setdefault(stage, []).append(float(ms))
        # This frame's videos are durable only once the next frame is muxed (see module doc).
        self._commit_pending_line()
        self._pending_line = json.dumps(line, separators=(",", ":"))
        if self._first_frame_id is None:
            self._first_frame_id = int(record.frame_id)
        self._last_frame_id = int(record.frame_id)
        self._frames_written += 1

    def _commit_pending_line(self) -> None:
        if self._pending_line is not None:
            self._jsonl.write(self._pending_line + "\n")
            self._jsonl.flush()
            self._pending_line = None

    def _video(self, name: str, image: np.ndarray | list[np.ndarray] | None, frame_id: int) -> _VideoWriter:
        if image is None:
            raise ValueError(
                f"frame {frame_id} has no '{name}' image but the recorder writes {name}.mp4; "
                f"give every frame the same streams (RecorderConfig.videos)"
            )
        writer = self._videos.get(name)
        if writer is None:
            if isinstance(image, list):
                height = image[0].shape[0]
                width = side_by_side(image).shape[1]
            else:
                height, width = image.shape[:2]
            writer = _VideoWriter(
                self.out_dir / f"{name}.mp4", width + width % 2, height + height % 2, self.config
            )
            self._videos[name] = writer
        return writer

    def _write_pngs(self, record: FrameRecord) -> None:
        if not self.config.png:
            return
        # Compression level 1: PNG stays lossless and writes several times faster than the default.
        fast = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        for kind in self.config.png:
            path = png_path(self.out_dir, kind, record.frame_id)
            if kind in ("raw", "neural"):
                rgb = getattr(record, kind)
                if rgb is not None:
                    _imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), fast)
            elif kind == "label_ids" and record.label_ids is not None:
                _imwrite(path, np.ascontiguousarray(record.label_ids, np.uint8), fast)
            elif kind == "instance_ids" and record.instance_ids is not None:
                instance_ids = record.instance_ids
                if instance_ids.min(initial=0) < 0 or instance_ids.max(initial=0) > 65535:
                    raise ValueError(f"frame {record.frame_id}: instance ids do not fit uint16")
                _imwrite(path, instance_ids.astype(np.uint16), fast)
            elif kind == "flow" and record.flow_px is not None:
                write_flow_png(path, record.flow_px)

    def close(self, summary_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Finish the videos, write the last metadata line and summary.json; returns the summary."""
        if self._closed:
            return json.loads((self.out_dir / "summary.json").read_text())
        self._closed = True
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
        errors = []
        for writer in self._videos.values():
            try:
                writer.close()
            except Exception as error:  # close the others all the same
                errors.append(f"{writer.path.name}: {error}")
        self._commit_pending_line()
        self._jsonl.close()
        elapsed = time.time() - self._started
        summary = {
            "frames": self._frames_written,
            "first_frame_id": self._first_frame_id,
            "last_frame_id": self._last_frame_id,
            "wall_s": round(elapsed, 3),
            "fps": round(self._frames_written / elapsed, 3) if elapsed > 0 else None,
            "timings_ms": timing_statistics(self._stage_samples),
            "files": sorted(
                str(path.relative_to(self.out_dir)) for path in self.out_dir.iterdir() if path.is_file()
            ) + (["frames/"] if self.config.png else []),
            "video_frames": {f"{name}.mp4": writer.frames for name, writer in self._videos.items()},
            **dict(summary_extra or {}),
        }
        if "summary.json" not in summary["files"]:
            summary["files"] = sorted(summary["files"] + ["summary.json"])
        write_json(self.out_dir / "summary.json", summary)
        if self._error is not None or errors:
            detail = str(self._error) if self._error is not None else "; ".join(errors)
            raise RecorderError(f"recording to {self.out_dir} failed: {detail}")
        return summary

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _imwrite(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"could not write {path}: check free space and permissions")


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write JSON atomically (temp file + rename) so a kill never leaves half a file."""
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    os.replace(temporary, path)


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_frames_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a frames.jsonl, in order; the one reader of that file.

    A killed recorder may leave a half-written last line: reading stops at the first line that is
    not JSON (with a warning), and the frames before it stand.
    """
    lines: list[dict[str, Any]] = []
    for number, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (torn by a kill?); using the %d frames before it",
                        path, number, len(lines))
            break
    return lines
