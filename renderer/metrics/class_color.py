"""Per-class colour statistics: mean RGB of each label class over a stream of frames."""

from __future__ import annotations

import numpy as np

NUM_LABEL_VALUES = 256


class ClassColorStats:
    """Accumulates, per label id, the pixel count and the sum of RGB over many frames."""

    def __init__(self) -> None:
        self.pixel_counts = np.zeros(NUM_LABEL_VALUES, np.int64)
        self.rgb_sums = np.zeros((NUM_LABEL_VALUES, 3), np.float64)

    def update(self, rgb: np.ndarray, label_ids: np.ndarray) -> None:
        """Add one frame: (H, W, 3) uint8 RGB and its (H, W) uint8 label ids."""
        if rgb.shape[:2] != label_ids.shape or rgb.shape[-1] != 3:
            raise ValueError(f"rgb {rgb.shape} does not fit label ids {label_ids.shape}")
        flat_labels = label_ids.reshape(-1).astype(np.intp)
        flat_rgb = rgb.reshape(-1, 3)
        self.pixel_counts += np.bincount(flat_labels, minlength=NUM_LABEL_VALUES)
        for channel in range(3):
            self.rgb_sums[:, channel] += np.bincount(
                flat_labels, weights=flat_rgb[:, channel], minlength=NUM_LABEL_VALUES)

    def mean_rgb(self) -> dict[int, tuple[float, float, float]]:
        """{label id: mean (R, G, B) in 0..255} for every label id seen at least once."""
        present = np.nonzero(self.pixel_counts)[0]
        means = self.rgb_sums[present] / self.pixel_counts[present, None]
        return {int(label): tuple(float(v) for v in mean) for label, mean in zip(present, means)}
