"""Statistics of label-map sequences: class shares, boundaries, objects, viewpoint and flicker.

Every frame is first resized (nearest) to one analysis size, so that maps of any size compare.
A `LabelStatsAccumulator` takes frames one at a time (memory stays flat) and `finish()` returns a
plain JSON document: the format of the shipped reference and of `gap.json`'s two sides.

Definitions (all at the analysis size):
- boundary pixel: a pixel with a 4-neighbour of another labelId; the boundary density of a
  class is its boundary pixels over its pixels.
- jaggedness of a class: the length of its region contours (cv2, every contour point) over the
  length of the same contours smoothed by a circular moving average of `SMOOTH_WINDOW` points;
  1.0 for straight or gently curved edges, larger for ragged ones.
- region: an 8-connected component of one class; a small region has fewer than
  `SMALL_REGION_PX` pixels.
- horizon row: the first row (from the top) in which road covers at least `HORIZON_ROAD_SHARE`
  of the row: on flat streets the road runs up to the horizon.
- hood rows: the bottom rows in which ego vehicle or car covers at least half of the row and
  which have not changed since the sequence's first frame, counted upwards from the last row:
  the ego car's bonnet (a car ahead moves; the bonnet does not).
- flicker: a pixel whose label at t-1 differs from both t-2 and t while t-2 and t agree (A B A);
  change: a pixel whose label differs between t-1 and t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from carla_neural.remap import LABEL_HAS_INSTANCES

STATS_FORMAT = "carla-neural-label-stats"
STATS_VERSION = 1
LABEL_SET = "cityscapes-labelIds"
ANALYSIS_SIZE = (512, 256)  # (width, height)
SMOOTH_WINDOW = 9
SMALL_REGION_PX = 64
HORIZON_ROAD_SHARE = 0.02
HOOD_SHARE = 0.5
# Region and object areas are histogrammed in powers of two: bin k holds areas in [2^k, 2^(k+1)).
AREA_BINS = 18

ROAD_ID, SKY_ID, EGO_ID, CAR_ID, PERSON_ID = 7, 23, 1, 26, 24
OBJECT_IDS = tuple(int(index) for index in np.flatnonzero(LABEL_HAS_INSTANCES))
# Real Cityscapes instance maps of NVIDIA's sample: small ids per object, this value for stuff.
SMALL_ID_STUFF = 255


def to_analysis_size(image: np.ndarray, size: tuple[int, int] = ANALYSIS_SIZE) -> np.ndarray:
    """(H, W) ids -> (size[1], size[0]) ids, nearest neighbour (no invented labels); dtype kept."""
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    if image.dtype in (np.uint8, np.uint16):
        return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    # cv2 resizes no 64-bit ints; float32 holds instance ids (< 2^24) exactly.
    resized = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_NEAREST)
    return resized.astype(image.dtype)


def area_bin(areas: np.ndarray) -> np.ndarray:
    """(N,) pixel areas >= 1 -> (N,) int power-of-two bin index (clipped to AREA_BINS - 1)."""
    return np.minimum(np.floor(np.log2(np.maximum(areas, 1))).astype(np.int64), AREA_BINS - 1)


def boundary_mask(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another label (both sides of every edge)."""
    mask = np.zeros(label_ids.shape, bool)
    horizontal = label_ids[:, 1:] != label_ids[:, :-1]
    vertical = label_ids[1:, :] != label_ids[:-1, :]
    mask[:, :-1] |= horizontal
    mask[:, 1:] |= horizontal
    mask[:-1, :] |= vertical
    mask[1:, :] |= vertical
    return mask


def contour_lengths(mask: np.ndarray, window: int = SMOOTH_WINDOW) -> tuple[float, float]:
    """(H, W) bool region -> (contour length, smoothed contour length) in pixels, summed over contours.

    Contours shorter than two windows are left out: on a speck the ratio says nothing about edges.
    """
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    raw_total = smooth_total = 0.0
    kernel = np.ones(window) / window
    half = window // 2
    for contour in contours:
        points = contour[:, 0, :].astype(np.float64)
        if len(points) < 2 * window:
            continue
        raw_total += float(np.linalg.norm(np.diff(points, axis=0, append=points[:1]), axis=1).sum())
        wrapped = np.concatenate([points[-half:], points, points[:half]])
        smooth = np.stack([np.convolve(wrapped[:, axis], kernel, mode="valid") for axis in (0, 1)], axis=1)
        smooth_total += float(np.linalg.norm(np.diff(smooth, axis=0, append=smooth[:1]), axis=1).sum())
    return raw_total, smooth_total


def horizon_row(road_rows: np.ndarray, share: float = HORIZON_ROAD_SHARE) -> int | None:
    """(H,) road share per row -> the first row with at least `share` road, or None without road."""
    rows = np.flatnonzero(road_rows >= share)
    return int(rows[0]) if len(rows) else None


