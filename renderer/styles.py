"""Style banks: per-class clusters of the instance-pooled training features, stored with the
checkpoint, and the per-class style vectors a renderer takes (``SequentialRenderer.set_style``).

A checkpoint with styles holds ``styles.safetensors`` beside its weights:

- ``centers`` (label_nc, K, feat_nc) float32: K cluster centres per class, sorted per class by the
  mean luminance of the photo regions in each cluster (style 0 is every class's darkest cluster,
  style K−1 its brightest), so that one style index means a like appearance across classes;
- ``mean`` (label_nc, feat_nc) float32: each class's mean feature (``--style-from`` uses it for
  classes the photo does not show);
- ``counts`` (label_nc,) int64: how many training regions each class had (0: never seen; its
  vectors are zero);

and its config.json's ``metadata.styles`` says ``k``, ``feat_nc``, ``regions``, ``source`` and
``strength`` (absent: 1): how far a style moves from the neutral input, ``neutral + strength ·
(centre − neutral)``, the neutral input being zero for styles added to a frozen model (no change
at all) and the class mean otherwise.
Styles added to a frozen model (``train --styles-only``) are marked by ``metadata.styles_added_to``:
such a model renders without a style exactly as the model it was added to.

**Style K** takes cluster K of every class: all instances of a class share it (one documented
choice; pix2pixHD lets a user pick per instance). **A photo** is encoded, its pixels are assigned
classes by the labels given with it or by the bundled segmenter, and each class takes the mean
feature of its pixels: a photo of another layout maps to the label map class by class.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from renderer.checkpoint import read_weights
from renderer.checkpoint_ref import CONFIG_FILE, CheckpointError
from renderer.model.generator import Vid2VidGenerator
from renderer.model.style import REGION_STRIDE, class_means, region_ids
from renderer.resize import resize_nearest

log = logging.getLogger(__name__)

STYLES_FILE = "styles.safetensors"
# config.json metadata key of styles added to a frozen model (`train --styles-only`): the model
# they were added to. Such a model renders without a style exactly as that model did.
STYLES_ADDED_TO = "styles_added_to"
MAX_STYLES = 64
MIN_REGION_PIXELS = 16  # smaller regions are too few pixels for a stable mean
STRENGTH_KEY = "strength"  # config.json metadata.styles: how strongly styles apply (0 < s <= 1)
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class StyleBank:
    """K style clusters per class: ``centers`` (label_nc, K, C), ``mean`` (label_nc, C) float32,
    ``counts`` (label_nc,) int64; ``frozen_base``: the styles were added to a frozen model
    (``train --styles-only``, config.json ``metadata.styles_added_to``); ``strength`` in (0, 1]:
    the share of each style's step away from the neutral input that is applied."""

    centers: np.ndarray
    mean: np.ndarray
    counts: np.ndarray
    frozen_base: bool = False
    strength: float = 1.0

    def scaled(self, vectors: np.ndarray) -> np.ndarray:
        """Per-class style vectors (label_nc, C) float32 moved ``strength`` of the way from the
        neutral input (zero on a frozen base: its exact default; else the class means) to them."""
        if self.strength == 1.0:  # exactly the stored vectors, not a rounding of them
            return np.asarray(vectors, np.float32)
        neutral = np.zeros_like(self.mean) if self.frozen_base else self.mean
        return (neutral + np.float32(self.strength) * (np.asarray(vectors, np.float32) - neutral)).astype(np.float32)

    def default_vectors(self) -> np.ndarray | None:
        """What a renderer takes when no style is chosen: no feature input at all (None) when the
        styles were added to a frozen model, so that it renders exactly as that model did; else
        every class's mean training feature (label_nc, C) float32, inside what it trained on."""
        return None if self.frozen_base else self.mean

    @property
    def k(self) -> int:
        """The number of styles."""
        return int(self.centers.shape[1])

    def vectors(self, style: int) -> np.ndarray:
        """Style ``style``'s per-class vectors (label_nc, C) float32; ValueError naming the range."""
        if isinstance(style, bool) or not isinstance(style, (int, np.integer)) or not 0 <= style < self.k:
            raise ValueError(f"style {style!r} does not exist: this checkpoint has styles 0..{self.k - 1}")
        return np.ascontiguousarray(self.scaled(self.centers[:, int(style)]), dtype=np.float32)


