"""Write a gap report: gap.json, the simulator's statistics, plot PNGs and report.html (jinja2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carla_neural.html_report import data_uri, format_value, json_safe, template_environment
from domain_adapt.plots import plot_boundaries, plot_classes, plot_objects, plot_temporal, plot_viewpoint

TEMPLATE = "gap_report.html.j2"


@dataclass
class GapReportPaths:
    """Everything a gap report wrote."""

    gap_json: Path
    sim_stats_json: Path
    report_html: Path
    plots: list[Path]


def write_gap_report(gap: dict[str, Any], sim: dict[str, Any], reference: dict[str, Any],
                     out_dir: Path) -> GapReportPaths:
    """Write gap.json, sim_stats.json, plots/*.png and report.html into `out_dir` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    gap_json = out_dir / "gap.json"
    gap_json.write_text(json.dumps(json_safe(gap), indent=2), encoding="utf-8")
    sim_stats_json = out_dir / "sim_stats.json"
    sim_stats_json.write_text(json.dumps(json_safe(sim)), encoding="utf-8")
    figures = {
        "classes": plot_classes(gap, plots_dir / "classes.png"),
        "boundaries": plot_boundaries(gap, plots_dir / "boundaries.png"),
        "objects": plot_objects(gap, sim, reference, plots_dir / "objects.png"),
        "viewpoint": plot_viewpoint(gap, sim, reference, plots_dir / "viewpoint.png"),
        "temporal": plot_temporal(sim, reference, plots_dir / "temporal.png"),
    }
    html = template_environment("domain_adapt").get_template(TEMPLATE).render(
        gap=gap, figures={name: data_uri(path) for name, path in figures.items()}, fmt=format_value)
    report_html = out_dir / "report.html"
    report_html.write_text(html, encoding="utf-8")
    return GapReportPaths(gap_json, sim_stats_json, report_html, list(figures.values()))
