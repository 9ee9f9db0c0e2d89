"""Optical flow stored as KITTI 16-bit PNGs: lossless to 1/64 px, readable by common flow tools.

Numpy and OpenCV only (no torch), so that run folders, datasets and the training flow cache share
one codec. value = flow_px * 64 + 2**15 per channel; the third channel is the valid flag.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_KITTI_SCALE = 64.0
_KITTI_OFFSET = 2.0**15


def encode_flow_kitti(flow_px: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 2) float flow in px -> (H, W, 3) uint16 KITTI flow in RGB order (u, v, valid); |flow| < 512 px."""
    if not isinstance(flow_px, np.ndarray) or flow_px.ndim != 3 or flow_px.shape[2] != 2:
        raise ValueError(f"flow_px must be an (H, W, 2) array, got shape {getattr(flow_px, 'shape', None)}")
    coded = np.clip(flow_px.astype(np.float64) * _KITTI_SCALE + _KITTI_OFFSET + 0.5, 0, 65535).astype(np.uint16)
    valid_u16 = np.ones(flow_px.shape[:2], np.uint16) if valid is None else valid.astype(np.uint16)
    return np.dstack([coded[:, :, 0], coded[:, :, 1], valid_u16])


def decode_flow_kitti(kitti_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint16 KITTI flow (u, v, valid) -> ((H, W, 2) float32 flow px, (H, W) bool valid)."""
    if kitti_rgb.ndim != 3 or kitti_rgb.shape[2] != 3 or kitti_rgb.dtype != np.uint16:
        raise ValueError(
            f"a KITTI flow image is (H, W, 3) uint16, got shape {kitti_rgb.shape} dtype {kitti_rgb.dtype}"
        )
    flow_px = (kitti_rgb[:, :, :2].astype(np.float32) - np.float32(_KITTI_OFFSET)) / np.float32(_KITTI_SCALE)
    return flow_px, kitti_rgb[:, :, 2] > 0


def write_flow_png(path: str | Path, flow_px: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write (H, W, 2) flow in px to a KITTI 16-bit PNG, creating its folder if needed."""
    kitti_rgb = encode_flow_kitti(flow_px, valid)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # OpenCV writes BGR order; KITTI's file has u in R.
    if not cv2.imwrite(str(path), kitti_rgb[:, :, ::-1].copy()):
        raise OSError(f"could not write flow PNG {path}: check that the folder is writable")


def read_flow_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI 16-bit flow PNG -> ((H, W, 2) float32 flow px, (H, W) bool valid)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read flow PNG {path}: missing or not an image")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint16:
        raise ValueError(f"{path} is not a KITTI flow PNG (want 3-channel 16-bit, got {image.shape} {image.dtype})")
    return decode_flow_kitti(image[:, :, ::-1])
