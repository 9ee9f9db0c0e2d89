"""mIoU and pixel accuracy on hand-made predictions; the labelId -> trainId table."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.metrics.segmentation import SegmentationScores, confusion_matrix
from renderer.segmenter.classes import CLASS_NAMES, IGNORE, label_ids_to_train_ids

ROAD, SIDEWALK, BUILDING = 0, 1, 2


def test_known_miou_and_accuracy_with_ignored_and_absent_classes() -> None:
    target = np.array([[ROAD, ROAD, ROAD, ROAD],
                       [SIDEWALK, SIDEWALK, IGNORE, IGNORE]], np.uint8)
    prediction = np.array([[ROAD, ROAD, ROAD, SIDEWALK],
                           [SIDEWALK, BUILDING, ROAD, BUILDING]], np.uint8)
    scores = SegmentationScores()
    scores.update(prediction, target)
    ious = scores.per_class_iou()
    # road: 3 hits, union 4 (one road pixel called sidewalk; ignored pixels count nowhere).
    assert ious[ROAD] == pytest.approx(3 / 4)
    # sidewalk: 1 hit; union = 2 target + 2 predicted - 1 = 3.
    assert ious[SIDEWALK] == pytest.approx(1 / 3)
    # building: predicted once on a sidewalk pixel, never in the target.
    assert ious[BUILDING] == 0.0
    # Classes in neither prediction nor target have no IoU and stay out of the mean.
    assert ious[3:] == [None] * 16
    assert scores.miou() == pytest.approx((3 / 4 + 1 / 3 + 0) / 3)
    assert scores.pixel_accuracy() == pytest.approx(4 / 6)
    summary = scores.summary()
    assert summary["classes_counted"] == 3 and summary["pixels"] == 6
    assert summary["per_class_iou"]["road"] == pytest.approx(0.75)


def test_perfect_prediction_and_accumulation_over_frames() -> None:
    rng = np.random.default_rng(0)
    scores = SegmentationScores()
    for _ in range(3):
        target = rng.integers(0, 19, (8, 16)).astype(np.uint8)
        scores.update(target, target)
    assert scores.miou() == 1.0 and scores.pixel_accuracy() == 1.0
    assert scores.confusion.sum() == 3 * 8 * 16


def test_everything_ignored_has_no_score_and_bad_ids_are_refused() -> None:
    scores = SegmentationScores()
    scores.update(np.zeros((2, 2), np.uint8), np.full((2, 2), IGNORE, np.uint8))
    assert scores.miou() is None and scores.pixel_accuracy() is None
    with pytest.raises(ValueError, match="sizes differ"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="target holds class 30"):
        confusion_matrix(np.zeros((1, 1), np.uint8), np.full((1, 1), 30, np.uint8))


def test_label_ids_map_to_cityscapes_train_ids() -> None:
    # road 7, car 26, sky 23, unlabeled 0, license plate -1 (stored as 255 in uint8), guard rail 14.
    label_ids = np.array([[7, 26, 23, 0, 255, 14, 33]], np.uint8)
    assert label_ids_to_train_ids(label_ids).tolist() == [[0, 13, 10, IGNORE, IGNORE, IGNORE, 18]]
    assert len(CLASS_NAMES) == 19 and CLASS_NAMES[13] == "car" and CLASS_NAMES[18] == "bicycle"
