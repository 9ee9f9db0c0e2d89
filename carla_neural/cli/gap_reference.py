"""`carla-neural gap-reference`: the statistics of real label maps that `gap` compares with."""

from __future__ import annotations

import datetime
import json
import shlex
import sys
from pathlib import Path

import click

from carla_neural.cli.gap import sequence_names

# The reference is built from these sequences; train_A/seq0004 stays out (the held-out yardstick).
REFERENCE_SEQUENCES = ("train_A/seq0000", "train_A/seq0001", "train_A/seq0002", "train_A/seq0003",
                       "test_A/stuttgart_00")
TERMS = ("Statistics derived from NVIDIA's vid2vid sample of Cityscapes (labels predicted by a segmentation "
         "network on real video); Cityscapes terms: non-commercial research. No images are included.")


@click.command(name="gap-reference")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Real label maps in NVIDIA's layout (e.g. ../shared/data/cityscapes-sequences).")
@click.option("--sequences", default=",".join(REFERENCE_SEQUENCES), show_default=True,
              help="Comma-separated sequences to include (keep held-out ones out).")
@click.option("--description", default="Cityscapes video labels (NVIDIA's vid2vid sample), predicted maps",
              show_default=True, help="What the statistics describe (shown in reports).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Statistics JSON to write (the shipped one is domain_adapt/reference/cityscapes.json).")
def command(data: Path, sequences: str, description: str, out: Path) -> None:
    """Make a reference statistics JSON from real label maps (statistics only, no images)."""
    from domain_adapt.measure import measure_sequences
    from domain_adapt.sequences import GapInputError, find_sequences

    names = sequence_names(sequences)
    try:
        found = find_sequences(data, names)
    except GapInputError as error:
        raise click.ClickException(str(error)) from None
    origin = {
        "description": description,
        "data": data.name,
        "sequences": names,
        "date": datetime.date.today().isoformat(),
        "command": "carla-neural gap-reference " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else
                   "carla-neural gap-reference",
        "terms": TERMS,
    }
    document = measure_sequences(found, origin=origin)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document), encoding="utf-8")
    click.echo(f"gap-reference: {document['frames']} frames of {len(found)} sequence(s) -> {out}")
