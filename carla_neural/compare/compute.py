"""Compute raw-vs-neural metrics over a run folder, one pass over the frames."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carla_neural.compare.run_folder import RunFolder, RunFolderError, count_images, iter_image_folder
from renderer.metrics import (
    ClassColorStats,
    TemporalFlowDifference,
    WarpingErrorStream,
    flow_difference,
    label_consistency_mask,
)

log = logging.getLogger(__name__)

# warp: warping error under ground-truth flow; tof: tOF; fid: FID and KID; color: per-class colour;
# seg: the segmenter's mIoU / pixel accuracy against the run's label ids (semantic consistency).
ALL_METRICS = ("warp", "tof", "fid", "color", "seg")


@dataclass
class CompareOptions:
    """What to compute and how.

    metrics: any of ALL_METRICS. real_dir: folder of real photographs for FID/KID (optional).
    max_real: use at most this many real images (sorted by path). fid_stride: feed every n-th
    frame to InceptionV3 (it costs ~0.25 s per image on a CPU); fid_max_frames raises the stride
    so that at most that many frames per stream go through it (None: no cap). fid_frames: feed
    exactly this many frames, spread evenly over the run, instead (a quick sample).
    dis_preset: DIS preset for tOF. thumbnails: frames shown raw | neural in the report.
    segmenter: "bundled" or a segmenter folder (for seg).
    """

    metrics: tuple[str, ...] = ALL_METRICS
    real_dir: Path | None = None
    max_real: int | None = None
    fid_stride: int = 1
    fid_max_frames: int | None = 500
    fid_frames: int | None = None
    dis_preset: str = "fast"
    device: str = "cpu"
    batch_size: int = 16
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    thumbnails: int = 4
    segmenter: str = "bundled"

    def __post_init__(self) -> None:
        unknown = set(self.metrics) - set(ALL_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
        if self.fid_stride < 1:
            raise ValueError(f"fid_stride must be >= 1, got {self.fid_stride}")
        if self.fid_max_frames is not None and self.fid_max_frames < 2:
            raise ValueError(f"fid_max_frames must be >= 2 (FID needs 2 images), got {self.fid_max_frames}")
        if self.fid_frames is not None and self.fid_frames < 2:
            raise ValueError(f"fid_frames must be >= 2 (FID needs 2 images), got {self.fid_frames}")


@dataclass
class CompareResult:
    """metrics: the JSON-ready summary; per_frame: {series name: list of float|None per frame}."""

    metrics: dict[str, Any]
    per_frame: dict[str, list[float | None]]
    class_colors: list[dict[str, Any]] = field(default_factory=list)
    # (frame_id, raw (h, w, 3) uint8, neural (h, w, 3) uint8), downscaled, for the report.
    thumbnails: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)


class Progress:
    """tqdm-like sink: `update(n)` and `set_description(text)`; the default does nothing."""

    def update(self, count: int = 1) -> None:  # noqa: D102 - protocol
        pass

    def set_description(self, text: str) -> None:  # noqa: D102 - protocol
        pass


def check_inputs(run: RunFolder, options: CompareOptions) -> None:
    """Raise RunFolderError naming every file a requested metric needs and the run lacks."""
    problems = []
    rgb_ok = {name: run.has_png(name) or run.has_video(name) for name in ("raw", "neural")}
    for metric in options.metrics:
        for name in ("raw", "neural"):
            if not rgb_ok[name]:
                problems.append(run.missing_video(name, metric))
        if metric == "warp" and not run.has_png("flow"):
            problems.append(run.missing_png("flow", "warp (warping error)"))
        if metric == "color" and not run.has_png("label_ids"):
            problems.append(run.missing_png("label_ids", "color (per-class colour)"))
        if metric == "seg" and not run.has_png("label_ids"):
            problems.append(run.missing_png("label_ids", "seg (segmentation consistency)"))
    if options.real_dir is not None and "fid" not in options.metrics:
        problems.append("--real is given but fid is not among the metrics")
    if problems:
        unique = list(dict.fromkeys(problems))
        raise RunFolderError(
            f"cannot compare {run.path}:\n  - " + "\n  - ".join(unique)
            + f"\nRecord again with those options, or leave the metric out with --metrics "
              f"(any of {','.join(ALL_METRICS)}).")


def _nan_to_none(values: list[float]) -> list[float | None]:
    return [None if value is None or not math.isfinite(value) else round(float(value), 6) for value in values]


def _mean(values: list[float | None]) -> float | None:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return float(np.mean(finite)) if finite else None


class _Timer:
    """Accumulates seconds per metric name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.images = 0  # images through InceptionV3, for its per-image cost
        self.inception_s = 0.0  # seconds InceptionV3 itself took

    def run(self, name: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = work()
        self.seconds[name] += time.perf_counter() - start
        self.calls[name] += 1
        return result

    def ms_per_call(self) -> dict[str, float]:
        return {name: round(self.seconds[name] * 1000.0 / max(1, self.calls[name]), 3) for name in self.seconds}


def compare_run(run_dir: str | Path, options: CompareOptions | None = None,
                progress: Progress | None = None) -> CompareResult:
    """Compute the requested metrics of a run folder; raises RunFolderError on missing inputs."""
    options = options or CompareOptions()
    progress = progress or Progress()
    run = RunFolder(run_dir)
    check_inputs(run, options)
    metrics_on = set(options.metrics)
    have_labels = run.has_png("label_ids")
    need_labels = bool({"color", "seg"} & metrics_on) or ("warp" in metrics_on and have_labels)
    timer = _Timer()
    fid_stride = options.fid_stride
    if options.fid_frames:
        fid_indices = set(spread_indices(len(run), options.fid_frames))
    else:
        if options.fid_max_frames:
            fid_stride = max(fid_stride, math.ceil(len(run) / options.fid_max_frames))
        fid_indices = set(range(0, len(run), fid_stride))
    thumbnail_indices = set(spread_indices(len(run), options.thumbnails))
    thumbnails: list[tuple[int, np.ndarray, np.ndarray]] = []

    inception_streams: dict[str, Any] = {}
    # One background thread runs InceptionV3 batches while this one decodes frames and computes
    # the other metrics.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inception")
    if "fid" in metrics_on:
        from renderer.metrics import InceptionFeatures, InceptionStream

        progress.set_description("loading InceptionV3")
        extractor = InceptionFeatures(options.device, options.batch_size)
        inception_streams = {name: InceptionStream(extractor, executor=executor) for name in ("raw", "neural")}
        if options.real_dir is not None:
            inception_streams["real"] = InceptionStream(extractor, executor=executor)
    try:
        return _compare_frames(run, options, progress, timer, metrics_on, have_labels, need_labels,
                               inception_streams, fid_indices, fid_stride, thumbnail_indices, thumbnails)
    finally:
        executor.shutdown(wait=True)


def spread_indices(count: int, wanted: int) -> list[int]:
    """``wanted`` indices into ``count`` items, spread evenly, first and last included (all if fewer)."""
    if count <= 0 or wanted <= 0:
        return []
    return sorted({int(round(value)) for value in np.linspace(0, count - 1, min(wanted, count))})


def _compare_frames(run: RunFolder, options: CompareOptions, progress: Progress, timer: _Timer,
                    metrics_on: set[str], have_labels: bool, need_labels: bool, inception_streams: dict[str, Any],
                    fid_indices: set[int], fid_stride: int, thumbnail_indices: set[int],
                    thumbnails: list[tuple[int, np.ndarray, np.ndarray]]) -> CompareResult:
    warp_streams = {"raw": WarpingErrorStream(), "neural": WarpingErrorStream()}
    tof = TemporalFlowDifference(options.dis_preset) if "tof" in metrics_on else None
    colors = {"raw": ClassColorStats(), "neural": ClassColorStats()}

    segmentation = _segmentation_streams(options, progress) if "seg" in metrics_on else {}

    per_frame: dict[str, list[float | None]] = defaultdict(list)
    prev_frame_id: int | None = None
    prev_label_ids: np.ndarray | None = None
    # Images through InceptionV3 so far (it runs behind the frame loop) of those the run feeds it.
    fid_total = 2 * len(fid_indices) if inception_streams else 0

    def inception_progress() -> str:
        done = sum(inception_streams[name].images for name in ("raw", "neural"))
        return f"frames (InceptionV3 {done}/{fid_total} images)"

    progress.set_description(inception_progress() if fid_total else "frames")
    for images in run.iter_frames(raw=True, neural=True, label_ids=need_labels, flow="warp" in metrics_on):
        per_frame["frame_id"].append(images.frame_id)
        consecutive = prev_frame_id is not None and images.frame_id == prev_frame_id + 1
        if not consecutive:
            # Flow t -> t-1 is only meaningful between consecutive simulator ticks.
            for stream in warp_streams.values():
                stream.reset()
            if tof is not None:
                tof.reset()
        if "warp" in metrics_on:
            valid = images.flow_valid
            if have_labels and consecutive and prev_label_ids is not None:
                valid = valid & timer.run("warp_mask", lambda: label_consistency_mask(
                    prev_label_ids, images.label_ids, images.flow_px))
            for name in ("raw", "neural"):
                value = timer.run(f"warp_{name}", lambda name=name: warp_streams[name].update(
                    getattr(images, name), images.flow_px, valid))
                per_frame[f"warp_{name}"].append(value)
            per_frame["warp_valid_fraction"].append(float(valid.mean()) if consecutive else None)
        if tof is not None:
            value = timer.run("tof", lambda: tof.update(images.neural, images.raw))
            per_frame["tof"].append(value)
            if "warp" in metrics_on:
                # How well DIS tracks the simulator's own motion: context for reading tOF.
                per_frame["dis_flow_error_raw"].append(
                    None if value is None else flow_difference(tof.last_reference_flow, images.flow_px))
        if "color" in metrics_on:
            for name in ("raw", "neural"):
                timer.run(f"color_{name}", lambda name=name: colors[name].update(getattr(images, name),
                                                                                  images.label_ids))
        for name, stream in segmentation.items():
            timer.run(f"seg_{name}", lambda name=name, stream=stream: stream.add(getattr(images, name),
                                                                                images.label_ids))
        if inception_streams and images.index in fid_indices:
            for name in ("raw", "neural"):
                timer.run("inception", lambda name=name: inception_streams[name].add(getattr(images, name)))
            progress.set_description(inception_progress())
        if images.index in thumbnail_indices:
            thumbnails.append((images.frame_id, _thumbnail(images.raw), _thumbnail(images.neural)))
        per_frame["mean_luma_raw"].append(_luma(images.raw))
        per_frame["mean_luma_neural"].append(_luma(images.neural))
        prev_frame_id, prev_label_ids = images.frame_id, images.label_ids
        progress.update(1)

    metrics: dict[str, Any] = {
        "run": str(run.path),
        "frames": len(run),
        "frame_size": list(images.raw.shape[1::-1]),
        "rgb_source": run.rgb_source(),
        "metrics": sorted(metrics_on),
    }
    if "warp" in metrics_on:
        metrics["warping_error"] = _warp_summary(per_frame, have_labels)
    if tof is not None:
        metrics["tof"] = {
            "mean_px": _mean(per_frame["tof"]),
            "dis_preset": options.dis_preset,
            "definition": "mean |du|+|dv| (px) between DIS flow of neural and of raw, per frame pair",
        }
        if per_frame.get("dis_flow_error_raw"):
            metrics["tof"]["dis_vs_ground_truth_flow_raw_px"] = _mean(per_frame["dis_flow_error_raw"])
    if inception_streams:
        metrics.update(_fid_kid(inception_streams, options, progress, timer))
        if options.fid_frames:
            metrics["fid_frames"] = len(fid_indices)
        else:
            metrics["fid_frame_stride"] = fid_stride
    class_colors = []
    if "color" in metrics_on:
        class_colors = _class_color_table(colors)
        metrics["class_colors"] = class_colors
        shares = np.array([row["pixel_share"] for row in class_colors])
        distances = np.array([row["rgb_distance"] for row in class_colors])
        metrics["class_color_distance_weighted"] = float((shares * distances).sum() / max(shares.sum(), 1e-12))
    if segmentation:
        metrics["segmentation"] = _segmentation_summary(segmentation, per_frame, options, timer)
    timings = timer.ms_per_call()
    metrics["timing_ms_per_frame"] = _per_frame_timings(timings, timer, len(run))
    return CompareResult(metrics=metrics, per_frame={k: _nan_to_none(v) if k != "frame_id" else v
                                                     for k, v in per_frame.items()},
                         class_colors=class_colors, thumbnails=thumbnails)


def _thumbnail(rgb: np.ndarray, width: int = 320) -> np.ndarray:
    """(h, w, 3) uint8: ``rgb`` scaled down to at most ``width`` pixels wide."""
    import cv2

    height, full_width = rgb.shape[:2]
    if full_width <= width:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (width, max(1, round(height * width / full_width))), interpolation=cv2.INTER_AREA)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb.reshape(-1, 3).mean(0) @ np.array([0.299, 0.587, 0.114]))


