"""Paired label/RGB video clips for training: NVIDIA's vid2vid layout and our recorder's run folders.

NVIDIA layout (`root/train_A/<seq>/*.png` labelIds, `train_B` RGB, `train_inst` instance ids, and
ours: `train_flow` backward flow as KITTI PNGs). A run folder written by the recorder holds one
sequence: `frames/label_ids`, `frames/raw`, `frames/instance_ids`, `frames/flow`. A sequence without
photos (`rgb_paths` None: simulator label maps for unpaired fine-tuning) yields labels, edges and
recorded flow only.

A clip is `clip_length` consecutive frames (optionally every `t_step`-th) from a random start, with
one horizontal flip for the whole clip, resized to `load_width` and randomly cropped to `crop_size`.
With `colour_jitter` a, each class of a clip gets its own colour gain (brightness in [1-a, 1+a]
times a tint in [1-a/2, 1+a/2] per channel), the same on every frame of the clip.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from renderer.edges import instance_edges
from renderer.flow_png import read_flow_png
from renderer.resize import resize_nearest
from renderer.training.flow import FlowCache, resize_flow

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """A dataset folder that cannot be trained on; the message says what to fix."""


@dataclass
class Sequence:
    """The frame files of one sequence, all lists sorted and of equal length (or None: rgb_paths None
    is a sequence of label maps without photos)."""

    name: str
    label_paths: list[Path]
    rgb_paths: list[Path] | None
    instance_paths: list[Path] | None = None
    flow_paths: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.label_paths)


def class_colour_jitter(rgb: torch.Tensor, label_ids: torch.Tensor, amount: float, rng: random.Random) -> torch.Tensor:
    """(T, 3, H, W) float32 in [-1, 1], (T, H, W) int64 labelIds -> the clip recoloured class by
    class: one gain per class and channel (brightness in [1-a, 1+a] times a tint in
    [1-a/2, 1+a/2]), drawn from `rng` and shared by every frame; clamped to [-1, 1]."""
    n_classes = int(label_ids.max()) + 1
    gains = torch.tensor([[brightness * rng.uniform(1 - amount / 2, 1 + amount / 2) for _ in range(3)]
                          for brightness in (rng.uniform(1 - amount, 1 + amount) for _ in range(n_classes))],
                         dtype=rgb.dtype)  # (classes, 3)
    per_pixel = gains[label_ids].permute(0, 3, 1, 2)  # (T, 3, H, W)
    return ((rgb + 1) * per_pixel - 1).clamp(-1, 1)


def _frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _check_same_length(seq_name: str, named_lists: dict[str, list[Path] | None]) -> None:
    lengths = {kind: len(paths) for kind, paths in named_lists.items() if paths is not None}
    if len(set(lengths.values())) > 1:
        raise DatasetError(
            f"sequence {seq_name!r} has mismatched frame counts {lengths}; every folder of a sequence "
            "must hold one file per frame"
        )
    first_names = {kind: [p.stem for p in paths] for kind, paths in named_lists.items() if paths is not None}
    reference = first_names.get("labels")
    for kind, names in first_names.items():
        if reference is not None and names != reference:
            bad = next(i for i, (a, b) in enumerate(zip(reference, names)) if a != b)
            raise DatasetError(
                f"sequence {seq_name!r}: frame {bad} is {reference[bad]!r} in labels but {names[bad]!r} "
                f"in {kind}; file names must match across folders"
            )


def scan_nvidia_layout(root: str | Path, phase: str = "train") -> list[Sequence]:
    """Sequences of an NVIDIA-layout dataset (`<phase>_A`, `_B`, optional `_inst` and `_flow`)."""
    root = Path(root)
    label_root, rgb_root = root / f"{phase}_A", root / f"{phase}_B"
    for folder in (label_root, rgb_root):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder} is missing: a vid2vid dataset needs {phase}_A/<seq>/ (labelIds) and "
                f"{phase}_B/<seq>/ (RGB); `carla-neural dataset export` writes one"
            )
    inst_root, flow_root = root / f"{phase}_inst", root / f"{phase}_flow"
    sequences = []
    for seq_dir in sorted(p for p in label_root.iterdir() if p.is_dir()):
        name = seq_dir.name
        if not (rgb_root / name).is_dir():
            raise DatasetError(f"sequence {name!r} has labels but no {rgb_root / name}")
        labels, rgbs = _frames(seq_dir), _frames(rgb_root / name)
        insts = _frames(inst_root / name) if (inst_root / name).is_dir() else None
        flows = _frames(flow_root / name) if (flow_root / name).is_dir() else None
        _check_same_length(name, {"labels": labels, "rgb": rgbs, "instances": insts, "flow": flows})
        sequences.append(Sequence(name, labels, rgbs, insts, flows))
    if not sequences:
        raise DatasetError(f"{label_root} holds no sequence folders")
    return sequences


def scan_run_folder(run: str | Path) -> Sequence:
    """The one sequence of a recorder run folder (needs PNG output: frames/label_ids and frames/raw)."""
    run = Path(run)
    frames = run / "frames"
    for kind in ("label_ids", "raw"):
        if not (frames / kind).is_dir():
            raise DatasetError(
                f"{run} has no frames/{kind}/: record the run with PNG output on to train on it"
            )
    labels, rgbs = _frames(frames / "label_ids"), _frames(frames / "raw")
    insts = _frames(frames / "instance_ids") if (frames / "instance_ids").is_dir() else None
    flows = _frames(frames / "flow") if (frames / "flow").is_dir() else None
    _check_same_length(run.name, {"labels": labels, "rgb": rgbs, "instances": insts, "flow": flows})
    return Sequence(run.name, labels, rgbs, insts, flows)


def scan_dataset(path: str | Path, phase: str = "train") -> list[Sequence]:
    """Sequences under `path`: an NVIDIA-layout root, one run folder, or a folder of run folders."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"dataset folder {path} does not exist")
    if (path / f"{phase}_A").is_dir():
        return scan_nvidia_layout(path, phase)
    if (path / "frames").is_dir():
        return [scan_run_folder(path)]
    runs = sorted(p for p in path.iterdir() if (p / "frames").is_dir())
    if runs:
        return [scan_run_folder(run) for run in runs]
    raise DatasetError(
        f"{path} is neither a vid2vid dataset ({phase}_A/, {phase}_B/) nor a recorder run folder "
        "(frames/label_ids, frames/raw)"
    )


