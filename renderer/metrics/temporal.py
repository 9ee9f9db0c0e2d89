"""Temporal consistency: warping error under ground-truth flow, and tOF with OpenCV's DIS flow.

Flow convention (docs/contracts.md): `flow_px` is backward flow t -> t-1 in pixels, (H, W, 2)
float32 (dx, dy): the surface at pixel p of frame t was at p + flow_px[p] in frame t-1.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@functools.lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    # Cached: building the grid costs as much as the warp itself at 512 x 256.
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid_x.flags.writeable = False
    grid_y.flags.writeable = False
    return grid_x, grid_y


def _sample_maps(flow_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grid_x, grid_y = _pixel_grid(*flow_px.shape[:2])
    return grid_x + flow_px[..., 0], grid_y + flow_px[..., 1]


def backward_warp(prev_image: np.ndarray, flow_px: np.ndarray,
                  nearest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Warp frame t-1 onto frame t: (H, W[, C]) image, (H, W, 2) float32 flow -> (warped, inside).

    `warped` has the image's shape and dtype (bilinear, or nearest for label maps); `inside` is
    (H, W) bool, False where p + flow falls outside frame t-1.
    """
    if prev_image.shape[:2] != flow_px.shape[:2]:
        raise ValueError(f"image {prev_image.shape[:2]} and flow {flow_px.shape[:2]} differ in size")
    map_x, map_y = _sample_maps(flow_px.astype(np.float32, copy=False))
    height, width = flow_px.shape[:2]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    warped = cv2.remap(prev_image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return warped, inside


def label_consistency_mask(prev_label_ids: np.ndarray, label_ids: np.ndarray,
                           flow_px: np.ndarray) -> np.ndarray:
    """(H, W) bool: True where frame t's class equals the warped class of frame t-1.

    Disoccluded and occluded pixels mostly change class across the flow, so this masks them out
    (same-class occlusions, e.g. car behind car, pass; pass instance ids to catch those too).
    """
    warped, inside = backward_warp(prev_label_ids, flow_px, nearest=True)
    return inside & (warped == label_ids)


def warping_error(prev_rgb: np.ndarray, rgb: np.ndarray, flow_px: np.ndarray,
                  valid_mask: np.ndarray | None = None) -> float:
    """Warping error of one frame pair: (H, W, 3) uint8 x2, (H, W, 2) float32 flow -> float.

    Mean over valid pixels of the squared L2 distance (summed over RGB, values in [0, 1])
    between frame t and frame t-1 warped by the flow (Lai et al. 2018). `valid_mask` (H, W) bool
    is ANDed with "sample inside frame t-1". NaN when no pixel is valid.
    """
    if prev_rgb.shape != rgb.shape:
        raise ValueError(f"frames differ in shape: {prev_rgb.shape} vs {rgb.shape}")
    warped, inside = backward_warp(prev_rgb.astype(np.float32) / 255.0, flow_px)
    valid = inside if valid_mask is None else inside & valid_mask
    if not valid.any():
        return math.nan
    squared = np.sum((rgb.astype(np.float32) / 255.0 - warped) ** 2, axis=-1)
    return float(squared[valid].mean())


class WarpingErrorStream:
    """Per-frame warping error of a video fed frame by frame; keeps only the previous frame."""

    def __init__(self) -> None:
        self._prev_rgb: np.ndarray | None = None
        self.values: list[float] = []

    def update(self, rgb: np.ndarray, flow_px: np.ndarray | None,
               valid_mask: np.ndarray | None = None) -> float | None:
        """Add frame t ((H, W, 3) uint8) with its backward flow; its error, or None for frame 0."""
        value = None
        if self._prev_rgb is not None and flow_px is not None:
            value = warping_error(self._prev_rgb, rgb, flow_px, valid_mask)
            self.values.append(value)
        self._prev_rgb = rgb
        return value

    def reset(self) -> None:
        """Forget the previous frame (at a cut or a missing flow)."""
        self._prev_rgb = None


def dis_flow(prev_rgb: np.ndarray, rgb: np.ndarray, estimator: cv2.DISOpticalFlow) -> np.ndarray:
    """Estimated backward flow t -> t-1 of two (H, W, 3) uint8 RGB frames: (H, W, 2) float32."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    prev_gray = cv2.cvtColor(prev_rgb, cv2.COLOR_RGB2GRAY)
    # calc(I0, I1) returns f with I0(p) ~ I1(p + f): with I0 = frame t this is the backward flow.
    return estimator.calc(gray, prev_gray, None)


def flow_difference(flow_a: np.ndarray, flow_b: np.ndarray) -> float:
    """Mean per-pixel L1 norm |du| + |dv| of the difference of two (H, W, 2) flows, in pixels."""
    return float(np.abs(flow_a - flow_b).sum(axis=-1).mean())


class TemporalFlowDifference:
    """tOF stream (Chu et al. 2020, TecoGAN): per frame, the flow difference between a
    synthesized video and its reference video, each flow estimated with OpenCV's DIS."""

    def __init__(self, preset: str = "fast") -> None:
        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset {preset!r} unknown; choose one of {sorted(DIS_PRESETS)}")
        self._estimator = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.values: list[float] = []
        self.last_reference_flow: np.ndarray | None = None

    def update(self, rgb: np.ndarray, reference_rgb: np.ndarray) -> float | None:
        """Add frame t of both videos ((H, W, 3) uint8 each); its tOF in pixels, None for frame 0."""
        if rgb.shape != reference_rgb.shape:
            raise ValueError(f"synthesized {rgb.shape} and reference {reference_rgb.shape} differ")
        value = None
        if self._prev is not None:
            prev_rgb, prev_reference = self._prev
            flow = dis_flow(prev_rgb, rgb, self._estimator)
            self.last_reference_flow = dis_flow(prev_reference, reference_rgb, self._estimator)
            value = flow_difference(flow, self.last_reference_flow)
            self.values.append(value)
        self._prev = (rgb, reference_rgb)
        return value

    def reset(self) -> None:
        """Forget the previous frames."""
        self._prev = None
