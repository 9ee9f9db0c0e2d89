"""The 19 Cityscapes train classes: names, colours and the labelId -> trainId table (cityscapesscripts)."""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS

IGNORE = 255
NUM_CLASSES = 19

_TRAIN = sorted((label for label in _CITYSCAPES_LABELS if 0 <= label.trainId < IGNORE),
                key=lambda label: label.trainId)
CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in _TRAIN)
CLASS_COLORS = np.array([label.color for label in _TRAIN], dtype=np.uint8)  # (19, 3) RGB


def _label_to_train_table() -> np.ndarray:
    # cityscapesscripts marks ignored labels with 255 and the licence plate with -1: both are ignored.
    table = np.full(256, IGNORE, dtype=np.uint8)
    for label in _CITYSCAPES_LABELS:
        if 0 <= label.id < 256 and 0 <= label.trainId < IGNORE:
            table[label.id] = label.trainId
    return table


LABEL_TO_TRAIN = _label_to_train_table()  # (256,) uint8


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes labelIds (H, W) uint8 -> trainIds (H, W) uint8 in 0..18, 255 where ignored."""
    return LABEL_TO_TRAIN[np.asarray(label_ids, dtype=np.uint8)]


def colorize_train_ids(train_ids: np.ndarray) -> np.ndarray:
    """trainIds (H, W) uint8 -> (H, W, 3) uint8 RGB in the Cityscapes palette (ignore: black)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:NUM_CLASSES] = CLASS_COLORS
    return palette[np.asarray(train_ids, dtype=np.uint8)]