def named_sequences(sequences: list[Sequence], names: list[str], origin: str = "the dataset") -> list[Sequence]:
    """The sequences called `names`, in dataset order; DatasetError naming any the dataset lacks."""
    known = [seq.name for seq in sequences]
    missing = [name for name in names if name not in known]
    if missing:
        raise DatasetError(f"{origin} has no sequence {missing}; its sequences are {known}")
    return [seq for seq in sequences if seq.name in names]


def hold_out(sequences: list[Sequence], names: list[str]) -> list[Sequence]:
    """`sequences` without those named in `names`; every name must exist, and something must remain."""
    named_sequences(sequences, names)  # every held-out name must exist
    kept = [seq for seq in sequences if seq.name not in names]
    if not kept:
        raise DatasetError(f"holding out {names} leaves no sequence to train on")
    return kept


def read_label_ids(path: Path) -> np.ndarray:
    """A labelIds PNG -> (H, W) uint8."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read label image {path}")
    if image.ndim == 3:
        if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
            raise DatasetError(f"{path} is a colour image; label maps must hold Cityscapes labelIds")
        image = image[..., 0]
    return image.astype(np.uint8)


def read_rgb(path: Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_instance_ids(path: Path) -> np.ndarray:
    """An instance PNG (uint16 or uint8) -> (H, W) int32."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read instance image {path}")
    if image.ndim == 3:
        image = image[..., 0]
    return image.astype(np.int32)


