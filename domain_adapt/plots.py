"""Figures of a gap report (matplotlib, Agg backend): simulator in red, reference in blue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

SIM_COLOR = "#d62728"
REFERENCE_COLOR = "#1f77b4"


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _paired_bars(axis: plt.Axes, per_class: dict[str, dict[str, Any]], title: str, log: bool = False) -> None:
    names = list(per_class)
    positions = np.arange(len(names))
    for offset, key, colour in ((-0.2, "sim", SIM_COLOR), (0.2, "reference", REFERENCE_COLOR)):
        values = [per_class[name][key] or 0.0 for name in names]
        axis.bar(positions + offset, values, 0.4, color=colour, label=key)
    axis.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
    axis.set_title(title, fontsize=10)
    if log:
        axis.set_yscale("log")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8)


def plot_classes(gap: dict[str, Any], path: Path) -> Path:
    """Pixel share per class, simulator vs reference (log scale)."""
    figure, axis = plt.subplots(figsize=(9, 3.6))
    _paired_bars(axis, gap["classes"]["share"],
                 f"pixel share per class (JS divergence {gap['classes']['js_divergence']})", log=True)
    return _save(figure, path)


def plot_boundaries(gap: dict[str, Any], path: Path) -> Path:
    """Boundary density, jaggedness and small regions per class."""
    boundaries = gap["boundaries"]
    figure, axes = plt.subplots(3, 1, figsize=(9, 9))
    _paired_bars(axes[0], boundaries["density_per_class"], "boundary density (boundary pixels / class pixels)")
    _paired_bars(axes[1], boundaries["jaggedness_per_class"], "jaggedness (contour / smoothed contour length)")
    axes[1].set_ylim(0.9, None)
    _paired_bars(axes[2], boundaries["small_regions_per_class"], "small regions per frame (< 64 px at 512x256)")
    return _save(figure, path)


def plot_objects(gap: dict[str, Any], sim: dict[str, Any], reference: dict[str, Any], path: Path) -> Path:
    """Instances per frame per class, and the area distribution of cars and people."""
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    _paired_bars(axes[0], gap["objects"]["instances_per_frame"], "instances per frame")
    for axis, (name, label_id) in zip(axes[1:], (("car", 26), ("person", 24))):
        for document, colour, key in ((sim, SIM_COLOR, "sim"), (reference, REFERENCE_COLOR, "reference")):
            hist = np.array(document["objects"]["area_hist"].get(str(label_id), []), float)
            if hist.sum():
                axis.step(2.0 ** np.arange(len(hist)), hist / hist.sum(), where="post", color=colour,
                          linewidth=2, label=key)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("area (px at 512x256)")
        divergence = gap["objects"]["size"][name]["js_divergence"]
        axis.set_title(f"{name} sizes (JS {'n/a' if divergence is None else divergence})", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, path)


def plot_viewpoint(gap: dict[str, Any], sim: dict[str, Any], reference: dict[str, Any], path: Path) -> Path:
    """Road and sky share per image row (the layout profile) with the horizon rows marked."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    horizon = gap["viewpoint"]["horizon_row"]
    for axis, kind in zip(axes, ("road", "sky")):
        for document, colour, key in ((sim, SIM_COLOR, "sim"), (reference, REFERENCE_COLOR, "reference")):
            rows = np.array(document["rows"][kind])
            axis.plot(rows, np.arange(len(rows)), color=colour, linewidth=2, label=key)
            if horizon[key] is not None:
                axis.axhline(horizon[key], color=colour, linestyle="--", linewidth=1)
        l1 = gap["viewpoint"][f"{kind}_profile_l1"]
        axis.set_title(f"{kind} share per row (L1 {l1}); dashed: horizon", fontsize=10)
        axis.set_xlabel("share of the row")
        axis.set_xlim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_ylabel("row (0 = top)")
    axes[0].invert_yaxis()
    return _save(figure, path)


def plot_temporal(sim: dict[str, Any], reference: dict[str, Any], path: Path) -> Path:
    """Per-frame flicker and change rates (frames in order, sequences back to back)."""
    figure, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for axis, kind, title in ((axes[0], "flicker", "flicker (A B A pixels / frame pixels)"),
                              (axes[1], "change", "change (pixels that differ from the previous frame)")):
        for document, colour, key in ((sim, SIM_COLOR, "sim"), (reference, REFERENCE_COLOR, "reference")):
            values = np.array([np.nan if v is None else v for v in document["per_frame"][kind]], float)
            axis.plot(np.arange(len(values)), values, color=colour, linewidth=1.5, label=key)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[1].set_xlabel("frame")
    return _save(figure, path)
