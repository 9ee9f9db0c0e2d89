"""Find the label-map sequences of a run folder or of a dataset in NVIDIA's vid2vid layout.

Only labels (and instance maps where present) are needed, so a `test_A` tree without photos is
as good as `train_A`. Every problem is a `GapInputError` whose one line names the file or folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Label and instance maps must be lossless; a JPEG of ids would hold ids that were never drawn.
MAP_SUFFIXES = (".png",)
PHASES = ("train", "test")


class GapInputError(ValueError):
    """A SIM folder, dataset or reference that cannot be measured; the message names the file."""


@dataclass
class LabelSequence:
    """One sequence's label PNGs and, where present, its instance PNGs and backward-flow PNGs (KITTI
    encoding, as `record` writes them; same count, same order)."""

    name: str
    label_paths: list[Path]
    instance_paths: list[Path] | None = None
    flow_paths: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.label_paths)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MAP_SUFFIXES)


def _run_folder(run: Path) -> LabelSequence:
    labels_dir = run / "frames" / "label_ids"
    labels = _images(labels_dir) if labels_dir.is_dir() else []
    if not labels:
        recorded = ""
        run_json = run / "run.json"
        if run_json.is_file():
            try:
                recorded = f" (run.json lists PNG kinds {json.loads(run_json.read_text()).get('png')})"
            except json.JSONDecodeError:
                recorded = ""
        raise GapInputError(f"{labels_dir}/ holds no label PNGs{recorded}: record the run with --png "
                            "(the default of `carla-neural record`)")
    return LabelSequence(run.name, labels, _beside(run / "frames" / "instance_ids", labels),
                         _beside(run / "frames" / "flow", labels))


def _beside(folder: Path, labels: list[Path]) -> list[Path] | None:
    """The files of `folder` named as the label PNGs, when every one is there; else None."""
    if not folder.is_dir():
        return None
    by_name = [folder / path.name for path in labels]
    return by_name if all(p.is_file() for p in by_name) else None


def _nvidia_layout(root: Path) -> list[LabelSequence]:
    sequences = []
    for phase in PHASES:
        label_root, inst_root = root / f"{phase}_A", root / f"{phase}_inst"
        if not label_root.is_dir():
            continue
        for seq_dir in sorted(p for p in label_root.iterdir() if p.is_dir()):
            labels = _images(seq_dir)
            if not labels:
                continue
            instances = _images(inst_root / seq_dir.name) if (inst_root / seq_dir.name).is_dir() else None
            if instances is not None and len(instances) != len(labels):
                raise GapInputError(f"{inst_root / seq_dir.name} holds {len(instances)} instance maps for "
                                    f"{len(labels)} label maps in {seq_dir}; give one per frame or none")
            flows = _beside(root / f"{phase}_flow" / seq_dir.name, labels)
            sequences.append(LabelSequence(f"{phase}_A/{seq_dir.name}", labels, instances, flows))
    return sequences


def find_sequences(path: str | Path, only: list[str] | None = None) -> list[LabelSequence]:
    """The label sequences under `path` (a run folder, a folder of run folders, or an NVIDIA root).

    only: sequence names to keep (e.g. ["train_A/seq0004"]); an unknown name is an error.
    """
    path = Path(path)
    if not path.is_dir():
        raise GapInputError(f"{path} does not exist or is not a folder (give a `carla-neural record` run "
                            "folder or a dataset in NVIDIA's layout)")
    if (path / "frames").is_dir() or (path / "run.json").is_file():
        sequences = [_run_folder(path)]
    elif any((path / f"{phase}_A").is_dir() for phase in PHASES):
        sequences = _nvidia_layout(path)
    else:
        runs = sorted(p for p in path.iterdir() if (p / "run.json").is_file())
        if not runs:
            raise GapInputError(f"{path} is neither a run folder (run.json, frames/label_ids/) nor a dataset "
                                "in NVIDIA's layout (train_A/<seq>/ or test_A/<seq>/)")
        sequences = [_run_folder(run) for run in runs]
    if only is not None:
        known = {seq.name: seq for seq in sequences}
        missing = [name for name in only if name not in known]
        if missing:
            raise GapInputError(f"{path} has no sequence {', '.join(missing)}; it has {', '.join(known)}")
        sequences = [known[name] for name in only]
    if not sequences:
        raise GapInputError(f"{path} holds no label sequences")
    return sequences


def read_ids(path: Path, what: str) -> np.ndarray:
    """A single-channel id PNG -> (H, W) uint8 or uint16, as stored; GapInputError names the file."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise GapInputError(f"cannot read {what} image {path}: missing or not an image")
    if image.ndim == 3:
        if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
            raise GapInputError(f"{path} is a colour image; {what} maps must hold single-channel ids "
                                "(labelIds PNGs, not the colourised *_color.png)")
        image = image[..., 0]
    return image


def iter_frames(sequence: LabelSequence) -> Iterator[tuple[np.ndarray, np.ndarray | None, str | None]]:
    """(label ids (H, W) uint8, instance ids (H, W) or None, instance format) per frame, in order.

    The format follows the PNG depth: uint16 is Cityscapes-style (labelId * 1000 + k, the recorder's
    and `dataset export`'s), uint8 is small ids per object (NVIDIA's Cityscapes sample).
    """
    for index, label_path in enumerate(sequence.label_paths):
        label_ids = read_ids(label_path, "label")
        if label_ids.dtype != np.uint8:
            raise GapInputError(f"{label_path} is {label_ids.dtype}; label maps hold uint8 Cityscapes labelIds")
        instance_ids = instance_format = None
        if sequence.instance_paths is not None:
            instance_ids = read_ids(sequence.instance_paths[index], "instance")
            instance_format = "cityscapes" if instance_ids.dtype == np.uint16 else "small"
        yield label_ids, instance_ids, instance_format
