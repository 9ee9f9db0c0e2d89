"""CARLA semantic and instance images -> Cityscapes labelIds, trainIds and instance ids.

Every conversion is a 256-entry lookup table indexed by the CARLA tag (red channel, index 2),
built from cityscapesscripts' label table by label *name* (`carla_neural.remap_tables`).
Tags that the scheme does not define are never mapped silently: they raise `UnknownTagError`
(policy "error") or become unlabeled with a logged report (policy "unlabeled").

Benchmark: `python -m carla_neural.remap` (cost per 1024x512 frame).
"""

from __future__ import annotations

import collections
import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from cityscapesscripts.helpers import labels as cityscapes_labels

from carla_neural.remap_tables import SCHEMES, resolve_scheme
from renderer.edges import instance_edges  # re-exported: the edge map vid2vid reads

log = logging.getLogger(__name__)

UnknownPolicy = Literal["error", "unlabeled"]
UNKNOWN_POLICIES = ("error", "unlabeled")

# Marks "tag not in the scheme" inside the lookup table; no Cityscapes labelId is 255.
_UNKNOWN = 255
# Cityscapes instance ids are labelId * 1000 + k, so k stays below 1000.
INSTANCE_ID_MULTIPLIER = 1000

# Cityscapes labels with a real id (the table also lists "license plate" with id -1).
CITYSCAPES_BY_NAME = {label.name: label for label in cityscapes_labels.labels if label.id >= 0}
CITYSCAPES_BY_ID = {label.id: label for label in CITYSCAPES_BY_NAME.values()}
UNLABELED_ID = CITYSCAPES_BY_NAME["unlabeled"].id


class UnknownTagError(ValueError):
    """A semantic image holds tags that the tag scheme does not define."""

    def __init__(self, scheme: str, pixel_counts: dict[int, int]):
        self.scheme = scheme
        self.pixel_counts = dict(pixel_counts)
        listed = ", ".join(f"tag {tag}: {count} px" for tag, count in sorted(pixel_counts.items()))
        super().__init__(
            f"semantic image holds tags outside CARLA tag scheme {scheme!r} ({listed}). "
            f"Check the scheme (CARLA <= 0.9.13 uses '0.9.13'), map the tags in an overrides "
            f"YAML file, or pass unknown='unlabeled' to map them to unlabeled."
        )


class RemapConfigError(ValueError):
    """A remap override (YAML file or mapping) is malformed."""


def _palette_lut(ids_to_colour: Mapping[int, tuple[int, int, int]]) -> np.ndarray:
    palette = np.zeros((256, 1, 3), np.uint8)
    for index, colour in ids_to_colour.items():
        palette[index, 0] = colour
    return palette


# (256, 1, 3) uint8: the shape cv2.LUT wants for a 3-channel table.
LABEL_ID_PALETTE = _palette_lut({label.id: label.color for label in CITYSCAPES_BY_NAME.values()})
TRAIN_ID_PALETTE = _palette_lut(
    {label.trainId: label.color for label in CITYSCAPES_BY_NAME.values() if 0 <= label.trainId < 255}
)
# labelId -> trainId (255 = ignore).
LABEL_TO_TRAIN_LUT = np.full(256, 255, np.uint8)
for _label in CITYSCAPES_BY_NAME.values():
    LABEL_TO_TRAIN_LUT[_label.id] = _label.trainId if 0 <= _label.trainId < 255 else 255
# labelId -> whether the class has instances (person, rider, car, ...).
LABEL_HAS_INSTANCES = np.zeros(256, bool)
for _label in CITYSCAPES_BY_NAME.values():
    LABEL_HAS_INSTANCES[_label.id] = _label.hasInstances
_HAS_INSTANCES_U8 = LABEL_HAS_INSTANCES.astype(np.uint8)
# labelId -> labelId * 1000 for object classes, labelId for stuff.
_SCALED_LABEL_IDS = np.arange(256, dtype=np.int32)
_SCALED_LABEL_IDS[LABEL_HAS_INSTANCES] *= INSTANCE_ID_MULTIPLIER
# (B | G << 8) -> (G + 256 B) mod 1000: CARLA's object id, byte order undone, folded below 1000.
_blue_green = np.arange(65536, dtype=np.int32)
_OBJECT_ID_MOD_1000 = (((_blue_green >> 8) | ((_blue_green & 0xFF) << 8)) % INSTANCE_ID_MULTIPLIER).astype(np.int32)


