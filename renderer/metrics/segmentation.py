"""Segmentation consistency: mIoU and pixel accuracy of predicted trainIds against target trainIds.

mIoU averages the IoU of the 19 Cityscapes train classes over the classes present in the prediction
or the target (a class absent from both has no IoU and is left out of the mean, as in
cityscapesscripts' evaluation of a set). Pixels whose target is 255 (ignore) count nowhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from renderer.segmenter.classes import CLASS_NAMES, IGNORE, NUM_CLASSES, label_ids_to_train_ids

if TYPE_CHECKING:
    from renderer.segmenter.model import Segmenter


def confusion_matrix(prediction: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(H, W) uint8 predicted and target trainIds -> (C, C) int64 counts [target, prediction]; 255 ignored."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} sizes differ")
    keep = target != IGNORE
    target_kept = target[keep].astype(np.int64)
    prediction_kept = prediction[keep].astype(np.int64)
    if prediction_kept.size and prediction_kept.max() >= num_classes:
        raise ValueError(f"prediction holds class {int(prediction_kept.max())}; expected 0..{num_classes - 1}")
    if target_kept.size and target_kept.max() >= num_classes:
        raise ValueError(f"target holds class {int(target_kept.max())}; expected 0..{num_classes - 1} or {IGNORE}")
    flat = target_kept * num_classes + prediction_kept
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class SegmentationScores:
    """Accumulates a (C, C) int64 confusion matrix [target, prediction] over frames; mIoU etc. read off it."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one frame: (H, W) uint8 predicted and target trainIds."""
        self.confusion += confusion_matrix(prediction, target, self.num_classes)

    def per_class_iou(self) -> list[float | None]:
        """IoU per class; None for a class in neither prediction nor target."""
        hits = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - hits
        return [float(h / u) if u > 0 else None for h, u in zip(hits, union)]

    def miou(self) -> float | None:
        """Mean IoU over the classes present in prediction or target; None if no pixel counted."""
        present = [value for value in self.per_class_iou() if value is not None]
        return float(np.mean(present)) if present else None

    def pixel_accuracy(self) -> float | None:
        """Fraction of non-ignored pixels predicted right; None if none counted."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else None

    def summary(self) -> dict[str, Any]:
        """JSON-ready: miou, pixel_accuracy, per-class IoU by name, classes counted, pixels, definition."""
        ious = self.per_class_iou()
        return {
            "miou": self.miou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "per_class_iou": {name: iou for name, iou in zip(CLASS_NAMES, ious)},
            "classes_counted": sum(value is not None for value in ious),
            "pixels": int(self.confusion.sum()),
            "definition": ("segmenter's trainIds vs the label map's (labelIds -> trainIds, 255 ignored); mIoU over "
                           "the 19 Cityscapes train classes present in prediction or target"),
        }


class SegmentationStream:
    """Frames fed one at a time, segmented in batches: scores over all frames and pixel accuracy per frame."""

    def __init__(self, segmenter: Segmenter, batch_size: int = 4, threads: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.segmenter, self.batch_size, self.threads = segmenter, batch_size, threads
        self.scores = SegmentationScores()
        self.per_frame_accuracy: list[float | None] = []
        self.seconds = 0.0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, rgb: np.ndarray, label_ids: np.ndarray) -> None:
        """Queue one (H, W, 3) uint8 RGB frame and its (H, W) uint8 Cityscapes labelIds."""
        self._pending.append((rgb, label_ids))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Segment and score the queued frames."""
        from renderer.segmenter.inference import predict_train_ids

        if not self._pending:
            return
        started = time.perf_counter()
        frames = [rgb for rgb, _ in self._pending]
        predictions = predict_train_ids(self.segmenter, frames, self.batch_size, self.threads)
        for prediction, (_, labels) in zip(predictions, self._pending):
            if labels.shape != prediction.shape:
                labels = cv2.resize(labels, prediction.shape[::-1], interpolation=cv2.INTER_NEAREST)
            frame = SegmentationScores()
            frame.update(prediction, label_ids_to_train_ids(labels))
            self.scores.confusion += frame.confusion
            self.per_frame_accuracy.append(frame.pixel_accuracy())
        self._pending = []
        self.seconds += time.perf_counter() - started

    def summary(self) -> dict[str, Any]:
        """Flush, then SegmentationScores.summary() plus "frames" and "ms_per_frame"."""
        self.flush()
        frames = len(self.per_frame_accuracy)
        return {**self.scores.summary(), "frames": frames,
                "ms_per_frame": round(self.seconds * 1000.0 / max(1, frames), 2)}


def segmentation_consistency(rgb_frames: Sequence[np.ndarray], label_ids: Sequence[np.ndarray],
                             segmenter: Segmenter, batch_size: int = 4,
                             threads: int | None = None) -> dict[str, Any]:
    """Segment (H, W, 3) uint8 RGB frames and score them against their (H, W) uint8 Cityscapes labelIds.

    Returns SegmentationScores.summary() plus "frames" and "ms_per_frame". The segmenter runs at its
    working size in batches of `batch_size` with `threads` torch threads (None: as set); label maps
    of another size are nearest-resized to their frame's.
    """
    if len(rgb_frames) != len(label_ids):
        raise ValueError(f"{len(rgb_frames)} frames but {len(label_ids)} label maps")
    stream = SegmentationStream(segmenter, batch_size, threads)
    for rgb, labels in zip(rgb_frames, label_ids):
        stream.add(rgb, labels)
    return stream.summary()
