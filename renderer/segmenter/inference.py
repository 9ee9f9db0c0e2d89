"""Run the segmenter on frames of any size: resize to its working size, predict, back to the frame size."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from renderer.cpus import torch_threads
from renderer.segmenter.model import Segmenter


def _to_working_size(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrinking = rgb.shape[1] > width
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def frames_to_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB frames of one size -> (N, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def predict_train_ids(segmenter: Segmenter, rgb_frames: Sequence[np.ndarray], batch_size: int = 4,
                      threads: int | None = None) -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB frames -> (H, W) uint8 trainIds each (0..18), at each frame's own size.

    Frames go through the net at its working size (config.input_width x input_height) in batches of
    `batch_size`; the logits are upsampled bilinearly to the frame's size before the argmax.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    config = segmenter.config
    device = next(segmenter.parameters()).device
    segmenter.eval()
    predictions: list[np.ndarray] = []
    with torch_threads(threads):
        for start in range(0, len(rgb_frames), batch_size):
            chunk = rgb_frames[start:start + batch_size]
            for frame in chunk:
                if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                    raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
            small = [_to_working_size(frame, config.input_width, config.input_height) for frame in chunk]
            logits = segmenter(frames_to_tensor(small).to(device))
            for frame, frame_logits in zip(chunk, logits):
                if frame.shape[:2] != tuple(frame_logits.shape[-2:]):
                    frame_logits = F.interpolate(frame_logits[None], size=frame.shape[:2], mode="bilinear",
                                                 align_corners=False)[0]
                predictions.append(frame_logits.argmax(0).to(torch.uint8).cpu().numpy())
    return predictions
