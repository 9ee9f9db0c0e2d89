"""Replay a recorded run folder as a Source: its label maps, instances, colour frames and flow.

The run folder (docs/contracts.md) stores Cityscapes labelIds and instance ids; a replayed Frame
carries them as they are (`Frame.label_ids`, `Frame.instance_ids`), so the pipeline renders
exactly the recorded label maps and remaps nothing. Needs the run's PNG frames (record with
`label_ids` PNGs on).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from carla_neural.recorder import png_path, read_frames_jsonl
from carla_neural.sources.base import Frame, Source
from carla_neural.sources.encoding import encode_backward_flow, read_flow_png, rgb_to_bgra

log = logging.getLogger(__name__)


class EndOfReplay(EOFError):
    """Every recorded frame has been replayed."""


class ReplaySource(Source):
    """Frames read back from a run folder written by the recorder; `len()` is the frame count."""

    def __init__(self, run_dir: str | Path, loop: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.loop = loop
        frames_dir = png_path(self.run_dir, "label_ids", 0).parent
        if not frames_dir.is_dir():
            raise FileNotFoundError(
                f"{self.run_dir} has no frames/label_ids/: replay needs a run recorded with "
                "label_ids PNGs (carla-neural record writes them)"
            )
        run_json = self.run_dir / "run.json"
        self.run_info = json.loads(run_json.read_text()) if run_json.is_file() else {}
        jsonl = self.run_dir / "frames.jsonl"
        lines = read_frames_jsonl(jsonl) if jsonl.is_file() else []
        sim_times = {int(line["frame_id"]): float(line.get("sim_time", 0.0)) for line in lines}
        self.frame_ids = sorted(int(path.stem) for path in frames_dir.glob("*.png"))
        if not self.frame_ids:
            raise FileNotFoundError(f"{frames_dir} holds no PNG frames")
        fps = float(self.run_info.get("fps", 20.0))
        self._sim_times = [sim_times.get(fid, index / fps) for index, fid in enumerate(self.frame_ids)]
        self._next = 0
        self.fps = fps
        kinds = {"rgb": "raw", "instance": "instance_ids", "flow": "flow"}
        self.sensors = ("semantic",) + tuple(
            sensor for sensor, kind in kinds.items() if png_path(self.run_dir, kind, self.frame_ids[0]).is_file())

    def __len__(self) -> int:
        return len(self.frame_ids)

    def _png(self, kind: str, frame_id: int, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
        path = png_path(self.run_dir, kind, frame_id)
        if not path.is_file():
            return None
        image = cv2.imread(str(path), flags)
        if image is None:
            raise OSError(f"cannot decode {path}")
        return image

    def tick(self) -> Frame:
        """The next recorded frame (raises EndOfReplay after the last one unless looping)."""
        if self._next >= len(self.frame_ids):
            if not self.loop:
                raise EndOfReplay(f"replayed all {len(self.frame_ids)} frames of {self.run_dir}")
            self._next = 0
        index = self._next
        self._next += 1
        frame_id = self.frame_ids[index]
        label_ids = self._png("label_ids", frame_id, cv2.IMREAD_GRAYSCALE)
        instance_ids = self._png("instance_ids", frame_id)  # (H, W) uint16 as the recorder wrote it
        raw = self._png("raw", frame_id, cv2.IMREAD_COLOR)
        flow = None
        flow_path = png_path(self.run_dir, "flow", frame_id)
        if flow_path.is_file():
            flow = encode_backward_flow(read_flow_png(flow_path)[0])
        frame = Frame(
            frame_id=frame_id,
            sim_time=self._sim_times[index],
            semantic_bgra=None,
            rgb_bgra=rgb_to_bgra(cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)) if raw is not None else None,
            flow=flow,
            tag_scheme=self.tag_scheme,
            label_ids=label_ids,
            instance_ids=instance_ids.astype(np.int32) if instance_ids is not None else None,
        )
        return frame