def _warp_summary(per_frame: dict[str, list], have_labels: bool) -> dict[str, Any]:
    raw_mean = _mean(per_frame["warp_raw"])
    neural_mean = _mean(per_frame["warp_neural"])
    return {
        "raw": raw_mean,
        "neural": neural_mean,
        "neural_over_raw": neural_mean / raw_mean if raw_mean and neural_mean is not None else None,
        "mean_valid_fraction": _mean(per_frame["warp_valid_fraction"]),
        "mask": "flow valid & inside frame" + (" & same class across the flow" if have_labels else ""),
        "definition": "mean over valid pixels of ||rgb_t - warp(rgb_t-1, gt flow)||^2, RGB in [0, 1]",
    }


def _fid_kid(streams: dict[str, Any], options: CompareOptions, progress: Progress,
             timer: _Timer) -> dict[str, Any]:
    from renderer.metrics import fid, kid_from_stats

    if "real" in streams:
        total = count_images(options.real_dir)
        limit = min(total, options.max_real) if options.max_real else total
        progress.set_description(f"real images ({limit})")
        for number, (_, rgb) in enumerate(iter_image_folder(options.real_dir)):
            if number >= limit:
                break
            timer.run("inception_real", lambda rgb=rgb: streams["real"].add(rgb))
            progress.update(1)
    progress.set_description("InceptionV3: the last batches")
    for stream in streams.values():
        timer.run("inception", stream.flush)
    counts = {name: stream.stats.count for name, stream in streams.items()}
    if min(counts.values()) < 2:
        raise RunFolderError(f"FID/KID need at least 2 images per set, have {counts}; "
                             "record more frames or lower --fid-stride")
    progress.set_description("FID/KID")
    pairs = [("neural", "raw")]
    if "real" in streams:
        pairs += [("neural", "real"), ("raw", "real")]
    timer.images = sum(counts.values())
    # The model's own time (it runs in a background thread, so the caller's waits understate it).
    timer.inception_s = next(iter(streams.values())).extractor.seconds
    results: dict[str, Any] = {"fid": {}, "kid": {}, "fid_kid_images": counts}
    for first, second in pairs:
        key = f"{first}_vs_{second}"
        results["fid"][key] = timer.run("fid_final", lambda: fid(streams[first].stats, streams[second].stats))
        kid_mean, kid_std = timer.run("kid_final", lambda: kid_from_stats(
            streams[first].stats, streams[second].stats, options.kid_subset_size, options.kid_subsets))
        results["kid"][key] = {"mean": kid_mean, "std": kid_std}
    if any(results["kid"][key]["std"] is None for key in results["kid"]):
        results["kid_note"] = (f"KID has no ± here: with {min(counts.values())} images in the smallest set every "
                               f"subset of up to {options.kid_subset_size} is the whole set, so there is one "
                               "estimate and no spread to show")
    if min(counts.values()) < 2048:
        results["fid_note"] = (f"FID with {min(counts.values())} images in the smallest set is biased upward "
                               "(it needs thousands); compare FIDs only at equal image counts, prefer KID here")
    return results


