"""Instance boundaries as vid2vid sees them: one rule for numpy (client hosts, datasets) and torch
(the model's input), with no torch import here (client hosts import this too)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Mask = TypeVar("Mask")


def mark_edges(edges: Mask, instance_ids: object) -> Mask:
    """Set `edges` (bool, the shape of instance_ids; numpy array or torch tensor) True where a
    4-neighbour along the last two axes has another id; returns `edges`."""
    horizontal = instance_ids[..., :, 1:] != instance_ids[..., :, :-1]  # type: ignore[index]
    vertical = instance_ids[..., 1:, :] != instance_ids[..., :-1, :]  # type: ignore[index]
    edges[..., :, 1:] |= horizontal  # type: ignore[index]
    edges[..., :, :-1] |= horizontal  # type: ignore[index]
    edges[..., 1:, :] |= vertical  # type: ignore[index]
    edges[..., :-1, :] |= vertical  # type: ignore[index]
    return edges


def instance_edges(instance_ids: np.ndarray) -> np.ndarray:
    """(H, W) int instance ids -> (H, W) bool, True where a 4-neighbour has another id."""
    return mark_edges(np.zeros(instance_ids.shape, bool), instance_ids)
