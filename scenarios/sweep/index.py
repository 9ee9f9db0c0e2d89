"""The sweep's summary: DIR/sweep.json (every cell: axes, status, frames, fps, timings, compare
figures) and DIR/index.html (one row per cell, linking each run's report)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from scenarios.sweep.runner import CellResult, SweepOutcome
from scenarios.sweep.schema import Sweep

TEMPLATE = "sweep_index.html.j2"
# Column headings of the compare figures (keys of headline_figures).
FIGURE_LABELS = {"warp_raw": "warp error raw", "warp_neural": "warp error neural", "tof_px": "tOF (px)",
                 "fid_neural_vs_raw": "FID neural vs raw", "class_color_shift": "class colour shift"}


def cell_row(result: CellResult, out_dir: Path) -> dict[str, Any]:
    """One cell as sweep.json and the index show it; figures only from a complete run."""
    row: dict[str, Any] = {
        "name": result.cell.name,
        "axes": result.cell.axes,
        "status": result.status,
        "attempts": result.attempts,
        "run_dir": _relative(result.run_dir, out_dir),
        "log": _relative(result.log, out_dir) if result.log.is_file() else None,
        "error": result.error,
        "frames": None, "fps": None, "record_wall_s": None, "compare": None, "links": {},
        "timing": result.timing,
        "submitted_unix": result.submitted_unix,
        "collected_unix": result.collected_unix,
    }
    if result.status not in ("done", "skipped"):
        return row
    summary = _read_json(result.run_dir / "summary.json") or {}
    row["frames"] = summary.get("frames")
    row["fps"] = (summary.get("pipeline") or {}).get("fps", summary.get("fps"))
    row["record_wall_s"] = summary.get("wall_s")
    metrics = _read_json(result.run_dir / "metrics.json")
    if metrics is not None:
        row["compare"] = headline_figures(metrics)
    for name, file in (("report", "report.html"), ("video", "side_by_side.mp4"), ("summary", "summary.json")):
        if (result.run_dir / file).is_file():
            row["links"][name] = _relative(result.run_dir / file, out_dir)
    return row


def headline_figures(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The few `compare` numbers a sweep table shows, from a run's metrics.json."""
    figures: dict[str, float | None] = {}
    if "warping_error" in metrics:
        figures["warp_raw"] = metrics["warping_error"].get("raw")
        figures["warp_neural"] = metrics["warping_error"].get("neural")
    if "tof" in metrics:
        figures["tof_px"] = metrics["tof"].get("mean_px")
    if "fid" in metrics:
        figures["fid_neural_vs_raw"] = metrics["fid"].get("neural_vs_raw")
    if "class_color_distance_weighted" in metrics:
        figures["class_color_shift"] = metrics["class_color_distance_weighted"]
    return figures


def write_summary(sweep: Sweep, sweep_file: Path, outcome: SweepOutcome, out_dir: Path) -> tuple[Path, Path]:
    """Write DIR/sweep.json and DIR/index.html; returns their paths."""
    from carla_neural.html_report import template_environment
    from carla_neural.recorder import write_json

    rows = [cell_row(result, out_dir) for result in outcome.results]
    document = {
        "name": sweep.name,
        "sweep_file": str(sweep_file),
        "sweep_id": outcome.sweep_id,
        "written_unix": round(time.time(), 3),
        "wall_s": outcome.wall_s,
        "interrupted": outcome.interrupted,
        "ray": outcome.ray,
        "axes": list(sweep.axes),
        "counts": {status: outcome.count(status) for status in ("done", "skipped", "failed", "interrupted",
                                                               "pending")},
        "cells": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_json = out_dir / "sweep.json"
    write_json(sweep_json, document)
    figure_names = [name for name in FIGURE_LABELS if any(name in (row["compare"] or {}) for row in rows)]
    html = template_environment("carla_neural").get_template(TEMPLATE).render(
        sweep=document, rows=rows, axes=list(sweep.axes), figure_names=figure_names, labels=FIGURE_LABELS,
        fmt=_fmt)
    index_html = out_dir / "index.html"
    index_html.write_text(html, encoding="utf-8")
    return sweep_json, index_html


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _relative(path: Path, out_dir: Path) -> str:
    """Relative to DIR, so that the index and the runs can move together."""
    return os.path.relpath(path, out_dir)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
