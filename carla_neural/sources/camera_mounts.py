"""Where the camera rig sits on the ego vehicle: named mounts (TAB cycles them) or explicit ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CameraMount:
    """A camera transform relative to the vehicle: metres (x forward, y right, z up), degrees."""

    x: float = 1.0
    y: float = 0.0
    z: float = 1.6
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


# The same names, places and order (TAB cycles them) as the built-in world's mounts
# (carla_neural/sources/world/camera.py), so a scenario's mount means one view on both.
# "hood" sits where Cityscapes' camera sat, looking ahead: the view vid2vid models know.
CAMERA_MOUNTS: dict[str, CameraMount] = {
    "hood": CameraMount(x=0.95, z=1.45, pitch=-3.0),
    "chase": CameraMount(x=-6.5, z=2.9, pitch=-12.0),
    "roof": CameraMount(x=-0.2, z=2.2, pitch=-6.0),
    "bumper": CameraMount(x=2.45, z=0.65, pitch=0.0),
    # Fitted to the viewpoint of the real Cityscapes maps (horizon row, road and sky share per row,
    # no bonnet in view) by `python -m domain_adapt.fit_mount`; see docs/domain_adapt.md.
    "cityscapes": CameraMount(x=1.8, z=1.2, pitch=-2.0),
}

# The horizontal field of view a mount is meant for, where it needs its own (scenarios use it
# when they name the mount and set no fov); Cityscapes' camera saw about 50 degrees.
MOUNT_FOV_DEG: dict[str, float] = {"cityscapes": 50.0}


def camera_mount(name: str) -> CameraMount:
    """The named mount, or ValueError listing the names."""
    try:
        return CAMERA_MOUNTS[name]
    except KeyError:
        raise ValueError(f"unknown camera mount {name!r}; choose one of {', '.join(CAMERA_MOUNTS)}") from None
