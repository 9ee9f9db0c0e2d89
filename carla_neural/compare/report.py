"""Write a comparison's metrics.json, plot PNGs and report.html (jinja2)."""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from carla_neural.compare.compute import CompareResult
from carla_neural.compare.plots import plot_class_colors, plot_fid_kid, plot_per_frame, write_thumbnails
from carla_neural.compare.run_folder import RunFolder

TEMPLATE = "compare_report.html.j2"


@dataclass
class ReportPaths:
    """Everything a report run wrote."""

    metrics_json: Path
    report_html: Path
    plots: list[Path]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def write_metrics_json(result: CompareResult, path: Path) -> Path:
    """metrics.json: the summary metrics plus every per-frame series (NaN written as null)."""
    document = {**result.metrics, "per_frame": result.per_frame}
    path.write_text(json.dumps(_json_safe(document), indent=2), encoding="utf-8")
    return path


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def template_environment() -> jinja2.Environment:
    """The jinja2 environment of carla_neural/templates (autoescaped, strict about undefined names)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("carla_neural", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def write_report(result: CompareResult, run: RunFolder, out_dir: Path) -> ReportPaths:
    """Write metrics.json, plots/*.png and report.html into `out_dir` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    metrics_json = write_metrics_json(result, out_dir / "metrics.json")
    figures = {
        "per_frame": plot_per_frame(result.per_frame, plots_dir / "per_frame.png"),
        "class_colors": plot_class_colors(result.class_colors, plots_dir / "class_colors.png"),
        "fid_kid": plot_fid_kid(result.metrics, plots_dir / "fid_kid.png"),
        "thumbnails": write_thumbnails(result.thumbnails, plots_dir / "thumbnails.png"),
    }
    written = [path for path in figures.values() if path is not None]
    video = None
    if run.has_video("side_by_side"):
        # Relative, so the report and the run folder can move together.
        video = os.path.relpath(run.path / "side_by_side.mp4", out_dir)
    html = template_environment().get_template(TEMPLATE).render(
        metrics=result.metrics,
        run_info=run.info,
        figures={name: _data_uri(path) for name, path in figures.items() if path is not None},
        class_colors=result.class_colors,
        thumbnail_ids=[frame_id for frame_id, _, _ in result.thumbnails],
        video=video,
        fmt=_fmt,
    )
    report_html = out_dir / "report.html"
    report_html.write_text(html, encoding="utf-8")
    return ReportPaths(metrics_json=metrics_json, report_html=report_html, plots=written)
