"""Training frames for the segmenter, decoded and resized once and kept in memory; random crop batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from renderer.segmenter.classes import IGNORE, NUM_CLASSES, label_ids_to_train_ids
from renderer.training.datasets import DatasetError, Sequence, read_label_ids, read_rgb

log = logging.getLogger(__name__)


@dataclass
class FrameBank:
    """rgb (N, H, W, 3) uint8 and train_ids (N, H, W) uint8 at the working size; names "seq/frame"."""

    rgb: np.ndarray
    train_ids: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def class_pixel_counts(self) -> np.ndarray:
        """(19,) int64 pixels of each train class (ignore left out)."""
        flat = self.train_ids[self.train_ids != IGNORE]
        return np.bincount(flat, minlength=NUM_CLASSES).astype(np.int64)


def load_frame_bank(sequences: list[Sequence], width: int, height: int, progress=None) -> FrameBank:
    """Decode every frame of `sequences` once: photos area-resized, labels nearest-resized to width x height."""
    total = sum(len(seq) for seq in sequences)
    if total == 0:
        raise DatasetError("the chosen sequences hold no frames")
    rgb = np.empty((total, height, width, 3), np.uint8)
    train_ids = np.empty((total, height, width), np.uint8)
    names = []
    for seq in sequences:
        for label_path, rgb_path in zip(seq.label_paths, seq.rgb_paths):
            labels, photo = read_label_ids(label_path), read_rgb(rgb_path)
            if labels.shape != photo.shape[:2]:
                raise DatasetError(f"{rgb_path} is {photo.shape[1]}x{photo.shape[0]} but its labels {label_path} "
                                   f"are {labels.shape[1]}x{labels.shape[0]}; they must match")
            index = len(names)
            rgb[index] = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
            train_ids[index] = label_ids_to_train_ids(
                cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST))
            names.append(f"{seq.name}/{rgb_path.stem}")
            if progress is not None:
                progress.update(1)
    return FrameBank(rgb, train_ids, names)


def random_batch(bank: FrameBank, rng: np.random.Generator, batch_size: int, crop_width: int, crop_height: int,
                 jitter: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random crops with horizontal flips and colour jitter.

    Returns rgb (B, 3, h, w) float32 in [0, 1] and train_ids (B, h, w) int64 (255 ignore). Jitter
    scales brightness, contrast and saturation by factors in [1 - jitter, 1 + jitter].
    """
    _, height, width = bank.train_ids.shape
    if crop_width > width or crop_height > height:
        raise ValueError(f"crop {crop_width}x{crop_height} is larger than the frames {width}x{height}")
    images, targets = [], []
    for _ in range(batch_size):
        index = int(rng.integers(len(bank)))
        x0, y0 = int(rng.integers(width - crop_width + 1)), int(rng.integers(height - crop_height + 1))
        image = bank.rgb[index, y0:y0 + crop_height, x0:x0 + crop_width].astype(np.float32) / 255.0
        target = bank.train_ids[index, y0:y0 + crop_height, x0:x0 + crop_width]
        if rng.random() < 0.5:
            image, target = image[:, ::-1], target[:, ::-1]
        if jitter > 0:
            brightness, contrast, saturation = rng.uniform(1 - jitter, 1 + jitter, size=3)
            image = image * brightness
            image = (image - image.mean()) * contrast + image.mean()
            grey = image.mean(axis=2, keepdims=True)
            image = np.clip((image - grey) * saturation + grey, 0.0, 1.0)
        images.append(np.ascontiguousarray(image, dtype=np.float32))
        targets.append(np.ascontiguousarray(target))
    rgb = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return rgb, torch.from_numpy(np.stack(targets)).long()
