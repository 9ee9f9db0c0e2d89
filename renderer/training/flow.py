"""Ground-truth optical flow for training: simulator flow when present, else OpenCV DIS, cached.

Every flow here is vid2vid's *backward* flow in pixels: for each pixel p of frame t, `flow[p]` is the
offset to where that surface was in frame t-1, so frame t is reconstructed by sampling frame t-1 at
`p + flow[p]`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from renderer.flow_png import read_flow_png, write_flow_png

log = logging.getLogger(__name__)


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DISFlow:
    """OpenCV's DIS optical flow, returning vid2vid's backward flow between two RGB frames."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {sorted(_DIS_PRESETS)}, got {preset!r}")
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def __call__(self, prev_rgb: np.ndarray, cur_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 frames t-1 and t -> (H, W, 2) float32 backward flow in pixels."""
        prev_gray = cv2.cvtColor(prev_rgb, cv2.COLOR_RGB2GRAY)
        cur_gray = cv2.cvtColor(cur_rgb, cv2.COLOR_RGB2GRAY)
        # calc(I0, I1) finds f with I0(p) ~ I1(p + f): with I0 = frame t that is the backward flow.
        return self._dis.calc(cur_gray, prev_gray, None).astype(np.float32)


class FlowCache:
    """DIS flow computed once per frame pair and kept as KITTI PNGs under `cache_dir/<seq>/<frame>.png`."""

    def __init__(self, cache_dir: str | Path | None, preset: str = "medium") -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._dis = DISFlow(preset)

    def get(self, sequence: str, frame_name: str, prev_rgb: np.ndarray, cur_rgb: np.ndarray) -> np.ndarray:
        """Backward flow of frame `frame_name` of `sequence`: (H, W, 2) float32 pixels."""
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / sequence / (Path(frame_name).stem + ".png")
            if path.exists():
                cached = read_flow_png(path)[0]
                if cached.shape[:2] == cur_rgb.shape[:2]:
                    return cached
        flow_px = self._dis(prev_rgb, cur_rgb)
        if path is not None:
            try:
                write_flow_png(path, flow_px)
            except OSError as err:  # a read-only dataset still trains, just slower
                log.warning("flow cache not written (%s); computing DIS flow on the fly", err)
                self.cache_dir = None
        return flow_px


def warp(image: torch.Tensor, flow_px: torch.Tensor) -> torch.Tensor:
    """Sample (B, C, H, W) `image` (frame t-1) at p + flow: (B, 2, H, W) pixels -> (B, C, H, W)."""
    batch, _, height, width = image.shape
    ys = torch.linspace(-1.0, 1.0, height, device=image.device, dtype=flow_px.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=image.device, dtype=flow_px.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    # Pixels -> normalised coordinates with align_corners=True: divide by (W-1)/2 and (H-1)/2.
    norm_x = grid_x + flow_px[:, 0] / max((width - 1) / 2.0, 1e-6)
    norm_y = grid_y + flow_px[:, 1] / max((height - 1) / 2.0, 1e-6)
    grid = torch.stack([norm_x, norm_y], dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def confidence_mask(cur_rgb: torch.Tensor, prev_rgb: torch.Tensor, flow_px: torch.Tensor,
                    threshold: float = 0.05) -> torch.Tensor:
    """1 where warping frame t-1 by the flow reproduces frame t: (B, 3, H, W) in [-1, 1] -> (B, 1, H, W)."""
    with torch.no_grad():
        error = (cur_rgb - warp(prev_rgb, flow_px)).abs().mean(dim=1, keepdim=True) / 2.0
        return (error < threshold).to(cur_rgb.dtype)


def resize_flow(flow_px: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (H, W, 2) flow to (height, width, 2), scaling the vectors with the image."""
    src_h, src_w = flow_px.shape[:2]
    if (src_w, src_h) == (width, height):
        return flow_px
    resized = cv2.resize(flow_px, (width, height), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= width / src_w
    resized[..., 1] *= height / src_h
    return resized
