"""Read a recorded run folder (docs/contracts.md, written by carla_neural.recorder) for compare.

Only what a metric needs is read, one frame at a time: memory stays flat over long runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from carla_neural.recorder import png_path, read_frames_jsonl
from carla_neural.sources.encoding import read_flow_png

log = logging.getLogger(__name__)

# How a user gets each input with `carla-neural record`: named in every "missing" error.
_HINTS = {
    "raw": "record a scenario whose cameras.sensors include 'rgb' (gives raw.mp4, and PNGs with --png)",
    "neural": "record with rendering on (`carla-neural record` always writes neural.mp4, PNGs with --png)",
    "label_ids": "record with --png (the default of `carla-neural record`)",
    "flow": "record with --png (the default) and a scenario whose cameras.sensors include 'flow'",
}


class RunFolderError(ValueError):
    """A run folder lacks something a metric needs; the message names the file and the fix."""


@dataclass
class FrameImages:
    """What compare reads of one frame; any image may be None when not requested.

    raw, neural: (H, W, 3) uint8 RGB. label_ids: (H, W) uint8 Cityscapes labelIds.
    flow_px: (H, W, 2) float32 backward flow t -> t-1; flow_valid: (H, W) bool.
    """

    index: int
    frame_id: int
    raw: np.ndarray | None = None
    neural: np.ndarray | None = None
    label_ids: np.ndarray | None = None
    flow_px: np.ndarray | None = None
    flow_valid: np.ndarray | None = None


class RunFolder:
    """A run folder on disk: run.json, frames.jsonl, videos and optional PNG frames."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunFolderError(f"run folder {self.path} does not exist (make one with `carla-neural record`)")
        run_json = self.path / "run.json"
        if not run_json.is_file():
            raise RunFolderError(
                f"{run_json} is missing: this is not a run folder written by `carla-neural record`")
        self.info: dict[str, Any] = json.loads(run_json.read_text(encoding="utf-8"))
        self.frames = self._read_frames_jsonl()
        self.frame_ids = [int(line["frame_id"]) for line in self.frames]

    def _read_frames_jsonl(self) -> list[dict[str, Any]]:
        frames_jsonl = self.path / "frames.jsonl"
        if not frames_jsonl.is_file():
            raise RunFolderError(f"{frames_jsonl} is missing: the recorder writes it for every run; "
                                 "the run folder is incomplete")
        frames = read_frames_jsonl(frames_jsonl)
        if not frames:
            raise RunFolderError(f"{frames_jsonl} lists no frames: nothing to compare")
        return frames

    def __len__(self) -> int:
        return len(self.frames)

    def png_path(self, kind: str, frame_id: int) -> Path:
        """Path of one PNG frame: frames/<kind>/<frame_id:06d>.png."""
        return png_path(self.path, kind, frame_id)

    def has_png(self, kind: str) -> bool:
        """True when frames/<kind>/ holds a PNG for the first and the last frame."""
        return all(self.png_path(kind, frame_id).is_file() for frame_id in (self.frame_ids[0], self.frame_ids[-1]))

    def has_video(self, name: str) -> bool:
        """True when <name>.mp4 exists and is not empty."""
        video = self.path / f"{name}.mp4"
        return video.is_file() and video.stat().st_size > 0

    def _recorded_png(self) -> str:
        kinds = self.info.get("png")
        return f" (run.json lists PNG kinds {kinds})" if kinds is not None else ""

    def missing_png(self, kind: str, metric: str) -> str:
        """A one-line explanation of a missing PNG stream for `metric`."""
        return (f"{metric} needs frames/{kind}/{self.frame_ids[0]:06d}.png and the rest of frames/{kind}/"
                f"{self._recorded_png()}: {_HINTS[kind]}")

    def missing_video(self, name: str, metric: str) -> str:
        """A one-line explanation of a missing video for `metric`."""
        return f"{metric} needs {name}.mp4 or frames/{name}/*.png: {_HINTS[name]}"

    def rgb_source(self) -> str:
        """'png' when both raw and neural PNG frames exist, else 'video' (lossy H.264)."""
        return "png" if self.has_png("raw") and self.has_png("neural") else "video"

    def iter_frames(self, raw: bool = False, neural: bool = False, label_ids: bool = False,
                    flow: bool = False) -> Iterator[FrameImages]:
        """Yield the requested images of every frame in frames.jsonl order."""
        use_png = self.rgb_source() == "png"
        videos = {}
        for name, wanted in (("raw", raw), ("neural", neural)):
            if wanted and not use_png:
                videos[name] = self._iter_video(name)
        try:
            for index, frame_id in enumerate(self.frame_ids):
                images = FrameImages(index=index, frame_id=frame_id)
                if label_ids:
                    images.label_ids = self._read_png(self.png_path("label_ids", frame_id), cv2.IMREAD_UNCHANGED)
                if flow:
                    images.flow_px, images.flow_valid = read_flow_png(self.png_path("flow", frame_id))
                for name, wanted in (("raw", raw), ("neural", neural)):
                    if not wanted:
                        continue
                    if use_png:
                        bgr = self._read_png(self.png_path(name, frame_id), cv2.IMREAD_COLOR)
                        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    else:
                        rgb = next(videos[name], None)
                        if rgb is None:
                            raise RunFolderError(
                                f"{name}.mp4 ends before frame {frame_id} (frame {index + 1} of "
                                f"{len(self)} in frames.jsonl): the video is truncated")
                    setattr(images, name, self._fit(rgb, images))
                yield images
        finally:
            for video in videos.values():
                video.close()

    @staticmethod
    def _fit(rgb: np.ndarray, images: FrameImages) -> np.ndarray:
        # The recorder pads odd sides by one pixel for H.264; crop back to the label size.
        reference = images.label_ids if images.label_ids is not None else images.flow_px
        if reference is not None and rgb.shape[:2] != reference.shape[:2]:
            height, width = reference.shape[:2]
            if rgb.shape[0] < height or rgb.shape[1] < width:
                raise RunFolderError(f"frame {images.frame_id}: RGB {rgb.shape[1]}x{rgb.shape[0]} is smaller "
                                     f"than its labels {width}x{height}")
            rgb = np.ascontiguousarray(rgb[:height, :width])
        return rgb

    @staticmethod
    def _read_png(path: Path, flags: int) -> np.ndarray:
        image = cv2.imread(str(path), flags)
        if image is None:
            raise RunFolderError(f"cannot read {path}: missing or not an image (was the recording cut short?)")
        return image

    def _iter_video(self, name: str) -> Iterator[np.ndarray]:
        import av

        with av.open(str(self.path / f"{name}.mp4")) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")


def iter_image_folder(folder: str | Path) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield (path, (H, W, 3) uint8 RGB) for every image under `folder`, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"--real {folder} is not a folder of images")
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
    paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in suffixes)
    if not paths:
        raise RunFolderError(f"--real {folder} holds no images ({', '.join(sorted(suffixes))})")
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping %s: not a readable image", path)
            continue
        yield path, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def count_images(folder: str | Path) -> int:
    """Number of image files under `folder`, recursively."""
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
    return sum(1 for path in Path(folder).rglob("*") if path.suffix.lower() in suffixes)