def _class_color_table(colors: dict[str, ClassColorStats]) -> list[dict[str, Any]]:
    from cityscapesscripts.helpers.labels import id2label

    raw_means, neural_means = colors["raw"].mean_rgb(), colors["neural"].mean_rgb()
    total = colors["raw"].pixel_counts.sum()
    rows = []
    for label_id in sorted(raw_means):
        raw_rgb, neural_rgb = np.array(raw_means[label_id]), np.array(neural_means[label_id])
        label = id2label.get(label_id)
        rows.append({
            "label_id": label_id,
            "name": label.name if label else f"id {label_id}",
            "palette_rgb": list(label.color) if label else [0, 0, 0],
            "pixel_share": float(colors["raw"].pixel_counts[label_id] / total),
            "raw_mean_rgb": [round(float(v), 2) for v in raw_rgb],
            "neural_mean_rgb": [round(float(v), 2) for v in neural_rgb],
            "rgb_distance": round(float(np.linalg.norm(raw_rgb - neural_rgb)), 3),
        })
    return rows


def _per_frame_timings(timings: dict[str, float], timer: _Timer, frames: int) -> dict[str, float]:
    """ms per frame of each metric (both streams together where a metric runs per stream)."""
    def total_ms(*names: str) -> float:
        return sum(timer.seconds.get(name, 0.0) for name in names) * 1000.0

    result = {}
    if "warp_raw" in timings:
        result["warping_error (raw + neural + mask)"] = round(total_ms("warp_raw", "warp_neural", "warp_mask") / frames, 3)
    if "tof" in timings:
        result["tof (2 DIS flows)"] = round(total_ms("tof") / frames, 3)
    if "color_raw" in timings:
        result["class_color (raw + neural)"] = round(total_ms("color_raw", "color_neural") / frames, 3)
    if "seg_raw" in timings:
        result["segmentation (raw + neural)"] = round(total_ms("seg_raw", "seg_neural", "seg_flush") / frames, 3)
    if timer.images:
        result["inception per image"] = round(timer.inception_s * 1000.0 / timer.images, 3)
    if "fid_final" in timings:
        result["fid_final_ms (once per pair)"] = timings["fid_final"]
        result["kid_final_ms (once per pair)"] = timings["kid_final"]
    return result