def hood_rows(label_ids: np.ndarray, first_label_ids: np.ndarray | None = None, share: float = HOOD_SHARE) -> int:
    """(H, W) labelIds -> how many bottom rows are the bonnet: mostly ego vehicle or car, and (given
    the sequence's first frame) unchanged since then, so that a car just ahead does not count."""
    per_row = np.isin(label_ids, (EGO_ID, CAR_ID)).mean(axis=1) >= share
    if first_label_ids is not None:
        per_row &= (label_ids == first_label_ids).all(axis=1)
    above = np.flatnonzero(~per_row[::-1])
    return int(above[0]) if len(above) else label_ids.shape[0]


def object_areas(label_ids: np.ndarray, instance_ids: np.ndarray | None,
                 instance_format: str | None) -> dict[int, list[int]]:
    """Pixel areas of the objects of one frame, per object labelId.

    instance_ids: (H, W) ints, either "cityscapes" (labelId * 1000 + k for objects, as the recorder
    writes) or "small" (1..254 per object, 255 stuff: NVIDIA's Cityscapes sample), where an object's
    class is the most common object label under it. Without instance maps, the 8-connected regions
    of each object class stand in for objects.
    """
    areas: dict[int, list[int]] = {}
    if instance_ids is None:
        present = np.flatnonzero(np.bincount(label_ids.ravel(), minlength=256)[list(OBJECT_IDS)])
        for label_id in (OBJECT_IDS[i] for i in present):
            count, _, stats, _ = cv2.connectedComponentsWithStats((label_ids == label_id).view(np.uint8),
                                                                  connectivity=8)
            areas[label_id] = [int(a) for a in stats[1:count, cv2.CC_STAT_AREA]]
        return areas
    ids = instance_ids.astype(np.int64).ravel()
    labels = label_ids.ravel().astype(np.int64)
    if instance_format == "cityscapes":
        objects = ids >= 1000
        object_ids, sizes = np.unique(ids[objects], return_counts=True)
        for object_id, size in zip(object_ids, sizes):
            areas.setdefault(int(object_id // 1000), []).append(int(size))
        return areas
    objects = (ids > 0) & (ids != SMALL_ID_STUFF) & LABEL_HAS_INSTANCES[labels]
    if not objects.any():
        return areas
    # Majority object label per instance id: a 2-D histogram of (instance, label).
    pairs = np.bincount(ids[objects] * 256 + labels[objects], minlength=256 * 256).reshape(256, 256)
    for object_id in np.flatnonzero(pairs.sum(axis=1)):
        label_id = int(np.argmax(pairs[object_id]))
        areas.setdefault(label_id, []).append(int(pairs[object_id].sum()))
    return areas


@dataclass
class LabelStatsAccumulator:
    """Sums the statistics of label-map sequences frame by frame; `finish()` gives the document."""

    size: tuple[int, int] = ANALYSIS_SIZE
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    boundary_pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    contour_px: np.ndarray = field(default_factory=lambda: np.zeros(256))
    smooth_contour_px: np.ndarray = field(default_factory=lambda: np.zeros(256))
    region_hist: np.ndarray = field(default_factory=lambda: np.zeros((256, AREA_BINS), np.int64))
    object_count: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    object_hist: np.ndarray = field(default_factory=lambda: np.zeros((256, AREA_BINS), np.int64))
    road_rows: np.ndarray | None = None
    sky_rows: np.ndarray | None = None
    frames: int = 0
    frames_with_instances: int = 0
    sequences: list[dict[str, Any]] = field(default_factory=list)
    per_frame: dict[str, list] = field(default_factory=lambda: {
        "horizon_row": [], "hood_rows": [], "small_regions": [], "flicker": [], "change": []})
    pairs: int = 0
    triples: int = 0
    changed_pixels: int = 0
    flicker_pixels: int = 0
    _history: list[np.ndarray] = field(default_factory=list)
    _first: np.ndarray | None = None

    def __post_init__(self) -> None:
        height = self.size[1]
        if self.road_rows is None:
            self.road_rows = np.zeros(height)
        if self.sky_rows is None:
            self.sky_rows = np.zeros(height)

    def start_sequence(self, name: str) -> None:
        """Begin a new sequence: flicker never spans two sequences."""
        self._history = []
        self._first = None
        self.sequences.append({"name": name, "frames": 0})

    def add(self, label_ids: np.ndarray, instance_ids: np.ndarray | None = None,
            instance_format: str | None = None) -> None:
        """Add one frame: (H, W) uint8 labelIds, optional (H, W) instance ids (see `object_areas`)."""
        if not self.sequences:
            self.start_sequence("sequence")
        labels = to_analysis_size(np.asarray(label_ids).astype(np.uint8, copy=False), self.size)
        instances = None if instance_ids is None else to_analysis_size(np.asarray(instance_ids), self.size)
        counts = np.bincount(labels.ravel(), minlength=256)
        self.class_pixels += counts
        boundary = boundary_mask(labels)
        self.boundary_pixels += np.bincount(labels[boundary], minlength=256)
        small = 0
        for label_id in np.flatnonzero(counts):
            mask = labels == label_id
            raw, smooth = contour_lengths(mask)
            self.contour_px[label_id] += raw
            self.smooth_contour_px[label_id] += smooth
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
            region_areas = stats[1:count, cv2.CC_STAT_AREA]
            np.add.at(self.region_hist[label_id], area_bin(region_areas), 1)
            small += int((region_areas < SMALL_REGION_PX).sum())
        for label_id, areas in object_areas(labels, instances, instance_format).items():
            self.object_count[label_id] += len(areas)
            np.add.at(self.object_hist[label_id], area_bin(np.array(areas)), 1)
        if instances is not None:
            self.frames_with_instances += 1
        road = (labels == ROAD_ID).mean(axis=1)
        self.road_rows += road
        self.sky_rows += (labels == SKY_ID).mean(axis=1)
        self.per_frame["horizon_row"].append(horizon_row(road))
        if self._first is None:
            self._first = labels
        self.per_frame["hood_rows"].append(hood_rows(labels, self._first))
        self.per_frame["small_regions"].append(small)
        self._add_temporal(labels)
        self.frames += 1
        self.sequences[-1]["frames"] += 1

    def _add_temporal(self, labels: np.ndarray) -> None:
        history = self._history
        change = flicker = None
        if history:
            changed = int((labels != history[-1]).sum())
            self.pairs += 1
            self.changed_pixels += changed
            change = changed / labels.size
        if len(history) >= 2:
            blinked = int(((history[-2] == labels) & (history[-1] != labels)).sum())
            self.triples += 1
            self.flicker_pixels += blinked
            flicker = blinked / labels.size
        self.per_frame["change"].append(change)
        self.per_frame["flicker"].append(flicker)
        self._history = [*history[-1:], labels]

    def finish(self, origin: dict[str, Any] | None = None) -> dict[str, Any]:
        """The statistics document (JSON-ready): sums, per-row profiles and per-frame series."""
        if self.frames == 0:
            raise ValueError("no frames were added")

        def by_class(values: np.ndarray, digits: int | None = None) -> dict[str, Any]:
            return {str(i): (round(float(values[i]), digits) if digits is not None else int(values[i]))
                    for i in np.flatnonzero(values)}

        def hist_by_class(hist: np.ndarray) -> dict[str, list[int]]:
            return {str(i): [int(v) for v in hist[i]] for i in np.flatnonzero(hist.sum(axis=1))}

        return {
            "format": STATS_FORMAT,
            "version": STATS_VERSION,
            "label_set": LABEL_SET,
            "analysis_size": list(self.size),
            "definitions": {"smooth_window": SMOOTH_WINDOW, "small_region_px": SMALL_REGION_PX,
                            "horizon_road_share": HORIZON_ROAD_SHARE, "hood_share": HOOD_SHARE,
                            "area_bins": "bin k holds areas in [2^k, 2^(k+1)) pixels"},
            "origin": origin or {},
            "frames": self.frames,
            "sequences": self.sequences,
            "class_pixels": by_class(self.class_pixels),
            "boundary_pixels": by_class(self.boundary_pixels),
            "contour_px": by_class(self.contour_px, 1),
            "smooth_contour_px": by_class(self.smooth_contour_px, 1),
            "region_area_hist": hist_by_class(self.region_hist),
            "objects": {
                "from": "instance maps" if self.frames_with_instances == self.frames else
                        "instance maps and regions" if self.frames_with_instances else "regions",
                "count": by_class(self.object_count),
                "area_hist": hist_by_class(self.object_hist),
            },
            "rows": {"road": [round(v / self.frames, 5) for v in self.road_rows],
                     "sky": [round(v / self.frames, 5) for v in self.sky_rows]},
            "temporal": {"pairs": self.pairs, "triples": self.triples, "changed_pixels": self.changed_pixels,
                         "flicker_pixels": self.flicker_pixels},
            "per_frame": {name: [None if v is None else (round(v, 7) if isinstance(v, float) else v)
                                 for v in values] for name, values in self.per_frame.items()},
        }


def median_of(values: list[Any]) -> float | None:
    """Median of the non-None values, or None."""
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else None


def hist_median(hist: list[int]) -> float | None:
    """Median area (pixels) from a power-of-two area histogram: the geometric middle of its bin."""
    counts = np.asarray(hist, float)
    if counts.sum() == 0:
        return None
    index = int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))
    return float(math.sqrt(2 ** index * 2 ** (index + 1)))