def resize_frame(label_ids: np.ndarray, rgb: np.ndarray | None, instance_ids: np.ndarray, width: int, height: int,
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One frame to (width, height): (H, W) uint8 labels and (H, W) int32 instances nearest, (H, W, 3)
    uint8 photo (or None) area-averaged (a photo downsized by point sampling aliases)."""
    if label_ids.shape == (height, width):
        return label_ids, rgb, instance_ids
    return (resize_nearest(label_ids, width, height),
            None if rgb is None else cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA),
            resize_nearest(instance_ids, width, height))


def read_recorded_flow(path: Path, native_hw: tuple[int, int], width: int, height: int) -> np.ndarray:
    """A recorded backward-flow PNG of a frame of native (H, W) -> (height, width, 2) float32 pixels;
    pixels the file marks invalid count as no motion."""
    flow_px, valid = read_flow_png(path)
    flow_px[~valid] = 0.0  # foreign files may mark pixels invalid; treat them as no motion
    if flow_px.shape[:2] != tuple(native_hw):
        raise DatasetError(f"flow {path} has size {flow_px.shape[:2]}, frames {tuple(native_hw)}")
    return resize_flow(flow_px, width, height)


def load_frame(seq: Sequence, index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Frame `index` of `seq` at its native size: label_ids (H, W) uint8, rgb (H, W, 3) uint8 (None
    for a sequence without photos), instance_ids (H, W) int32 (the label ids where the sequence has
    no instance maps)."""
    label_ids = read_label_ids(seq.label_paths[index])
    rgb = read_rgb(seq.rgb_paths[index]) if seq.rgb_paths is not None else None
    instance_ids = read_instance_ids(seq.instance_paths[index]) if seq.instance_paths else label_ids.astype(np.int32)
    if (rgb is not None and rgb.shape[:2] != label_ids.shape) or instance_ids.shape != label_ids.shape:
        raise DatasetError(
            f"sequence {seq.name!r} frame {seq.label_paths[index].name}: label {label_ids.shape}, "
            f"rgb {None if rgb is None else rgb.shape[:2]} and instance {instance_ids.shape} sizes differ"
        )
    return label_ids, rgb, instance_ids


class ClipDataset(Dataset):
    """Random clips of paired sequences; item i is reproducible from (seed, i, epoch).

    Each item is a dict of tensors:
      label_ids (T, H, W) int64, edges (T, 1, H, W) float32, rgb (T, 3, H, W) float32 in [-1, 1]
      (absent for sequences without photos), flow (T, 2, H, W) float32 backward flow in pixels
      (flow[0] = 0), has_flow (T,) bool.
    """

    def __init__(self, sequences: list[Sequence], clip_length: int, crop_size: tuple[int, int],
                 load_width: int | None = None, flip: bool = True, t_step: int = 1,
                 flow_cache: FlowCache | None = None, seed: int = 0, items_per_epoch: int | None = None,
                 label_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 colour_jitter: float = 0.0) -> None:
        if clip_length < 1:
            raise ValueError(f"clip_length must be >= 1, got {clip_length}")
        self.sequences = sequences
        self.crop_size = crop_size
        self.load_width = load_width
        self.flip = flip
        self.t_step = t_step
        self.flow_cache = flow_cache if flow_cache is not None else FlowCache(None)
        self.seed = seed
        self.epoch = 0
        self.items_per_epoch = items_per_epoch
        self.clip_length = clip_length
        # (H, W) uint8 -> (H, W) uint8 labelIds at the load size, as a run applies it after remap
        # (e.g. carla_neural.label_transform.LabelTransform), so a model learns the maps it will get.
        self.label_transform = label_transform
        # A model that has learnt a few sequences by heart predicts their colours from the label
        # layout alone; recolouring each class per clip leaves the style encoder as the only way
        # to the photo's colours (docs/styles.md, probes).
        self.colour_jitter = colour_jitter
        # Frames resized to the load size and their flow, decoded once per process: decoding a
        # 2048x1024 JPEG and DIS flow at that size cost ~1 s per frame, more than a training step.
        self._frames: dict[tuple[str, int], tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}
        self._flows: dict[tuple[str, int], np.ndarray] = {}
        self._native_sizes: dict[str, tuple[int, int]] = {}  # (H, W) of each sequence's files

    @property
    def clip_length(self) -> int:
        return self._clip_length

    @clip_length.setter
    def clip_length(self, value: int) -> None:
        span = (value - 1) * self.t_step + 1
        usable = [s for s in self.sequences if len(s) >= span]
        if not usable:
            longest = max(len(s) for s in self.sequences)
            raise DatasetError(
                f"no sequence is long enough for clips of {value} frames (step {self.t_step}): the "
                f"longest has {longest} frames; use shorter clips or longer sequences"
            )
        if len(usable) < len(self.sequences):
            log.warning("%d of %d sequences are shorter than %d frames and are skipped",
                        len(self.sequences) - len(usable), len(self.sequences), span)
        self._clip_length = value
        self._usable = usable

    def __len__(self) -> int:
        if self.items_per_epoch is not None:
            return self.items_per_epoch
        span = (self._clip_length - 1) * self.t_step + 1
        return sum(len(s) - span + 1 for s in self._usable)

    def frame_width(self) -> int:
        """Width in pixels of the frames crops are cut from (the load size of the first sequence)."""
        return int(self._resized_frame(self._usable[0], 0)[0].shape[1])

    def _out_size(self, width: int, height: int) -> tuple[int, int]:
        if self.load_width is None or self.load_width == width:
            return width, height
        return self.load_width, max(1, round(height * self.load_width / width))

    def _resized_frame(self, seq: Sequence, index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Frame `index` of `seq` at the load size: label_ids (H, W) uint8, rgb (H, W, 3) uint8 or None,
        instance_ids (H, W) int32; photos area-resized, label and instance maps nearest, then the labels
        through `label_transform` if there is one."""
        key = (seq.name, index)
        cached = self._frames.get(key)
        if cached is None:
            label_ids, rgb, instance_ids = load_frame(seq, index)
            height, width = label_ids.shape
            self._native_sizes[seq.name] = (height, width)
            label_ids, rgb, instance_ids = resize_frame(label_ids, rgb, instance_ids, *self._out_size(width, height))
            if self.label_transform is not None:
                label_ids = self.label_transform(label_ids)
            cached = self._frames[key] = (label_ids, rgb, instance_ids)
        return cached

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(hash((self.seed, self.epoch, index)))
        seq = rng.choice(self._usable)
        span = (self._clip_length - 1) * self.t_step + 1
        start = rng.randint(0, len(seq) - span)
        indices = [start + k * self.t_step for k in range(self._clip_length)]
        flip = self.flip and rng.random() < 0.5

        frames = [self._resized_frame(seq, i) for i in indices]
        out_h, out_w = frames[0][0].shape
        crop_w, crop_h = self.crop_size
        if crop_w > out_w or crop_h > out_h:
            raise DatasetError(f"crop {crop_w}x{crop_h} is larger than the resized frames {out_w}x{out_h}")
        x0 = rng.randint(0, out_w - crop_w)
        y0 = rng.randint(0, out_h - crop_h)

        labels, edges, rgbs, flows, has_flow, instances = [], [], [], [], [], []
        for k, (frame_index, (label_ids, rgb, instance_ids)) in enumerate(zip(indices, frames)):
            flow_px, valid = self._flow(seq, frame_index, k)
            window = (slice(y0, y0 + crop_h), slice(x0, x0 + crop_w))
            label_ids, instance_ids, flow_px = label_ids[window], instance_ids[window], flow_px[window]
            rgb = None if rgb is None else rgb[window]
            if flip:
                label_ids, instance_ids = label_ids[:, ::-1], instance_ids[:, ::-1]
                rgb = None if rgb is None else rgb[:, ::-1]
                flow_px = flow_px[:, ::-1].copy()
                flow_px[..., 0] *= -1.0
            labels.append(np.ascontiguousarray(label_ids))
            edges.append(instance_edges(instance_ids).astype(np.float32))
            instances.append(np.ascontiguousarray(instance_ids))
            if rgb is not None:
                rgbs.append(np.ascontiguousarray(rgb))
            flows.append(np.ascontiguousarray(flow_px))
            has_flow.append(valid)

        item = {
            "label_ids": torch.from_numpy(np.stack(labels)).long(),
            "edges": torch.from_numpy(np.stack(edges)).unsqueeze(1),
            "flow": torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous(),
            "has_flow": torch.tensor(has_flow),
            # (T, H, W) int64: what a style encoder's features are averaged over (docs/styles.md)
            "instance_ids": torch.from_numpy(np.stack(instances).astype(np.int64)),
        }
        if rgbs:
            item["rgb"] = torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            if self.colour_jitter > 0:
                item["rgb"] = class_colour_jitter(item["rgb"], item["label_ids"], self.colour_jitter, rng)
        return item

    def _flow(self, seq: Sequence, frame_index: int, clip_pos: int) -> tuple[np.ndarray, bool]:
        """Backward flow t -> t-step at the load size (H, W, 2) float32 pixels; zeros (not valid) for
        the clip's first frame. Recorded flow when the sequence has it, else DIS on the resized photos;
        zeros (not valid) for a sequence with neither."""
        label_ids, rgb, _ = self._resized_frame(seq, frame_index)
        if clip_pos == 0 or (rgb is None and not (seq.flow_paths is not None and self.t_step == 1)):
            return np.zeros(label_ids.shape + (2,), np.float32), False
        key = (seq.name, frame_index)
        flow_px = self._flows.get(key)
        if flow_px is None:
            out_h, out_w = label_ids.shape
            if seq.flow_paths is not None and self.t_step == 1:
                flow_px = read_recorded_flow(seq.flow_paths[frame_index], self._native_sizes[seq.name], out_w, out_h)
            else:
                prev_rgb = self._resized_frame(seq, frame_index - self.t_step)[1]
                assert prev_rgb is not None and rgb is not None  # label-only sequences returned above
                name = seq.rgb_paths[frame_index].name if self.t_step == 1 else f"{seq.rgb_paths[frame_index].stem}_s{self.t_step}"
                flow_px = self.flow_cache.get(seq.name, name, prev_rgb, rgb)
            self._flows[key] = flow_px
        return flow_px, True
