"""Peak signal-to-noise ratio between two images."""

from __future__ import annotations

import math

import numpy as np


def psnr(rgb: np.ndarray, reference_rgb: np.ndarray, max_value: float = 255.0) -> float:
    """PSNR in dB of `rgb` against `reference_rgb`, both (H, W, C) of the same dtype and range.

    Identical images give `inf`. uint8 images use max_value 255; float images in [0, 1] need
    max_value=1.0.
    """
    if rgb.shape != reference_rgb.shape:
        raise ValueError(f"PSNR needs images of one shape, got {rgb.shape} and {reference_rgb.shape}")
    squared_error = np.mean((rgb.astype(np.float64) - reference_rgb.astype(np.float64)) ** 2)
    if squared_error == 0.0:
        return math.inf
    return float(10.0 * math.log10(max_value**2 / squared_error))
