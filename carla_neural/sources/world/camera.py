"""Cameras on the ego car: mounts, pinhole intrinsics like CARLA's, and world <-> camera transforms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mount:
    """Where a camera sits on the ego car: metres forward, left and up from the car's ground centre."""

    forward: float
    left: float
    up: float
    pitch_deg: float


# The display's TAB key cycles these in this order.
MOUNTS: dict[str, Mount] = {
    "hood": Mount(0.95, 0.0, 1.45, -3.0),
    "chase": Mount(-6.5, 0.0, 2.9, -12.0),
    "roof": Mount(-0.2, 0.0, 2.2, -6.0),
    "bumper": Mount(2.45, 0.0, 0.65, 0.0),
    "cityscapes": Mount(1.8, 0.0, 1.2, -2.0),
}


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: position (3,), rotation (3, 3) whose columns are its right, down, forward axes."""

    position: np.ndarray
    rotation: np.ndarray
    width: int
    height: int
    focal: float
    near: float = 0.1

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera coordinates (x right, y down, z forward)."""
        return (points - self.position) @ self.rotation

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera coordinates -> (..., 2) pixel coordinates (valid where z > 0)."""
        z = points_cam[..., 2:3]
        return points_cam[..., :2] * (self.focal / z) + np.array([self.cx, self.cy])


def focal_from_fov(width: int, fov_deg: float) -> float:
    """Focal length in pixels of a camera `width` pixels wide with horizontal field of view `fov_deg`."""
    return width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def mounted_camera(x: float, y: float, yaw: float, mount: Mount, width: int, height: int, fov_deg: float) -> Camera:
    """The camera on a car at (x, y) heading `yaw` (radians, counter-clockwise from +x)."""
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    position = np.array([
        x + mount.forward * cos_yaw - mount.left * sin_yaw,
        y + mount.forward * sin_yaw + mount.left * cos_yaw,
        mount.up,
    ])
    pitch = math.radians(mount.pitch_deg)
    forward = np.array([math.cos(pitch) * cos_yaw, math.cos(pitch) * sin_yaw, math.sin(pitch)])
    right = np.array([sin_yaw, -cos_yaw, 0.0])
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward], axis=1)
    return Camera(position, rotation, width, height, focal_from_fov(width, fov_deg))