# --------------------------------------------------------------------------- clustering


def kmeans(samples: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) float32 samples -> (k, C) centres and (N,) int64 assignments (k-means++ start,
    Lloyd iterations). With fewer than k distinct samples, centres repeat."""
    rng = np.random.default_rng(seed)
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[0]
    centres = [samples[rng.integers(n)]]
    for _ in range(1, k):
        distance = np.min([((samples - c) ** 2).sum(1) for c in centres], axis=0)
        total = distance.sum()
        pick = rng.integers(n) if total <= 0 else rng.choice(n, p=distance / total)
        centres.append(samples[pick])
    centers = np.stack(centres)
    assign = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        assign = ((samples[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
        moved = centers.copy()
        for cluster in range(k):
            members = samples[assign == cluster]
            if len(members):
                moved[cluster] = members.mean(0)
        if np.allclose(moved, centers):
            break
        centers = moved
    return centers.astype(np.float32), assign


def region_samples(
    features: torch.Tensor, label_ids: np.ndarray, instance_ids: np.ndarray, rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's regions: (1, C, H, W) encoder features, (H, W) labels, instance ids and RGB
    uint8 -> per region of at least MIN_REGION_PIXELS pixels its class (R,) int64, mean feature
    (R, C) float32 and mean luminance (R,) float32."""
    regions = region_ids(torch.from_numpy(label_ids.astype(np.int64)),
                         torch.from_numpy(instance_ids.astype(np.int64))).numpy()
    unique, inverse = np.unique(regions.reshape(-1), return_inverse=True)
    inverse = inverse.reshape(-1)
    n_regions = int(inverse.max()) + 1
    counts = np.bincount(inverse, minlength=n_regions)
    flat = features[0].flatten(1).detach().cpu().numpy().astype(np.float64)  # (C, H·W)
    sums = np.stack([np.bincount(inverse, weights=channel, minlength=n_regions) for channel in flat], 1)
    luma = np.bincount(inverse, weights=(rgb.reshape(-1, 3).astype(np.float32) @ LUMA), minlength=n_regions)
    classes = unique // REGION_STRIDE  # a region is one (label, instance) pair
    keep = counts >= MIN_REGION_PIXELS
    return (classes[keep], (sums[keep] / counts[keep, None]).astype(np.float32),
            (luma[keep] / counts[keep]).astype(np.float32))


def cluster_styles(
    labels: np.ndarray, features: np.ndarray, luma: np.ndarray, label_nc: int, k: int, seed: int = 0
) -> StyleBank:
    """Regions' classes (R,), features (R, C) and luminance (R,) -> a StyleBank of k clusters per
    class, each class's clusters sorted by the mean luminance of their regions."""
    if not 1 <= k <= MAX_STYLES:
        raise ValueError(f"k = {k}: the number of styles must be 1..{MAX_STYLES}")
    feat_nc = features.shape[1] if features.ndim == 2 else 0
    centers = np.zeros((label_nc, k, feat_nc), dtype=np.float32)
    mean = np.zeros((label_nc, feat_nc), dtype=np.float32)
    counts = np.bincount(labels, minlength=label_nc)[:label_nc].astype(np.int64)
    for label in np.flatnonzero(counts):
        members = labels == label
        samples, brightness = features[members], luma[members]
        mean[label] = samples.mean(0)
        class_centers, assign = kmeans(samples, k, seed=seed)
        order_key = np.array([brightness[assign == c].mean() if (assign == c).any() else np.inf
                              for c in range(k)])
        centers[label] = class_centers[np.argsort(order_key, kind="stable")]
    return StyleBank(centers, mean, counts)


# --------------------------------------------------------------------------- files


def save_styles(folder: str | Path, bank: StyleBank, source: str) -> Path:
    """Write ``folder/styles.safetensors`` and record it in config.json's ``metadata.styles``."""
    folder = Path(folder)
    tensors = {
        "centers": torch.from_numpy(np.ascontiguousarray(bank.centers, dtype=np.float32)),
        "mean": torch.from_numpy(np.ascontiguousarray(bank.mean, dtype=np.float32)),
        "counts": torch.from_numpy(np.ascontiguousarray(bank.counts, dtype=np.int64)),
    }
    partial = folder / (STYLES_FILE + ".partial")
    save_file(tensors, str(partial), metadata={"format": "carla-neural/styles"})
    config_path = folder / CONFIG_FILE
    document = json.loads(config_path.read_text())
    document.setdefault("metadata", {})["styles"] = {
        "k": bank.k, "feat_nc": int(bank.centers.shape[2]), "regions": int(bank.counts.sum()),
        "file": STYLES_FILE, "source": source, STRENGTH_KEY: float(bank.strength),
    }
    config_partial = folder / (CONFIG_FILE + ".partial")
    config_partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(folder / STYLES_FILE)
    config_partial.replace(config_path)
    return folder / STYLES_FILE


