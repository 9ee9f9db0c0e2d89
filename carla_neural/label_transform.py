"""Move simulator label maps toward real ones: between remap and the renderer, no training needed.

Four steps, each off when its setting is 0 or empty, all deterministic (the same frame always
gives the same map):
1. class map: labelIds the real maps never hold (ground, static, guard rail, ...) -> the nearest
   class they do hold (a 256-entry lookup table);
2. boundary smoothing: a median filter of the labelIds (OpenCV, uint8) rounds polygon corners
   and stair steps the way a segmenter's blobby predictions are rounded; thin classes (poles,
   signs, lights) keep their pixels, because a median would erase them;
3. boundary roughening: every pixel takes the label a few pixels away along a smooth random
   displacement field (amplitude `jitter_px`, correlation length `jitter_scale_px`), fixed per
   image position by `seed`: straight simulator edges wobble like a segmenter's, and interiors
   stay as they are;
4. speck removal: pixels of the listed classes whose class covers fewer than `min_region_px`
   pixels of the 7x7 window around them (specks and slivers of about that size) take the 5x5
   median of their neighbourhood (repeated once per doubling of the frame size).

The real maps of NVIDIA's Cityscapes sample turned out rougher than the simulator's at 512x256
(jaggedness 1.19 vs 1.10), so the calibration may choose roughening over smoothing.

Sizes are set at the analysis size (512x256) and scaled with the frame. The calibrated defaults
ship in `assets/label_transform.json` (made by `python -m domain_adapt.calibrate`).

It lives in carla_neural because the run pipeline applies it between remap and the renderer;
domain_adapt (gap metrics, calibration, the benchmark `python -m domain_adapt.transform --bench`)
imports it from here, never the other way round.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from carla_neural.remap import CITYSCAPES_BY_ID

log = logging.getLogger(__name__)

CALIBRATED_CONFIG = Path(__file__).parent / "assets" / "label_transform.json"
ANALYSIS_WIDTH, ANALYSIS_HEIGHT = 512, 256
# The 19 labelIds of Cityscapes' evaluation: all that the real (predicted) maps hold.
EVALUATION_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
# Nearest plausible evaluation class of each other labelId, by what the simulator paints there.
PLAUSIBLE_CLASS = {
    0: 7,    # unlabeled (CARLA: other, water, unknown) -> road: mostly at ground level
    1: 7,    # ego vehicle -> road: the real maps label the bonnet as what lies behind it
    2: 7, 3: 7,  # rectification border, out of roi
    4: 11,   # static (bus stops, benches, hydrants) -> building
    5: 11,   # dynamic (bins, carts) -> building
    6: 8,    # ground (kerbs, verges, parking areas) -> sidewalk
    9: 7,    # parking -> road
    10: 7,   # rail track -> road (tram rails lie in the road)
    14: 13,  # guard rail -> fence
    15: 11,  # bridge -> building
    16: 11,  # tunnel -> building
    18: 17,  # polegroup -> pole
    29: 26,  # caravan -> car
    30: 27,  # trailer -> truck
}
THIN_CLASSES = (17, 19, 20)  # pole, traffic light, traffic sign
SPECK_WINDOW = 7  # px at 512x256: the neighbourhood in which a speck's class is counted
_PIXEL_WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32}  # an integer as wide as a pixel of 1, 2, 4 channels


class TransformConfigError(ValueError):
    """A label-transform config that cannot be used; the message names the file and the field."""


class LabelTransformConfig(BaseModel):
    """Settings of the label transform (sizes at 512x256; scaled with the frame)."""

    model_config = ConfigDict(extra="forbid")

    class_map: dict[int, int] = Field(default_factory=lambda: dict(PLAUSIBLE_CLASS))
    median_kernel: int = 0
    keep_thin: list[int] = Field(default_factory=lambda: list(THIN_CLASSES))
    jitter_px: float = 0.0
    jitter_scale_px: float = 4.0
    seed: int = 0
    min_region_px: int = 0
    speck_classes: list[int] = Field(default_factory=list)

    @field_validator("class_map")
    @classmethod
    def _class_map(cls, value: dict[int, int]) -> dict[int, int]:
        for source, target in value.items():
            for label_id in (source, target):
                if label_id not in CITYSCAPES_BY_ID:
                    raise ValueError(f"{label_id} is not a Cityscapes labelId (0..{max(CITYSCAPES_BY_ID)})")
        return value

    @field_validator("keep_thin", "speck_classes")
    @classmethod
    def _label_ids(cls, value: list[int]) -> list[int]:
        unknown = [label_id for label_id in value if label_id not in CITYSCAPES_BY_ID]
        if unknown:
            raise ValueError(f"{unknown} are not Cityscapes labelIds (0..{max(CITYSCAPES_BY_ID)})")
        return value

    @field_validator("median_kernel")
    @classmethod
    def _kernel(cls, value: int) -> int:
        if value not in (0, 3, 5):
            raise ValueError(f"must be 0 (off), 3 or 5 pixels (wider medians are slow in OpenCV), got {value}")
        return value

    @field_validator("jitter_px")
    @classmethod
    def _jitter(cls, value: float) -> float:
        if not 0.0 <= value <= 8.0:
            raise ValueError(f"must be 0 (off) .. 8 pixels, got {value}")
        return value

    @field_validator("jitter_scale_px")
    @classmethod
    def _jitter_scale(cls, value: float) -> float:
        if not 0.5 <= value <= 64.0:
            raise ValueError(f"must be 0.5 .. 64 pixels, got {value}")
        return value

    @field_validator("min_region_px")
    @classmethod
    def _min_region(cls, value: int) -> int:
        if not 0 <= value <= 4096:
            raise ValueError(f"must be 0 (off) .. 4096 pixels, got {value}")
        return value


def load_transform_config(path: str | Path | None = None) -> LabelTransformConfig:
    """The config in a JSON file (its "config" object, or the whole file); default: the calibrated one."""
    path = Path(path) if path is not None else CALIBRATED_CONFIG
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TransformConfigError(f"label transform config {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise TransformConfigError(f"label transform config {path} is not JSON ({error})") from None
    settings = document.get("config", document) if isinstance(document, dict) else document
    try:
        return LabelTransformConfig.model_validate(settings)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise TransformConfigError(f"label transform config {path}: field {field!r}: {first['msg']}") from None


def _odd(value: float) -> int:
    size = max(1, int(round(value)))
    return size if size % 2 else size + 1


class LabelTransform:
    """A callable (H, W) uint8 labelIds -> (H, W) uint8 labelIds; `last_ms` is its cost per frame."""

    def __init__(self, config: LabelTransformConfig | None = None) -> None:
        self.config = config or LabelTransformConfig()
        self._lut = np.arange(256, dtype=np.uint8)
        for source, target in self.config.class_map.items():
            self._lut[source] = target
        self._thin = np.zeros(256, np.uint8)
        self._thin[self.config.keep_thin] = 1
        self._speck_ids = np.array(sorted(self.config.speck_classes), np.int64)
        self._scaled: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._jitter_maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.last_ms = 0.0

    def _jitter_map(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        # A fixed field per frame size: the same position always moves the same way, so a still
        # scene stays still and the wobble only travels with the edges.
        key = (height, width)
        if key not in self._jitter_maps:
            scale = width / ANALYSIS_WIDTH
            rng = np.random.default_rng(self.config.seed)
            sigma = self.config.jitter_scale_px * scale
            offsets = []
            for _ in range(2):
                noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
                noise *= self.config.jitter_px * scale / max(float(noise.std()), 1e-6)
                offsets.append(noise)
            grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
            self._jitter_maps[key] = cv2.convertMaps(grid_x + offsets[0], grid_y + offsets[1], cv2.CV_16SC2,
                                                     nninterpolation=True)
        return self._jitter_maps[key]

    def _sizes(self, height: int, width: int) -> tuple[int, int, int]:
        # (median passes, min region px, speck window) at this frame size: OpenCV's medians wider
        # than 5 are slow, so a larger frame gets the same kernel applied more often.
        key = (height, width)
        if key not in self._scaled:
            scale = width / ANALYSIS_WIDTH
            passes = max(1, round(scale)) if self.config.median_kernel else 0
            min_region = int(round(self.config.min_region_px * (width * height) / (ANALYSIS_WIDTH * ANALYSIS_HEIGHT)))
            self._scaled[key] = (passes, min_region, _odd(SPECK_WINDOW * scale))
        return self._scaled[key]

    def __call__(self, label_ids: np.ndarray) -> np.ndarray:
        """(H, W) uint8 labelIds -> transformed (H, W) uint8 labelIds (a new array)."""
        started = time.perf_counter()
        if label_ids.dtype != np.uint8 or label_ids.ndim != 2:
            raise ValueError(f"label_ids must be (H, W) uint8, got {label_ids.dtype} {label_ids.shape}")
        height, width = label_ids.shape
        passes, min_region, window = self._sizes(height, width)
        mapped = cv2.LUT(label_ids, self._lut)
        out = mapped
        if passes:
            out = mapped
            for _ in range(passes):
                out = cv2.medianBlur(out, self.config.median_kernel)
            if self.config.keep_thin:
                cv2.copyTo(mapped, cv2.LUT(mapped, self._thin), out)
        if self.config.jitter_px > 0:
            map_xy, map_fraction = self._jitter_map(height, width)
            moved = cv2.remap(out, map_xy, map_fraction, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            if self.config.keep_thin:
                # Moving a 1-px pole by a pixel or two would break it into pieces.
                cv2.copyTo(out, cv2.LUT(out, self._thin), moved)
            out = moved
        if min_region and len(self._speck_ids):
            out = self._drop_specks(out, min_region, window)
        self.last_ms = 1000 * (time.perf_counter() - started)
        return out

    def _drop_specks(self, label_ids: np.ndarray, min_region: int, window: int) -> np.ndarray:
        # Connected components per class cost about 2 ms each on a 512x256 frame here, so specks are found by local
        # density instead: a pixel whose class covers fewer than `min_region` pixels of the window
        # around it belongs to a speck (or a sliver) of fewer than about that many pixels.
        # Masks are 0/255 and the box filter averages (rounded), so `threshold` is min_region in
        # those units, half a pixel low so that a count of exactly min_region is not a speck.
        threshold = 255.0 * (min_region - 0.5) / (window * window)
        speck = np.zeros(label_ids.shape, bool)
        # Up to four classes at once, as the channels of one image: one box filter instead of
        # four (the same sums per channel, so the same result as one class at a time).
        for first in range(0, len(self._speck_ids), 4):
            masks = [cv2.compare(label_ids, int(label_id), cv2.CMP_EQ) for label_id in self._speck_ids[first:first + 4]]
            if len(masks) == 3:
                masks.append(masks[0])  # channels of 1, 2 or 4 bytes read as one integer below
            channels = masks[0] if len(masks) == 1 else cv2.merge(masks)
            density = cv2.boxFilter(channels, -1, (window, window), borderType=cv2.BORDER_REPLICATE)
            # The threshold as a 4-vector: OpenCV 5 reads a lone number as (t, 0, 0, 0), which
            # would compare every channel but the first against 0.
            sparse = cv2.bitwise_and(cv2.compare(density, (threshold,) * 4, cv2.CMP_LT), channels)
            # A pixel is a speck when any of its channels is: its bytes as one integer are not 0.
            speck |= sparse.reshape(label_ids.shape[0], -1).view(_PIXEL_WORD[len(masks)]) != 0
        if speck.any():
            # Wider medians are slow in OpenCV; repeated 5x5 ones eat larger specks from the outside.
            fill = label_ids
            for _ in range(max(1, round(window / SPECK_WINDOW))):
                fill = cv2.medianBlur(fill, 5)
            cv2.copyTo(fill, speck.view(np.uint8), label_ids)
        return label_ids
