"""`carla-neural styles CKPT --data DIR --k 8 [--strength S]`: (re)compute a style checkpoint's
per-class feature clusters from its training data and store them with it; `styles CKPT --strength
S` alone keeps the clusters and sets how strongly they apply (docs/styles.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from carla_neural.cli.options import threads_option


@click.command(name="styles")
@click.argument("checkpoint")
@click.option("--data", "datasets", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="The data the checkpoint was trained on (NVIDIA layout, a run folder or a folder of runs). "
                   "Repeatable. Without it, --strength alone updates the stored clusters' strength.")
@click.option("--val-sequences", default=None, help="Comma-separated sequences to leave out, e.g. seq0004.")
@click.option("--k", "k", type=click.IntRange(1, 64), default=8, show_default=True, help="Styles per class.")
@click.option("--load-width", type=click.IntRange(min=16), default=None,
              help="Resize frames to this width first: the training run's --load-width (default: as stored).")
@click.option("--max-frames", type=click.IntRange(min=1), default=240, show_default=True,
              help="Frames encoded, spread evenly over the sequences.")
@click.option("--seed", type=int, default=0, show_default=True, help="k-means seed.")
@click.option("--strength", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="How far each style moves from the neutral input (0 < S <= 1; 1: the clusters as they "
                   "are). Default: 1 with --data, else required.")
@threads_option
def command(checkpoint: str, datasets: tuple[str, ...], val_sequences: str | None, k: int,
            load_width: int | None, max_frames: int, seed: int, strength: float | None,
            threads: int | None) -> None:
    """Encode the training frames, pool per instance, cluster K per class, write CKPT/styles.safetensors."""
    from renderer.checkpoint import read_config
    from renderer.checkpoint_ref import CheckpointError, is_our_checkpoint, resolve_checkpoint
    from renderer.cpus import set_torch_threads
    from renderer.loading import load_generator
    from renderer.styles import STRENGTH_KEY, compute_styles, load_styles, save_styles
    from renderer.training.datasets import DatasetError, hold_out, scan_dataset

    set_torch_threads(threads)
    try:
        folder = resolve_checkpoint(checkpoint)
        if not is_our_checkpoint(folder):
            raise click.UsageError(f"CHECKPOINT {checkpoint}: styles belong to our checkpoint folders "
                                   "(config.json + model.safetensors)")
        generator = load_generator(folder)
        if not generator.has_styles:
            raise click.UsageError(f"CHECKPOINT {checkpoint} has no feature encoder (feat_nc 0): train one "
                                   "with `carla-neural train --feature-channels 3`")
        if not datasets:
            if strength is None:
                raise click.UsageError("give --data DIR to compute the clusters, or --strength S to change "
                                       "how strongly the stored ones apply")
            # The stored strength is replaced, not read: this is also how a bad stored value is mended.
            stored = load_styles(folder, generator.config.label_nc, generator.config.feat_nc, strength=strength)
            if stored is None:
                raise click.UsageError(f"CHECKPOINT {checkpoint} has no style clusters to set the strength "
                                       "of: compute them with --data DIR")
            described = read_config(folder)[1]["styles"]
            before = described.get(STRENGTH_KEY, 1.0)
            path = save_styles(folder, stored, source=str(described.get("source", "")))
            shown = format(before, "g") if isinstance(before, (int, float)) else repr(before)
            click.echo(f"styles: strength {shown} -> {strength:g} for the {stored.k} stored styles of {path}")
            return
        names = [name.strip() for name in (val_sequences or "").split(",") if name.strip()]
        sequences = hold_out([seq for path in datasets for seq in scan_dataset(path)], names)
        if not sequences:
            raise click.UsageError("--data holds no sequences to compute styles from")
        bank = compute_styles(generator, sequences, k, load_width=load_width, max_frames=max_frames, seed=seed)
        bank = dataclasses.replace(bank, strength=1.0 if strength is None else strength)
        path = save_styles(folder, bank, source=f"{', '.join(datasets)} ({', '.join(s.name for s in sequences)})")
    except (CheckpointError, DatasetError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    classes = int((bank.counts > 0).sum())
    click.echo(f"styles: {k} per class for {classes} classes from {int(bank.counts.sum())} regions, strength "
               f"{bank.strength:g} -> {path} (and {Path(folder) / 'config.json'} metadata.styles)")