def _segmentation_streams(options: CompareOptions, progress: Progress) -> dict[str, Any]:
    from renderer.checkpoint import CheckpointError
    from renderer.metrics.segmentation import SegmentationStream
    from renderer.segmenter import load_segmenter

    progress.set_description("loading the segmenter")
    try:
        segmenter = load_segmenter(options.segmenter, options.device)
    except CheckpointError as error:
        raise RunFolderError(f"--segmenter {options.segmenter}: {error}") from None
    return {name: SegmentationStream(segmenter, batch_size=4) for name in ("raw", "neural")}


def _segmentation_summary(streams: dict[str, Any], per_frame: dict[str, list], options: CompareOptions,
                          timer: _Timer) -> dict[str, Any]:
    """The segmenter's figures on the neural frames, and on the raw frames for reference."""
    result: dict[str, Any] = {"segmenter": options.segmenter}
    for name, stream in streams.items():
        result[name] = timer.run("seg_flush", stream.summary)
        per_frame[f"seg_accuracy_{name}"] = stream.per_frame_accuracy
    neural, raw = result["neural"]["miou"], result["raw"]["miou"]
    result["neural_over_raw_miou"] = neural / raw if neural is not None and raw else None
    result["ceiling_real_photos"] = _segmenter_ceiling(options.segmenter)
    result["note"] = ("the segmenter learnt real photos: on simulator frames its raw figure says how far the "
                      "simulator's look is from them, the neural figure how well the rendering keeps the layout")
    return result


def _segmenter_ceiling(source: str) -> dict[str, Any] | None:
    """The segmenter's own figures on its held-out real photos, as its training recorded them."""
    from renderer.segmenter.checkpoint import read_segmenter_config, segmenter_folder

    _, metadata = read_segmenter_config(segmenter_folder(source))
    val = metadata.get("val")
    if not val:
        return None
    return {"miou": val.get("miou"), "pixel_accuracy": val.get("pixel_accuracy"),
            "sequences": metadata.get("val_sequences"), "data": metadata.get("data")}
