"""A style sweep side by side (`record --styles`, then `compare SWEEP`): per style the neural
frames' warping error, segmentation consistency and per-class mean colours; per class the spread
of those colours across the styles; and one picture of the same frames in every style.

The figures are read against the run named ``default`` (recorded without a style) when the
sweep has one: segmentation mIoU as a ratio to it (the issue's target: within 10 %) and warping
error as a ratio (target: at most 1.1×).
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

SWEEP_FILE = "styles.json"
REFERENCE = "default"


def is_style_sweep(folder: Path) -> bool:
    """Whether ``folder`` holds a style sweep (its styles.json)."""
    return (Path(folder) / SWEEP_FILE).is_file()


def sweep_runs(folder: Path) -> dict[str, Path]:
    """Style name ('0', '3', 'default') -> its run folder, in sweep order; ValueError naming the file."""
    path = Path(folder) / SWEEP_FILE
    try:
        document = json.loads(path.read_text())
        runs = {str(style): Path(folder) / str(name) for style, name in zip(document["styles"], document["runs"])}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a style sweep index ({error}); record one with `record --styles`") from None
    missing = [str(run) for run in runs.values() if not (run / "run.json").is_file()]
    if missing:
        raise ValueError(f"{path} names runs that are not there: {', '.join(missing)}")
    return runs


def sweep_summary(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-style compare metrics (style name -> metrics.json content) -> the sweep's figures."""
    styles: dict[str, Any] = {}
    colours: dict[str, dict[int, np.ndarray]] = {}
    names: dict[int, str] = {}
    for style, values in metrics.items():
        seg = (values.get("segmentation") or {}).get("neural") or {}
        warp = values.get("warping_error") or {}
        styles[style] = {"warping_error": warp.get("neural"), "segmentation_miou": seg.get("miou")}
        colours[style] = {row["label_id"]: np.array(row["neural_mean_rgb"], dtype=float)
                          for row in values.get("class_colors", [])}
        names.update({row["label_id"]: row["name"] for row in values.get("class_colors", [])})
    reference = styles.get(REFERENCE)
    if reference is not None:
        for style, figures in styles.items():
            for key, ratio in (("segmentation_miou", "segmentation_vs_default"), ("warping_error", "warping_vs_default")):
                base, value = reference[key], figures[key]
                figures[ratio] = round(value / base, 4) if base and value is not None else None
    spread = class_spread({style: table for style, table in colours.items() if style != REFERENCE}, names)
    return {"styles": styles, "reference": REFERENCE if reference is not None else None, "class_spread": spread}


def class_spread(colours: dict[str, dict[int, np.ndarray]], names: dict[int, str]) -> list[dict[str, Any]]:
    """Per label id seen in at least two appearances ({appearance: {label id: mean RGB (3,) in
    0..255}}), the largest and the mean Euclidean RGB distance between two appearances' means."""
    spread = []
    for label_id in sorted(names):
        means = {name: np.asarray(table[label_id], float) for name, table in colours.items() if label_id in table}
        if len(means) < 2:
            continue
        distances = [float(np.linalg.norm(a - b)) for a, b in combinations(means.values(), 2)]
        spread.append({"label_id": label_id, "name": names[label_id],
                       "max_rgb_distance": round(max(distances), 2),
                       "mean_rgb_distance": round(float(np.mean(distances)), 2),
                       "mean_rgb": {name: [round(float(v), 1) for v in rgb] for name, rgb in means.items()}})
    return spread


def sweep_picture(runs: dict[str, Path], frames: int = 3) -> np.ndarray:
    """(H, W, 3) uint8: for a few frames spread over the run, the labels and each style's frame."""
    from carla_neural.compare.compute import spread_indices
    from carla_neural.compare.run_folder import RunFolder
    from carla_neural.pictures import strip
    from carla_neural.remap import colorize_label_ids

    folders = {style: RunFolder(run) for style, run in runs.items()}
    first = next(iter(folders.values()))
    pick = set(spread_indices(len(first), frames))
    per_style = {style: {f.index: f.neural for f in folder.iter_frames(neural=True) if f.index in pick}
                 for style, folder in folders.items()}
    labels = {f.index: colorize_label_ids(f.label_ids) for f in first.iter_frames(label_ids=True) if f.index in pick}
    rows = [[labels[i]] + [per_style[style][i] for style in folders] for i in sorted(pick)]
    titles = ["labels"] + [f"style {style}" for style in folders]
    return strip(rows, titles, [f"frame {i}" for i in sorted(pick)])
