"""`carla-neural styles CKPT --data DIR --k 8`: (re)compute a style checkpoint's per-class feature
clusters from its training data and store them with it (docs/styles.md)."""

from __future__ import annotations

from pathlib import Path

import click

from carla_neural.cli.options import threads_option


@click.command(name="styles")
@click.argument("checkpoint")
@click.option("--data", "datasets", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="The data the checkpoint was trained on (NVIDIA layout, a run folder or a folder of runs). "
                   "Repeatable.")
@click.option("--val-sequences", default=None, help="Comma-separated sequences to leave out, e.g. seq0004.")
@click.option("--k", "k", type=click.IntRange(1, 64), default=8, show_default=True, help="Styles per class.")
@click.option("--load-width", type=click.IntRange(min=16), default=None,
              help="Resize frames to this width first: the training run's --load-width (default: as stored).")
@click.option("--max-frames", type=click.IntRange(min=1), default=240, show_default=True,
              help="Frames encoded, spread evenly over the sequences.")
@click.option("--seed", type=int, default=0, show_default=True, help="k-means seed.")
@threads_option
def command(checkpoint: str, datasets: tuple[str, ...], val_sequences: str | None, k: int,
            load_width: int | None, max_frames: int, seed: int, threads: int | None) -> None:
    """Encode the training frames, pool per instance, cluster K per class, write CKPT/styles.safetensors."""
    from renderer.checkpoint_ref import CheckpointError, is_our_checkpoint, resolve_checkpoint
    from renderer.cpus import set_torch_threads
    from renderer.loading import load_generator
    from renderer.styles import compute_styles, save_styles
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
        names = [name.strip() for name in (val_sequences or "").split(",") if name.strip()]
        sequences = hold_out([seq for path in datasets for seq in scan_dataset(path)], names)
        if not sequences:
            raise click.UsageError("--data holds no sequences to compute styles from")
        bank = compute_styles(generator, sequences, k, load_width=load_width, max_frames=max_frames, seed=seed)
        path = save_styles(folder, bank, source=f"{', '.join(datasets)} ({', '.join(s.name for s in sequences)})")
    except (CheckpointError, DatasetError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    classes = int((bank.counts > 0).sum())
    click.echo(f"styles: {k} per class for {classes} classes from {int(bank.counts.sum())} regions -> {path} "
               f"(and {Path(folder) / 'config.json'} metadata.styles)")
