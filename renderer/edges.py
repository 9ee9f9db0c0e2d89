"""Instance boundaries as vid2vid sees them, in numpy (no torch: client hosts import this too)."""

from __future__ import annotations

import numpy as np


def instance_edges(instance_ids: np.ndarray) -> np.ndarray:
    """(H, W) int instance ids -> (H, W) bool, True where a 4-neighbour has another id."""
    edges = np.zeros(instance_ids.shape, bool)
    horizontal = instance_ids[:, 1:] != instance_ids[:, :-1]
    vertical = instance_ids[1:, :] != instance_ids[:-1, :]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    return edges
