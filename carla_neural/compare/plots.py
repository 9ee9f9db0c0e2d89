"""Figures of a comparison (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

# Fixed stream colours, also named in the report's legend text.
RAW_COLOR = "#1f77b4"
NEURAL_COLOR = "#d62728"
OTHER_COLOR = "#2ca02c"


def _series(per_frame: dict[str, list], name: str) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in per_frame.get(name, [])], float)


def plot_per_frame(per_frame: dict[str, list], path: Path) -> Path | None:
    """Per-frame curves (warping error, tOF, brightness) as a PNG at `path`; None if nothing to plot."""
    frame_ids = np.array(per_frame["frame_id"])
    panels = []
    if "warp_raw" in per_frame:
        panels.append(("warping error (lower = steadier)", [("raw", "warp_raw", RAW_COLOR),
                                                            ("neural", "warp_neural", NEURAL_COLOR)]))
    if "tof" in per_frame:
        lines = [("tOF neural vs raw", "tof", NEURAL_COLOR)]
        if "dis_flow_error_raw" in per_frame:
            lines.append(("DIS vs ground-truth flow (raw)", "dis_flow_error_raw", OTHER_COLOR))
        panels.append(("flow difference (px)", lines))
    if "seg_accuracy_neural" in per_frame:
        panels.append(("segmenter pixel accuracy vs label ids (higher = layout kept)",
                       [("raw", "seg_accuracy_raw", RAW_COLOR), ("neural", "seg_accuracy_neural", NEURAL_COLOR)]))
    panels.append(("mean brightness (0-255)", [("raw", "mean_luma_raw", RAW_COLOR),
                                                ("neural", "mean_luma_neural", NEURAL_COLOR)]))
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), sharex=True, squeeze=False)
    for axis, (title, lines) in zip(axes[:, 0], panels):
        for label, key, color in lines:
            axis.plot(frame_ids, _series(per_frame, key), color=color, label=label, linewidth=2)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("frame id")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_class_colors(class_colors: list[dict[str, Any]], path: Path, top: int = 19) -> Path | None:
    """Per-class bars: mean colour of raw vs neural, and their RGB distance, as a PNG at `path`."""
    if not class_colors:
        return None
    rows = sorted(class_colors, key=lambda row: -row["pixel_share"])[:top]
    names = [f"{row['name']} ({100 * row['pixel_share']:.1f}%)" for row in rows]
    positions = np.arange(len(rows))
    luma = np.array([0.299, 0.587, 0.114])
    figure, (colour_axis, distance_axis) = plt.subplots(2, 1, figsize=(9, 7))
    width = 0.4
    for offset, key, edge, label in ((-width / 2, "raw_mean_rgb", RAW_COLOR, "raw"),
                                     (width / 2, "neural_mean_rgb", NEURAL_COLOR, "neural")):
        means = np.array([row[key] for row in rows])
        # Each bar is painted in the class's mean colour; its height is that colour's brightness.
        colour_axis.bar(positions + offset, means @ luma, width, color=means / 255.0, edgecolor=edge,
                        linewidth=2, label=label)
    colour_axis.set_ylabel("brightness of mean colour")
    colour_axis.set_title("mean colour per class (bar fill = the colour; edge: raw blue, neural red)",
                          fontsize=10)
    colour_axis.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
    colour_axis.legend(fontsize=8)
    palette = np.array([row["palette_rgb"] for row in rows]) / 255.0
    distance_axis.bar(positions, [row["rgb_distance"] for row in rows], color=palette, edgecolor="black")
    distance_axis.set_ylabel("RGB distance raw - neural")
    distance_axis.set_title("per-class colour shift (bar fill = Cityscapes palette)", fontsize=10)
    distance_axis.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_fid_kid(metrics: dict[str, Any], path: Path) -> Path | None:
    """FID and KID bars per pair of image sets as a PNG at `path`; None when they were not computed
    or there is only one pair."""
    if "fid" not in metrics or len(metrics["fid"]) < 2:
        # One pair (no --real) is one number each: the table says it, a one-bar chart adds nothing.
        return None
    pairs = list(metrics["fid"])
    figure, (fid_axis, kid_axis) = plt.subplots(1, 2, figsize=(9, 3))
    colors = [NEURAL_COLOR if pair.startswith("neural") else RAW_COLOR for pair in pairs]
    fid_axis.bar(pairs, [metrics["fid"][pair] for pair in pairs], color=colors)
    fid_axis.set_title("FID (lower = closer)", fontsize=10)
    spreads = [metrics["kid"][pair]["std"] for pair in pairs]
    kid_axis.bar(pairs, [metrics["kid"][pair]["mean"] for pair in pairs],
                 yerr=None if None in spreads else spreads, color=colors)
    kid_axis.set_title("KID (lower = closer)", fontsize=10)
    for axis in (fid_axis, kid_axis):
        axis.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_thumbnails(thumbnails: list[tuple[int, np.ndarray, np.ndarray]], path: Path) -> Path | None:
    """One row per frame, raw | neural, as a PNG at `path` (frames of one size); None without frames."""
    import cv2

    if not thumbnails:
        return None
    gap = 4
    rows = []
    for frame_id, raw, neural in thumbnails:
        row = np.full((raw.shape[0], raw.shape[1] + gap + neural.shape[1], 3), 255, np.uint8)
        row[:, : raw.shape[1]] = raw
        row[:, raw.shape[1] + gap :] = neural
        cv2.putText(row, f"frame {frame_id}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2,
                    cv2.LINE_AA)
        cv2.putText(row, f"frame {frame_id}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(row)
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    if not cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(padded), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path
