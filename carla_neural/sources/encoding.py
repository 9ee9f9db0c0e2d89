"""CARLA's camera encodings, decoded and encoded: BGRA images, depth, optical flow, KITTI flow PNGs.

Optical flow sign convention (decided here, used everywhere)
-------------------------------------------------------------
CARLA's `sensor.camera.optical_flow` sends two float32 per pixel in [-2, 2]. CARLA documents only
the range and the scaling by the image size. The camera is a post-process material that reads
Unreal Engine's velocity buffer (`VelocityMaterial`, see CARLA's `OpticalFlowCamera.cpp`), and UE
writes into that buffer the screen-space motion of each surface *from the previous frame to the
current one* (current minus previous position) in normalised device coordinates, whose x grows to
the right and y grows *up*, over a span of 2 per image side. Hence:

- `decode_flow_px`: pixels = (vx * W / 2, -vy * H / 2), the motion t-1 -> t of the surface seen at
  each pixel of frame t, in image axes (x right, y down). The scaling (W/2 for x, -H/2 for y) is
  the one users arrived at in carla-simulator/carla issues #4795 and #8492.
- `backward_flow_px`: vid2vid's backward flow, "sample frame t-1 at p + flow", is the opposite
  vector, (-vx * W / 2, vy * H / 2). The negation lives in `_reverse_direction` alone;
  `encode_backward_flow` (the built-in world's encoder) uses the same function, so the world and
  live CARLA share the decoder.

Issue #4795 does not contradict this. It offers two readings of the raw values: (vx, -vy) as the
forward flow t -> t+1, or (-vx, vy) (the raw x negated) as the flow t -> t-1, and reports that
warping gave the lower error with the second. The second reading is `backward_flow_px` exactly,
and it is what UE's velocity buffer (motion from the previous frame) predicts. Neither the issue
nor CARLA's documentation settles it with a measurement we can repeat here, so
`tests/integration/test_carla_server.py` warps t-1 onto t with all four sign combinations of
`backward_flow_px` on a live server and requires the one used here to give the lowest error. If it
does not, change only `_reverse_direction` and `decode_flow_px`.
"""

from __future__ import annotations


import cv2
import numpy as np

# Re-exported: run folders and datasets store flow with the one KITTI codec in renderer/.
from renderer.flow_png import decode_flow_kitti, encode_flow_kitti, read_flow_png, write_flow_png

# metres = DEPTH_FAR_M * (R + 256 G + 65536 B) / (256**3 - 1)
DEPTH_FAR_M = 1000.0
_DEPTH_SCALE = float(256**3 - 1)


def _check_bgra(bgra: np.ndarray, name: str) -> None:
    if not isinstance(bgra, np.ndarray) or bgra.ndim != 3 or bgra.shape[2] != 4 or bgra.dtype != np.uint8:
        shape = getattr(bgra, "shape", None)
        dtype = getattr(bgra, "dtype", type(bgra).__name__)
        raise ValueError(f"{name} must be an (H, W, 4) uint8 BGRA image, got shape {shape} dtype {dtype}")


def _check_flow(flow: np.ndarray, name: str = "flow") -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{name} must be an (H, W, 2) array, got shape {getattr(flow, 'shape', None)}")


def bgra_to_rgb(bgra: np.ndarray) -> np.ndarray:
    """CARLA's colour camera image (H, W, 4) uint8 BGRA -> (H, W, 3) uint8 RGB (a new array)."""
    _check_bgra(bgra, "bgra")
    # cvtColor is ~15x faster than copying a reversed channel slice at 1024x512.
    return cv2.cvtColor(np.ascontiguousarray(bgra), cv2.COLOR_BGRA2RGB)


def rgb_to_bgra(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 4) uint8 BGRA with alpha 255, as CARLA's cameras send."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)


def decode_depth_m(depth_bgra: np.ndarray) -> np.ndarray:
    """CARLA depth camera (H, W, 4) uint8 BGRA -> (H, W) float32 planar depth in metres (0..1000)."""
    _check_bgra(depth_bgra, "depth_bgra")
    channels = depth_bgra.astype(np.float32)
    # B G R order in memory: R + 256 G + 65536 B.
    normalized = (channels[:, :, 2] + 256.0 * channels[:, :, 1] + 65536.0 * channels[:, :, 0]) / _DEPTH_SCALE
    return normalized * np.float32(DEPTH_FAR_M)


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) planar depth in metres -> (H, W, 4) uint8 BGRA in CARLA's 24-bit encoding (clipped to 0..1000)."""
    if depth_m.ndim != 2:
        raise ValueError(f"depth_m must be (H, W), got shape {depth_m.shape}")
    code = np.clip(depth_m.astype(np.float64) * (_DEPTH_SCALE / DEPTH_FAR_M) + 0.5, 0, _DEPTH_SCALE)
    code = code.astype(np.uint32)
    bgra = np.empty(depth_m.shape + (4,), np.uint8)
    bgra[:, :, 2] = code & 0xFF
    bgra[:, :, 1] = (code >> 8) & 0xFF
    bgra[:, :, 0] = (code >> 16) & 0xFF
    bgra[:, :, 3] = 255
    return bgra


def _reverse_direction(flow_px: np.ndarray) -> np.ndarray:
    """The one place that knows CARLA's flow points t-1 -> t while vid2vid's points t -> t-1."""
    return np.negative(flow_px)


def decode_flow_px(flow: np.ndarray) -> np.ndarray:
    """CARLA optical flow (H, W, 2) float32 in [-2, 2] -> (H, W, 2) float32 pixels (vx W/2, -vy H/2), motion t-1 -> t."""
    _check_flow(flow)
    height, width = flow.shape[:2]
    scale = np.array([width / 2.0, -height / 2.0], np.float32)
    return flow.astype(np.float32, copy=False) * scale


def backward_flow_px(flow: np.ndarray) -> np.ndarray:
    """CARLA optical flow (H, W, 2) -> vid2vid backward flow (H, W, 2) float32 px: sample frame t-1 at p + flow."""
    return _reverse_direction(decode_flow_px(flow))


def encode_backward_flow(backward_px: np.ndarray) -> np.ndarray:
    """Backward flow (H, W, 2) px (t -> t-1) -> (H, W, 2) float32 in CARLA's encoding; inverse of backward_flow_px."""
    _check_flow(backward_px, "backward_px")
    height, width = backward_px.shape[:2]
    motion_px = _reverse_direction(backward_px.astype(np.float32, copy=False))
    scale = np.array([2.0 / width, -2.0 / height], np.float32)
    # CARLA's 16-bit transport clips to [-2, 2]; do the same so the world never emits what CARLA cannot.
    return np.clip(motion_px * scale, -2.0, 2.0).astype(np.float32, copy=False)


def warp_backward(image: np.ndarray, backward_px: np.ndarray) -> np.ndarray:
    """Sample `image` (H, W[, C]) at p + backward_px (H, W, 2) px, bilinear, border-replicated; same shape."""
    _check_flow(backward_px, "backward_px")
    height, width = backward_px.shape[:2]
    grid_x = np.arange(width, dtype=np.float32)[None, :] + backward_px[:, :, 0]
    grid_y = np.arange(height, dtype=np.float32)[:, None] + backward_px[:, :, 1]
    return cv2.remap(image, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
