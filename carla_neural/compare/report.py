"""Write a comparison's metrics.json, plot PNGs and report.html (jinja2)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from carla_neural.compare.compute import CompareResult
from carla_neural.compare.plots import plot_class_colors, plot_fid_kid, plot_per_frame, write_thumbnails
from carla_neural.compare.run_folder import RunFolder
from carla_neural.html_report import data_uri as _data_uri
from carla_neural.html_report import format_value as _fmt
from carla_neural.html_report import json_safe as _json_safe
from carla_neural.html_report import template_environment

TEMPLATE = "compare_report.html.j2"


@dataclass
class ReportPaths:
    """Everything a report run wrote."""

    metrics_json: Path
    report_html: Path
    plots: list[Path]


def write_metrics_json(result: CompareResult, path: Path) -> Path:
    """metrics.json: the summary metrics plus every per-frame series (NaN written as null)."""
    document = {**result.metrics, "per_frame": result.per_frame}
    path.write_text(json.dumps(_json_safe(document), indent=2), encoding="utf-8")
    return path


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
    html = template_environment("carla_neural").get_template(TEMPLATE).render(
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
