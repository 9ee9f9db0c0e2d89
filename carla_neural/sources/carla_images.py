"""View `carla.Image` / `carla.OpticalFlowImage` buffers as numpy arrays without copying.

`raw_data` of a CARLA measurement is a memoryview over memory the measurement owns, and
that memoryview does not keep the measurement alive. A plain `np.frombuffer(image.raw_data)`
would therefore dangle once the measurement is garbage-collected. The views made here carry a
reference to the measurement in the array's `base`, so the pixels live exactly as long as any
array that looks at them. Needs no `carla` import: anything with `raw_data`, `width` and
`height` works.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class CarlaMeasurement(Protocol):
    """The part of `carla.Image` / `carla.OpticalFlowImage` we read."""

    width: int
    height: int
    frame: int
    timestamp: float
    raw_data: Any


class _PinnedBuffer:
    """Exposes a numpy view through `__array_interface__` while holding its owner alive."""

    def __init__(self, view: np.ndarray, owner: object) -> None:
        self.__array_interface__ = view.__array_interface__
        self._view = view
        self._owner = owner


def _pinned_view(measurement: CarlaMeasurement, dtype: np.dtype, channels: int) -> np.ndarray:
    raw = np.frombuffer(measurement.raw_data, dtype=dtype)
    expected = measurement.height * measurement.width * channels
    if raw.size != expected:
        raise ValueError(
            f"sensor buffer holds {raw.size} {np.dtype(dtype).name} values, expected "
            f"{measurement.height}x{measurement.width}x{channels} = {expected}; wrong sensor type?"
        )
    view = raw.reshape(measurement.height, measurement.width, channels)
    pinned = np.asarray(_PinnedBuffer(view, measurement))
    pinned.flags.writeable = False
    return pinned


def image_to_bgra(image: CarlaMeasurement) -> np.ndarray:
    """A camera image (RGB, semantic, instance, depth) as a read-only (H, W, 4) uint8 BGRA view."""
    return _pinned_view(image, np.dtype(np.uint8), 4)


def flow_image_to_array(flow_image: CarlaMeasurement) -> np.ndarray:
    """An optical-flow image as a read-only (H, W, 2) float32 view in CARLA's [-2, 2] encoding."""
    return _pinned_view(flow_image, np.dtype(np.float32), 2)
