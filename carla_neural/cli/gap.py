"""`carla-neural gap`: label-map statistics of a simulator run (or a dataset) vs real maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def sequence_names(value: str | None) -> list[str] | None:
    """'a, b' -> ["a", "b"]; None or empty -> None (all sequences)."""
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


@click.command(name="gap")
@click.argument("sim", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Statistics JSON (or a folder holding one) to compare with (default: the shipped "
                   "Cityscapes statistics, domain_adapt/reference/cityscapes.json).")
@click.option("--sequences", default=None, help="Comma-separated sequence names of SIM to measure "
              "(NVIDIA layout: e.g. train_A/seq0004; default: all).")
@click.option("--adapt-labels/--no-adapt-labels", default=False, show_default=True,
              help="Measure SIM's maps after the label transform (carla_neural.label_transform).")
@click.option("--transform-config", type=click.Path(path_type=Path), default=None,
              help="Label transform config JSON (default: the calibrated one); implies --adapt-labels.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Report folder: gap.json, sim_stats.json, report.html, plots/.")
def command(sim: Path, reference: Path | None, sequences: str | None, adapt_labels: bool,
            transform_config: Path | None, out: Path) -> None:
    """Measure the label maps of SIM (a run folder or an NVIDIA-layout dataset) against real maps."""
    from carla_neural.label_transform import LabelTransform, TransformConfigError, load_transform_config
    from domain_adapt.gap import DEFAULT_REFERENCE, compare, load_stats
    from domain_adapt.measure import measure_sequences
    from domain_adapt.report import write_gap_report
    from domain_adapt.run_gap import load_mount_fit, run_camera
    from domain_adapt.sequences import GapInputError, find_sequences

    # Every input is checked before anything is written.
    try:
        reference_doc = load_stats(reference or DEFAULT_REFERENCE)
        found = find_sequences(sim, sequence_names(sequences))
        transform = None
        origin: dict[str, Any] = {"path": str(sim), "camera": run_camera(sim)}
        if adapt_labels or transform_config is not None:
            config = load_transform_config(transform_config)
            transform = LabelTransform(config)
            origin["label_transform"] = config.model_dump()
        sim_doc = measure_sequences(found, transform, origin)
    except (GapInputError, TransformConfigError) as error:
        raise click.ClickException(str(error)) from None
    gap = compare(sim_doc, reference_doc, load_mount_fit())
    paths = write_gap_report(gap, sim_doc, reference_doc, out)
    click.echo(f"gap: {sim_doc['frames']} frames: {gap['summary']} -> {paths.gap_json}, {paths.report_html}")
