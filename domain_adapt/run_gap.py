"""The gap metrics of one recorded run, as `carla-neural gap` and `carla-neural compare` report them.

A run folder's label PNGs are the simulator's maps (the recorder writes them before the label
transform), so a run recorded with the transform on is measured twice: its maps as recorded, and
after the transform with the config in its run.json (what the renderer was given).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from carla_neural.label_transform import LabelTransform, LabelTransformConfig
from domain_adapt.fit_mount import MOUNT_FIT
from domain_adapt.gap import DEFAULT_REFERENCE, compare, load_stats
from domain_adapt.measure import measure_sequences
from domain_adapt.sequences import GapInputError, find_sequences

# (name, path into a gap document) of the rows that compare's report shows.
SUMMARY_ROWS = (
    ("class JS divergence", ("classes", "js_divergence")),
    ("boundary share", ("boundaries", "boundary_share")),
    ("jaggedness", ("boundaries", "jaggedness")),
    ("small regions / frame", ("boundaries", "small_regions_per_frame")),
    ("region-size JS", ("boundaries", "region_area_js_divergence")),
    ("cars / frame", ("objects", "instances_per_frame", "car")),
    ("car median area (px)", ("objects", "size", "car", "median_area_px")),
    ("car size JS", ("objects", "size", "car", "js_divergence")),
    ("horizon row", ("viewpoint", "horizon_row")),
    ("road profile L1", ("viewpoint", "road_profile_l1")),
    ("sky profile L1", ("viewpoint", "sky_profile_l1")),
    ("ego-hood rows", ("viewpoint", "hood_rows")),
    ("flicker", ("temporal", "flicker_rate")),
)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run folder's run.json, or {} when it has none (a dataset) or it is unreadable."""
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        return {}
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def run_camera(run_dir: Path) -> dict[str, Any]:
    """The camera a run was recorded with (mount, fov, size) from its run.json's scenario, if any."""
    cameras = read_run_json(run_dir).get("scenario_definition", {}).get("cameras", {})
    return {key: cameras[key] for key in ("mount", "fov", "width", "height") if key in cameras}


def load_mount_fit() -> dict[str, Any] | None:
    """The shipped mount ranking (domain_adapt.fit_mount), named in the viewpoint advice; None if absent."""
    return json.loads(MOUNT_FIT.read_text(encoding="utf-8")) if MOUNT_FIT.is_file() else None


def run_transform_config(run_dir: Path) -> LabelTransformConfig | None:
    """The label transform a run was recorded with (run.json's label_transform), None when it was off."""
    facts = read_run_json(run_dir).get("label_transform") or {}
    if not facts.get("enabled"):
        return None
    return LabelTransformConfig.model_validate(facts["config"])


def _row_value(gap: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = gap
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def summary_rows(gaps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of name, one value per measured variant ("recorded", "after_transform") and the reference's."""
    rows = []
    for name, path in SUMMARY_ROWS:
        row: dict[str, Any] = {"figure": name}
        for variant, gap in gaps.items():
            value = _row_value(gap, path)
            row[variant] = value["sim"] if isinstance(value, dict) else value
            if isinstance(value, dict):
                row["reference"] = value["reference"]
        row.setdefault("reference", 0.0)  # divergences and L1s: the reference against itself
        rows.append(row)
    return rows


def run_gap(run_dir: Path, reference: Path = DEFAULT_REFERENCE, progress: bool = False) -> dict[str, Any]:
    """compare's `label_gap`: the run's gap documents vs `reference` and their summary rows, or
    {"absent": why} for a run without label PNGs. A bad reference raises GapInputError."""
    reference_doc = load_stats(reference)
    try:
        sequences = find_sequences(run_dir)
    except GapInputError as error:
        return {"absent": str(error)}
    origin: dict[str, Any] = {"path": str(run_dir), "camera": run_camera(run_dir)}
    mount_fit = load_mount_fit()
    gaps = {"recorded": compare(measure_sequences(sequences, None, origin, progress), reference_doc, mount_fit)}
    config = run_transform_config(run_dir)
    if config is not None:
        adapted_origin = {**origin, "label_transform": config.model_dump(mode="json")}
        gaps["after_transform"] = compare(measure_sequences(sequences, LabelTransform(config), adapted_origin, progress),
                                          reference_doc, mount_fit)
    return {
        "reference": str(reference),
        "frames": gaps["recorded"]["sim"]["frames"],
        "label_transform": "on" if config is not None else "off",
        "summary": {variant: gap["summary"] for variant, gap in gaps.items()},
        "rows": summary_rows(gaps),
        "gap": gaps,
    }
