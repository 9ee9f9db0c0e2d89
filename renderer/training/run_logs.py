"""What a training run writes as it goes: tensorboard scalars, the JSONL log, sample videos."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch


def log_scalars(writer: Any, values: dict[str, float], step: int) -> None:
    """Finite scalars to tensorboard: names ending in PSNR under quality/, the rest under loss/."""
    for name, value in values.items():
        if math.isfinite(value):
            writer.add_scalar(f"quality/{name}" if name.endswith("PSNR") else f"loss/{name}", value, step)


def append_log_line(path: Path, step: int, values: dict[str, float]) -> None:
    """One JSON line {"step": step, **values} appended to `path`."""
    with open(path, "a") as log_file:
        log_file.write(json.dumps({"step": step, **values}) + "\n")


def write_sample_video(frames: torch.Tensor, path: Path) -> None:
    """(T, 3, H, W) float in [0, 1] -> an H.264 file (skipped when PyAV is missing on a worker host)."""
    try:
        import av
    except ImportError:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = (frames.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    height, width = rgb.shape[1] // 2 * 2, rgb.shape[2] // 2 * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