def load_styles(folder: str | Path, label_nc: int, feat_nc: int, strength: float | None = None) -> StyleBank | None:
    """The StyleBank of a checkpoint folder, checked against its generator (label_nc, feat_nc);
    None when the folder has no styles file. ``strength``: replaces the stored one, unread (what
    `styles CKPT --strength S` writes, so it also mends a bad stored value). CheckpointError names
    the file and the problem."""
    path = Path(folder) / STYLES_FILE
    if not path.is_file():
        return None
    tensors = read_weights(path)
    expected = {"centers": 3, "mean": 2, "counts": 1}
    if set(tensors) != set(expected) or any(tensors[name].ndim != nd for name, nd in expected.items()):
        raise CheckpointError(f"{path} must hold exactly centers (label_nc, K, feat_nc), mean "
                              f"(label_nc, feat_nc) and counts (label_nc,); got "
                              f"{ {name: tuple(t.shape) for name, t in tensors.items()} }")
    centers, mean, counts = (tensors[name].numpy() for name in ("centers", "mean", "counts"))
    k = centers.shape[1]
    if (centers.shape[0], centers.shape[2]) != (label_nc, feat_nc) or mean.shape != (label_nc, feat_nc) \
            or counts.shape != (label_nc,) or not 1 <= k <= MAX_STYLES:
        raise CheckpointError(f"{path}: centers {centers.shape}, mean {mean.shape}, counts {counts.shape} "
                              f"do not fit the generator (label_nc {label_nc}, feat_nc {feat_nc}, "
                              f"1..{MAX_STYLES} styles); recompute them with `carla-neural styles`")
    if centers.dtype != np.float32 or not (np.isfinite(centers).all() and np.isfinite(mean).all()):
        raise CheckpointError(f"{path}: centers and mean must be finite float32; recompute them with "
                              "`carla-neural styles`")
    from renderer.checkpoint import read_config

    metadata = read_config(folder)[1]
    if strength is None:
        strength = (metadata.get("styles") or {}).get(STRENGTH_KEY, 1.0)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise CheckpointError(f"{Path(folder) / CONFIG_FILE}: metadata.styles.{STRENGTH_KEY} is {strength!r}; "
                              "it must be a number in (0, 1]: set it with `carla-neural styles CKPT --strength S`")
    return StyleBank(centers, mean, counts.astype(np.int64), styles_on_frozen_base(metadata), float(strength))


def styles_on_frozen_base(metadata: dict[str, Any]) -> bool:
    """Whether a checkpoint's config.json ``metadata`` marks styles added to a frozen model."""
    return STYLES_ADDED_TO in metadata


# --------------------------------------------------------------------------- encoding


def encoder_size(width: int, height: int, generator: Vid2VidGenerator) -> tuple[int, int]:
    """(W, H) rounded down to the encoder's multiple (at least one multiple)."""
    multiple = generator.encoder.size_multiple
    return max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)


