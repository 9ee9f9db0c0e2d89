"""Picture strips a person looks at: one row per chosen frame of a sequence rendered in order,
(labels | neural | photo) on real sequences and (raw | labels | neural) on the built-in world.

Strips of real data hold the dataset's photos and label maps: write them outside the repository
(Cityscapes terms). Only strips of the built-in world belong in docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from carla_neural.remap import colorize_label_ids

HEADER_PX = 18
GAP_PX = 2


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    """(H, W, 3) uint8 -> (HEADER_PX + H, W, 3) with `title` written above it."""
    header = np.full((HEADER_PX, panel.shape[1], 3), 24, np.uint8)
    cv2.putText(header, title, (4, HEADER_PX - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([header, panel], axis=0)


def strip(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], row_names: Sequence[str]) -> np.ndarray:
    """Panels (each (H, W, 3) uint8, one list per row) -> one (N*(H+header), cols*W, 3) uint8 image,
    each row's panels titled `titles[k] + row name`."""
    lines = []
    for panels, row_name in zip(rows, row_names):
        titled = [_titled(panel, f"{title} - {row_name}") for panel, title in zip(panels, titles)]
        gap = np.full((titled[0].shape[0], GAP_PX, 3), 255, np.uint8)
        line = titled[0]
        for panel in titled[1:]:
            line = np.concatenate([line, gap, panel], axis=1)
        lines.append(line)
    gap = np.full((GAP_PX, lines[0].shape[1], 3), 255, np.uint8)
    image = lines[0]
    for line in lines[1:]:
        image = np.concatenate([image, gap, line], axis=0)
    return image


Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


def render_rows(frames: Sequence, pick: Sequence[int], steps: Sequence[Step],
                real_photo_last: bool) -> list[list[np.ndarray]]:
    """Render `frames` (EvalFrames) in order with each of `steps` ((H, W) uint8 labels, (H, W) int32
    instances -> (H, W, 3) uint8) and return the panels of the frames `pick`: (labels, neural...,
    photo) when `real_photo_last`, else (raw, labels, neural...), one neural panel per step."""
    wanted = set(pick)
    rows: dict[int, list[np.ndarray]] = {}
    for index, frame in enumerate(frames[: max(pick) + 1]):
        neural = [step(frame.label_ids, frame.instance_ids) for step in steps]
        if index in wanted:
            labels = colorize_label_ids(frame.label_ids)
            rows[index] = [labels, *neural, frame.rgb] if real_photo_last else [frame.rgb, labels, *neural]
    return [rows[index] for index in pick]


def write_png(image: np.ndarray, path: Path) -> Path:
    """(H, W, 3) uint8 RGB -> a PNG at `path` (folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path