def cityscapes_label(name_or_id: str | int) -> Any:
    """The cityscapesscripts `Label` for a label name (case-insensitive) or labelId."""
    if isinstance(name_or_id, bool):
        raise RemapConfigError(f"{name_or_id!r} is not a Cityscapes label name or labelId")
    if isinstance(name_or_id, int):
        if name_or_id in CITYSCAPES_BY_ID:
            return CITYSCAPES_BY_ID[name_or_id]
        raise RemapConfigError(
            f"{name_or_id} is not a Cityscapes labelId (allowed: 0..{max(CITYSCAPES_BY_ID)})"
        )
    key = str(name_or_id).strip().lower()
    if key in CITYSCAPES_BY_NAME:
        return CITYSCAPES_BY_NAME[key]
    close = difflib.get_close_matches(key, CITYSCAPES_BY_NAME, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise RemapConfigError(
        f"{name_or_id!r} is not a Cityscapes label name.{hint} "
        f"Allowed: {', '.join(sorted(CITYSCAPES_BY_NAME))}"
    )


def load_overrides(path: str | Path) -> dict[int | str, str | int]:
    """Read an overrides YAML file: `tags: {<tag number or CARLA tag name>: <Cityscapes name>}`."""
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RemapConfigError(f"remap overrides file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise RemapConfigError(f"remap overrides file {path} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or "tags" not in document:
        raise RemapConfigError(
            f"{path}: expected a mapping with a 'tags' key, e.g.\n"
            f"  tags:\n    water: terrain\n    29: terrain"
        )
    extra = set(document) - {"tags", "scheme"}
    if extra:
        raise RemapConfigError(f"{path}: unknown keys {sorted(extra)}; allowed: 'tags', 'scheme'")
    tags = document["tags"]
    if not isinstance(tags, dict):
        raise RemapConfigError(f"{path}: 'tags' must be a mapping of tag -> Cityscapes label name")
    overrides: dict[int | str, str | int] = dict(tags)
    if "scheme" in document:
        overrides["__scheme__"] = str(document["scheme"])
    return overrides


class Remapper:
    """CARLA tags -> Cityscapes ids for one tag scheme, with optional overrides.

    scheme: a scheme name ("0.9.14", "0.9.13") or a CARLA version ("0.9.16", "0.9.12").
    overrides: a mapping {tag number or CARLA tag name: Cityscapes label name or labelId},
        or the path of a YAML file holding one (see `load_overrides`). Overrides may add tags
        the scheme lacks (e.g. 29 "rock" of later UE5 builds).
    unknown: "error" raises `UnknownTagError` on tags outside the scheme; "unlabeled" maps them
        to unlabeled and logs which values and how many pixels (also kept in `unknown_pixel_counts`).
    """

    def __init__(
        self,
        scheme: str = "0.9.14",
        overrides: Mapping[int | str, str | int] | str | Path | None = None,
        unknown: UnknownPolicy = "error",
    ):
        if unknown not in UNKNOWN_POLICIES:
            raise RemapConfigError(f"unknown={unknown!r}: allowed policies are {UNKNOWN_POLICIES}")
        self.scheme = resolve_scheme(scheme)
        self.unknown = unknown
        # tag -> (CARLA tag name, Cityscapes label name)
        self.table: dict[int, tuple[str, str]] = dict(SCHEMES[self.scheme])
        if isinstance(overrides, (str, Path)):
            overrides = load_overrides(overrides)
        if overrides:
            self._apply_overrides(overrides)
        self._label_lut = np.full(256, _UNKNOWN, np.uint8)
        for tag, (_, cityscapes_name) in self.table.items():
            self._label_lut[tag] = cityscapes_label(cityscapes_name).id
        self.unknown_pixel_counts: collections.Counter[int] = collections.Counter()

    def _apply_overrides(self, overrides: Mapping[int | str, str | int]) -> None:
        overrides = dict(overrides)
        declared = overrides.pop("__scheme__", None)
        if declared is not None and resolve_scheme(declared) != self.scheme:
            raise RemapConfigError(
                f"overrides are written for tag scheme {declared!r} but the remapper uses "
                f"{self.scheme!r}; pick the matching scheme or fix the file"
            )
        tag_by_name = {carla_name: tag for tag, (carla_name, _) in self.table.items()}
        for key, target in overrides.items():
            if isinstance(key, bool):
                raise RemapConfigError(f"override key {key!r} is not a CARLA tag")
            if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
                tag = int(key)
                if not 0 <= tag <= 255:
                    raise RemapConfigError(f"override tag {tag} is outside 0..255")
            elif isinstance(key, str) and key.strip().lower() in tag_by_name:
                tag = tag_by_name[key.strip().lower()]
            else:
                raise RemapConfigError(
                    f"override key {key!r} is neither a tag number (0..255) nor a tag name of "
                    f"scheme {self.scheme!r} ({', '.join(sorted(tag_by_name))})"
                )
            label = cityscapes_label(target)
            carla_name = self.table.get(tag, (f"tag {tag}", ""))[0]
            self.table[tag] = (carla_name, label.name)

    @property
    def label_lut(self) -> np.ndarray:
        """(256,) uint8: tag -> labelId; 255 marks tags outside the scheme."""
        return self._label_lut.copy()

    def _tags_to_label_ids(self, tags: np.ndarray) -> np.ndarray:
        label_ids = cv2.LUT(tags, self._label_lut)
        # One vectorised max is far cheaper than counting every frame; count only when needed.
        if label_ids.max() == _UNKNOWN:
            unknown_mask = label_ids == _UNKNOWN
            values, counts = np.unique(tags[unknown_mask], return_counts=True)
            pixel_counts = {int(v): int(c) for v, c in zip(values, counts)}
            if self.unknown == "error":
                raise UnknownTagError(self.scheme, pixel_counts)
            new_values = set(pixel_counts) - set(self.unknown_pixel_counts)
            self.unknown_pixel_counts.update(pixel_counts)
            if new_values:
                log.warning(
                    "tags %s are outside CARLA tag scheme %r; mapped to unlabeled (%s)",
                    sorted(new_values), self.scheme,
                    ", ".join(f"tag {t}: {pixel_counts[t]} px" for t in sorted(new_values)),
                )
            label_ids[unknown_mask] = UNLABELED_ID
        return label_ids

    def label_ids(self, semantic_bgra: np.ndarray) -> np.ndarray:
        """(H, W, 4) uint8 CARLA semantic BGRA -> (H, W) uint8 Cityscapes labelIds."""
        return self._tags_to_label_ids(_channel(semantic_bgra, 2, "semantic_bgra"))

    def train_ids(self, semantic_bgra: np.ndarray) -> np.ndarray:
        """(H, W, 4) uint8 CARLA semantic BGRA -> (H, W) uint8 Cityscapes trainIds (255 ignore)."""
        return cv2.LUT(self.label_ids(semantic_bgra), LABEL_TO_TRAIN_LUT)

    def instance_ids(self, instance_bgra: np.ndarray) -> np.ndarray:
        """(H, W, 4) uint8 CARLA instance BGRA -> (H, W) int32 Cityscapes-style instance ids.

        Object classes (person, rider, car, ...): labelId * 1000 + (CARLA object id mod 1000),
        so each object keeps its id from frame to frame; stuff classes: labelId.
        """
        if isinstance(instance_bgra, np.ndarray) and instance_bgra.ndim == 3 \
                and instance_bgra.shape[2] != 4:
            raise ValueError(
                f"instance_bgra must be (H, W, 4) uint8 BGRA (object id = G + 256 B); "
                f"got shape {instance_bgra.shape}"
            )
        label_ids = self._tags_to_label_ids(_channel(instance_bgra, 2, "instance_bgra"))
        # Read B | G << 8 as one little-endian uint16 per pixel; the table undoes the byte order.
        blue_green = np.ascontiguousarray(instance_bgra).view(np.uint16)[..., 0]
        instance_ids = cv2.LUT(label_ids, _SCALED_LABEL_IDS)
        object_part = np.take(_OBJECT_ID_MOD_1000, blue_green)
        object_part *= cv2.LUT(label_ids, _HAS_INSTANCES_U8)
        instance_ids += object_part
        return instance_ids

    def describe(self) -> list[tuple[int, str, str, int, int]]:
        """Rows (tag, CARLA name, Cityscapes name, labelId, trainId) of the active mapping."""
        rows = []
        for tag, (carla_name, cityscapes_name) in sorted(self.table.items()):
            label = cityscapes_label(cityscapes_name)
            rows.append((tag, carla_name, label.name, label.id, int(LABEL_TO_TRAIN_LUT[label.id])))
        return rows


def _channel(image: np.ndarray, index: int, name: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] not in (3, 4):
        described = (
            f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise ValueError(f"{name} must be an (H, W, 4) uint8 BGRA image as CARLA sends; got {described}")
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    return cv2.extractChannel(image, index)


def train_ids_from_label_ids(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 labelIds -> (H, W) uint8 trainIds (255 = ignore)."""
    return cv2.LUT(np.ascontiguousarray(label_ids, np.uint8), LABEL_TO_TRAIN_LUT)


def colorize_label_ids(label_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 Cityscapes labelIds -> (H, W, 3) uint8 RGB in the Cityscapes palette."""
    ids = np.ascontiguousarray(label_ids, np.uint8)
    return cv2.LUT(cv2.cvtColor(ids, cv2.COLOR_GRAY2RGB), LABEL_ID_PALETTE)


def colorize_train_ids(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 Cityscapes trainIds -> (H, W, 3) uint8 RGB in the Cityscapes palette."""
    ids = np.ascontiguousarray(train_ids, np.uint8)
    return cv2.LUT(cv2.cvtColor(ids, cv2.COLOR_GRAY2RGB), TRAIN_ID_PALETTE)


def benchmark(width: int = 1024, height: int = 512, repeats: int = 50) -> dict[str, float]:
    """Milliseconds per frame of each remap operation, on a worst-case block frame and on a
    built-in-world street frame of this size.

    Best of five rounds of `repeats` calls, so that a busy machine shows the cost, not the queue.
    """
    import timeit

    rng = np.random.default_rng(0)
    # Blocks of one tag (as in a real frame) with a few objects holding object ids.
    block_tags = rng.integers(0, 29, (height // 16 + 1, width // 16 + 1), dtype=np.uint8)
    tags = np.kron(block_tags, np.ones((16, 16), np.uint8))[:height, :width]
    semantic = np.zeros((height, width, 4), np.uint8)
    semantic[..., 2] = tags
    semantic[..., 3] = 255
    instance = semantic.copy()
    object_ids = np.kron(rng.integers(1, 5000, block_tags.shape), np.ones((16, 16), np.int64))[:height, :width]
    instance[..., 1] = object_ids % 256
    instance[..., 0] = object_ids // 256
    remapper = Remapper("0.9.14")
    label_ids = remapper.label_ids(semantic)
    operations = {
        "label_ids": lambda: remapper.label_ids(semantic),
        "train_ids": lambda: remapper.train_ids(semantic),
        "instance_ids": lambda: remapper.instance_ids(instance),
        "colorize_label_ids": lambda: colorize_label_ids(label_ids),
    }
    # A real street frame too: the blocks above give every pixel a random object id, a worst case.
    from carla_neural.sources.world import BuiltinWorld, WorldConfig

    with BuiltinWorld(WorldConfig(width=width, height=height, seed=0)) as world:
        for _ in range(10):
            street = world.tick()
    operations["instance_ids_street"] = lambda: remapper.instance_ids(street.instance_bgra)
    operations["label_ids_street"] = lambda: remapper.label_ids(street.semantic_bgra)
    return {
        name: min(timeit.repeat(operation, number=repeats, repeat=5)) / repeats * 1e3
        for name, operation in operations.items()
    }


if __name__ == "__main__":
    for size in ((512, 256), (1024, 512)):
        figures = benchmark(*size)
        print(f"{size[0]}x{size[1]}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in figures.items()))
