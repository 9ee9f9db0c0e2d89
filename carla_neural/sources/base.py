"""What every source yields (a Frame of CARLA-encoded camera images) and accepts (controls)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np


@dataclass
class VehicleControl:
    """A vehicle command with CARLA's ranges: throttle/brake in [0, 1], steer in [-1, 1]."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False


@dataclass
class EgoState:
    """The ego vehicle at one tick: position in metres, yaw in degrees, speed in m/s."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw_deg: float = 0.0
    speed_mps: float = 0.0
    autopilot: bool = False
    control: VehicleControl = field(default_factory=VehicleControl)


@dataclass
class Frame:
    """One simulator tick: the images of cameras sharing one transform, in CARLA's encodings.

    semantic_bgra: (H, W, 4) uint8, the tag in channel 2 (red); tag scheme named by `tag_scheme`;
                   None where the frame carries `label_ids` instead.
    instance_bgra: (H, W, 4) uint8, tag in channel 2, object id = G + 256 * B; or None.
    rgb_bgra:      (H, W, 4) uint8, CARLA's colour camera; or None.
    depth_bgra:    (H, W, 4) uint8, metres = 1000 * (R + 256 G + 65536 B) / (256**3 - 1); or None.
    flow:          (H, W, 2) float32 in CARLA's optical-flow encoding ([-2, 2]); or None.
    label_ids:     (H, W) uint8 Cityscapes labelIds already decoded (a replayed run); or None.
                   When set, the pipeline uses them (and `instance_ids`) and remaps nothing.
    instance_ids:  (H, W) int32 Cityscapes-style instance ids beside `label_ids`; or None.
    """

    frame_id: int
    sim_time: float
    semantic_bgra: np.ndarray | None
    instance_bgra: np.ndarray | None = None
    rgb_bgra: np.ndarray | None = None
    depth_bgra: np.ndarray | None = None
    flow: np.ndarray | None = None
    tag_scheme: str = "0.9.14"
    ego: EgoState | None = None
    # Milliseconds spent per pipeline stage on this frame ("world", "remap", "render", ...).
    timings_ms: dict[str, float] = field(default_factory=dict)
    label_ids: np.ndarray | None = None
    instance_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.semantic_bgra is None and self.label_ids is None:
            raise ValueError(f"frame {self.frame_id}: give semantic_bgra (CARLA tags) or label_ids (Cityscapes)")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the cameras."""
        labels = self.semantic_bgra if self.semantic_bgra is not None else self.label_ids
        assert labels is not None
        height, width = labels.shape[:2]
        return width, height


class Source(abc.ABC):
    """A stream of frames from a simulator; a context manager that cleans up on exit."""

    weather_presets: tuple[str, ...] = ()
    # The name of the weather preset in force: an attribute or a property of each source.
    weather: str = ""
    # Named camera positions on the ego car, in the order TAB cycles through them.
    camera_mounts: tuple[str, ...] = ()
    # The sensors each Frame carries (of semantic, instance, rgb, depth, flow).
    sensors: tuple[str, ...] = ("semantic",)
    # The CARLA tag scheme of semantic_bgra ("0.9.14", "0.9.13"; see carla_neural.remap_tables),
    # which each source knows best: the live CARLA source reads it from the server's version.
    tag_scheme: str = "0.9.14"

    @abc.abstractmethod
    def tick(self) -> Frame:
        """Advance the simulation by one fixed step and return that step's frame."""

    def apply_control(self, control: VehicleControl) -> None:
        """Drive the ego vehicle manually (turns autopilot off until set_autopilot(True))."""
        raise NotImplementedError(f"{type(self).__name__} cannot be driven")

    def set_autopilot(self, enabled: bool) -> None:
        """Hand the ego vehicle to (or take it back from) the source's autopilot."""
        raise NotImplementedError(f"{type(self).__name__} has no autopilot")

    def set_weather(self, preset: str) -> None:
        """Switch to a named weather preset (one of `weather_presets`)."""
        raise NotImplementedError(f"{type(self).__name__} has no weather")

    @property
    def mount(self) -> str:
        """The name of the camera mount in use (one of `camera_mounts`)."""
        raise NotImplementedError(f"{type(self).__name__} has no camera mounts")

    def set_mount(self, name: str) -> None:
        """Move every camera to a named mount (one of `camera_mounts`)."""
        raise NotImplementedError(f"{type(self).__name__} has no camera mounts")

    def next_mount(self) -> str:
        """Move the cameras to the mount after the current one (TAB) and return its name."""
        names = self.camera_mounts
        if not names:
            raise NotImplementedError(f"{type(self).__name__} has no camera mounts")
        following = names[(names.index(self.mount) + 1) % len(names)]
        self.set_mount(following)
        return following

    def close(self) -> None:
        """Release everything the source holds; safe to call twice."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