@torch.inference_mode()
def encode_frame(generator: Vid2VidGenerator, rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB (sides multiples of the encoder's) -> (1, feat_nc, H, W) float32."""
    device = next(generator.encoder.parameters()).device
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    return generator.encoder(image.to(device)).float()


def collect_regions(
    generator: Vid2VidGenerator,
    frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label_ids, rgb, instance_ids) frames at an encoder size -> every region's class, feature
    and luminance (see ``region_samples``), concatenated."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for label_ids, rgb, instance_ids in frames:
        parts.append(region_samples(encode_frame(generator, rgb), label_ids, instance_ids, rgb))
    if not parts:
        raise ValueError("no frames to compute styles from")
    labels, features, luma = (np.concatenate(column) for column in zip(*parts))
    return labels, features, luma


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) Cityscapes trainIds (0..18) -> labelIds (the lowest labelId of each train class)."""
    from renderer.segmenter.classes import LABEL_TO_TRAIN, NUM_CLASSES

    table = np.zeros(256, dtype=np.uint8)
    for train_id in range(NUM_CLASSES):
        table[train_id] = int(np.flatnonzero(LABEL_TO_TRAIN == train_id)[0])
    return table[np.asarray(train_ids, dtype=np.uint8)]


def style_from_photo(
    generator: Vid2VidGenerator, bank: StyleBank | None, rgb: np.ndarray, label_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A photo's style: (H, W, 3) uint8 RGB [+ its (H, W) labelIds; None: the bundled segmenter
    labels it] -> per-class vectors (label_nc, feat_nc) float32 (the mean feature of each class's
    pixels; the class's training mean where the photo lacks it; at the bank's strength, like the
    clusters) and which classes the photo had (label_nc,) bool."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"the photo must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if label_ids is None:
        from renderer.segmenter.checkpoint import load_segmenter
        from renderer.segmenter.inference import predict_train_ids

        label_ids = train_ids_to_label_ids(predict_train_ids(load_segmenter("bundled"), [rgb])[0])
    if label_ids.shape != rgb.shape[:2]:
        raise ValueError(f"the photo's labels are {label_ids.shape}, the photo {rgb.shape[:2]}")
    width, height = encoder_size(rgb.shape[1], rgb.shape[0], generator)
    import cv2

    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA) if (width, height) != rgb.shape[1::-1] else rgb
    labels = resize_nearest(label_ids, width, height)
    label_nc = generator.config.label_nc
    if int(labels.max()) >= label_nc:
        raise ValueError(f"the photo's labels hold id {int(labels.max())}, beyond the model's 0..{label_nc - 1}")
    means, present = class_means(encode_frame(generator, small), torch.from_numpy(labels.astype(np.int64))[None],
                                 label_nc)
    present_np = present.cpu().numpy()
    fallback = bank.mean if bank is not None else np.zeros((label_nc, generator.config.feat_nc), np.float32)
    vectors = np.where(present_np[:, None], means.cpu().numpy(), fallback).astype(np.float32)
    return (vectors if bank is None else bank.scaled(vectors)), present_np


def dataset_frames(
    sequences: Iterable[Any], load_width: int | None, multiple: int, max_frames: int = 240
) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(label_ids, rgb, instance_ids) of up to ``max_frames`` frames spread evenly over the
    sequences (``renderer.training.datasets.Sequence``), resized to ``load_width`` (None: as
    stored) and cropped to multiples of ``multiple``: the scale the encoder trained at."""
    from renderer.training.datasets import load_frame, resize_frame

    sequences = list(sequences)
    total = sum(len(seq) for seq in sequences)
    if total == 0:
        raise ValueError("no frames to compute styles from")
    stride = max(1, -(-total // max_frames))
    for seq in sequences:
        for index in range(0, len(seq), stride):
            label_ids, rgb, instance_ids = load_frame(seq, index)
            height, width = label_ids.shape
            if load_width is not None and load_width != width:
                label_ids, rgb, instance_ids = resize_frame(
                    label_ids, rgb, instance_ids, load_width, max(1, round(height * load_width / width)))
            height, width = label_ids.shape
            crop = (slice(0, max(multiple, height // multiple * multiple)),
                    slice(0, max(multiple, width // multiple * multiple)))
            yield label_ids[crop], np.ascontiguousarray(rgb[crop]), instance_ids[crop]


def compute_styles(
    generator: Vid2VidGenerator, sequences: Iterable[Any], k: int, load_width: int | None = None,
    max_frames: int = 240, seed: int = 0,
) -> StyleBank:
    """Encode training frames, pool per instance and cluster per class (see the module doc)."""
    if not generator.has_styles:
        raise ValueError("this generator has no feature encoder (feat_nc 0): train it with "
                         "--feature-channels N first")
    was_training = generator.training
    generator.eval()
    try:
        frames = dataset_frames(sequences, load_width, generator.encoder.size_multiple, max_frames)
        labels, features, luma = collect_regions(generator, frames)
    finally:
        generator.train(was_training)
    bank = cluster_styles(labels, features, luma, generator.config.label_nc, k, seed=seed)
    log.info("styles: %d clusters per class from %d regions of %d classes", k, len(labels),
             int((bank.counts > 0).sum()))
    return bank
