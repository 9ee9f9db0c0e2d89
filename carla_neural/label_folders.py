"""Folders of label-id PNGs (NVIDIA's test_A layout, or one flat folder) and their instance maps.

Everything is read and checked before anything is rendered: an unreadable, colour or
out-of-range image is a `LabelFolderError` naming the file, and files that are not images are
reported once instead of being skipped in silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


class LabelFolderError(ValueError):
    """A label or instance folder that cannot be rendered; the message names the file and what to do."""


@dataclass(frozen=True)
class LabelSequence:
    """One sequence: its name ('' for a flat folder), label files and paired instance files."""

    name: str
    frames: list[Path]
    instances: list[Path] | None = None


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]


def find_sequences(labels: Path) -> tuple[list[LabelSequence], list[Path]]:
    """The sequences in ``labels`` (itself, or one sub-folder per sequence) and the files skipped
    because they are not images."""
    direct, skipped = _listing(labels)
    if direct:
        return [LabelSequence("", direct)], skipped
    sequences = []
    for sub in sorted(p for p in labels.iterdir() if p.is_dir()):
        frames, others = _listing(sub)
        skipped += others
        if frames:
            sequences.append(LabelSequence(sub.name, frames))
    if not sequences:
        raise LabelFolderError(
            f"{labels} holds no label images ({', '.join(sorted(IMAGE_SUFFIXES))}), directly or in "
            "sub-folders"
        )
    return sequences, skipped


def pair_instances(instances: Path, sequence: LabelSequence) -> LabelSequence:
    """``sequence`` with its instance maps: same file names if present, else NVIDIA's pairing by
    sorted order (test_A and test_inst hold equally many files per sequence)."""
    folder = instances / sequence.name if sequence.name else instances
    if not folder.is_dir():
        raise LabelFolderError(
            f"no instance folder {folder} for label sequence {sequence.name or sequence.frames[0].parent}"
        )
    same_names = [folder / frame.name for frame in sequence.frames]
    if all(path.is_file() for path in same_names):
        return LabelSequence(sequence.name, sequence.frames, same_names)
    available, _ = _listing(folder)
    if len(available) != len(sequence.frames):
        raise LabelFolderError(
            f"{folder} holds {len(available)} instance maps for {len(sequence.frames)} label frames; "
            "give one per frame (same names, or the same count in the same sorted order)"
        )
    return LabelSequence(sequence.name, sequence.frames, available)


def read_ids(path: Path, what: str) -> np.ndarray:
    """(H, W) integer ids of one single-channel PNG (uint8 labels, uint8/uint16 instances)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise LabelFolderError(
            f"cannot read {what} image {path}: it is empty, truncated or not an image; replace or remove it"
        )
    if image.ndim == 3:
        channels = image[..., :3]
        grey = np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(
            channels[..., 1], channels[..., 2]
        )
        if not grey:
            raise LabelFolderError(
                f"{path} is a colour image; {what} must be single-channel ids (labelIds PNGs, "
                "not the colourised *_color.png)"
            )
        image = channels[..., 0]
    if not np.issubdtype(image.dtype, np.integer):
        raise LabelFolderError(f"{path}: {what} ids must be integers, got {image.dtype} pixels")
    return image


def check_sequences(sequences: list[LabelSequence], label_nc: int) -> None:
    """Read every label and instance image once and raise LabelFolderError at the first bad one:
    unreadable, colour, label ids outside 0..label_nc-1, or an instance map of another size."""
    for sequence in sequences:
        for index, frame in enumerate(sequence.frames):
            label_ids = read_ids(frame, "label")
            top = int(label_ids.max(initial=0))
            if top >= label_nc:
                raise LabelFolderError(
                    f"{frame}: label id {top} is outside 0..{label_nc - 1}: pass Cityscapes labelIds "
                    "(map 255/unknown to 0 'unlabeled' first)"
                )
            if sequence.instances is not None:
                instance_path = sequence.instances[index]
                instance_ids = read_ids(instance_path, "instance")
                if instance_ids.shape != label_ids.shape:
                    raise LabelFolderError(
                        f"{instance_path} is {instance_ids.shape[1]}x{instance_ids.shape[0]} but its label "
                        f"frame {frame} is {label_ids.shape[1]}x{label_ids.shape[0]}: pair maps of one size"
                    )


def describe_skipped(skipped: list[Path]) -> str | None:
    """One line naming the files that were skipped as not images, or None."""
    if not skipped:
        return None
    shown = ", ".join(str(p) for p in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    return f"skipped {len(skipped)} file(s) that are not label images ({shown})"
