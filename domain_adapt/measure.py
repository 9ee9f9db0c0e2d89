"""Measure the statistics document of label sequences on disk (optionally after a label transform)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from domain_adapt.sequences import LabelSequence, find_sequences, iter_frames
from domain_adapt.stats import LabelStatsAccumulator

# (H, W) uint8 labelIds -> (H, W) uint8 labelIds, e.g. a `LabelTransform`.
LabelMapFunction = Callable[[np.ndarray], np.ndarray]


def measure_sequences(sequences: list[LabelSequence], transform: LabelMapFunction | None = None,
                      origin: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """The statistics document of `sequences`, each frame passed through `transform` first if given."""
    accumulator = LabelStatsAccumulator()
    total = sum(len(sequence) for sequence in sequences)
    with tqdm(total=total, desc="measure", unit="frame", disable=not progress) as bar:
        for sequence in sequences:
            accumulator.start_sequence(sequence.name)
            for label_ids, instance_ids, instance_format in iter_frames(sequence):
                if transform is not None:
                    label_ids = transform(label_ids)
                accumulator.add(label_ids, instance_ids, instance_format)
                bar.update(1)
    return accumulator.finish(origin)


def measure_path(path: str | Path, only: list[str] | None = None, transform: LabelMapFunction | None = None,
                 origin: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """The statistics document of the run folder or dataset at `path` (see `find_sequences`)."""
    return measure_sequences(find_sequences(path, only), transform, origin, progress)
