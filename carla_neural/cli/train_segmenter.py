"""`carla-neural train-segmenter`: train the semantic-consistency segmenter on real photos and their labels."""

from __future__ import annotations

from pathlib import Path

import click

from carla_neural.cli.options import WxH


def _names(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


@click.command(name="train-segmenter")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="A vid2vid-layout dataset (train_A labelIds, train_B photos) or recorder run folders.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: segmenter/ (the result), checkpoints/, tensorboard/, val_metrics.json.")
@click.option("--val-sequences", default="seq0004", show_default=True,
              help="Comma-separated sequences held out and scored (empty: none).")
@click.option("--train-sequences", default=None, help="Comma-separated sequences to train on (default: the rest).")
@click.option("--steps", type=click.IntRange(min=1), default=600, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--crop", type=WxH(min_side=16), default="256x128", show_default=True, help="Training crop WIDTHxHEIGHT (multiples of 16).")
@click.option("--size", type=WxH(min_side=16), default="512x256", show_default=True,
              help="Working size WIDTHxHEIGHT: frames are resized to it once, and so is every input later.")
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--class-weights", type=click.Choice(["none", "inverse-sqrt"]), default="none", show_default=True,
              help="Loss weights per class: none, or 1/sqrt(pixel share) (helps thin classes).")
@click.option("--jitter", type=click.FloatRange(0, 0.99), default=0.2, show_default=True,
              help="Brightness/contrast/saturation jitter amplitude.")
@click.option("--val-every", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Torch threads (1 on a shared machine; the cores you own otherwise).")
@click.option("--stop-at", type=click.IntRange(min=1), default=None,
              help="Leave after this step (the schedule still spans --steps); run again to resume.")
@click.option("--no-resume", is_flag=True, help="Start over even if OUT holds a checkpoint.")
def command(data: str, out: Path, val_sequences: str, train_sequences: str | None, steps: int, batch_size: int,
            crop: tuple[int, int], size: tuple[int, int], lr: float, class_weights: str, jitter: float, val_every: int, seed: int,
            threads: int, stop_at: int | None, no_resume: bool) -> None:
    """Train the segmenter (RGB -> 19 Cityscapes train classes); resumes OUT if it holds a checkpoint."""
    from renderer.checkpoint import CheckpointError
    from renderer.segmenter.model import SegmenterConfig
    from renderer.segmenter.training import SegmenterTrainConfig, SegmenterTrainError, train_segmenter
    from renderer.training.datasets import DatasetError
    try:
        crop_width, crop_height = crop
        width, height = size
        config = SegmenterTrainConfig(
            data=data, out_dir=str(out), val_sequences=_names(val_sequences),
            train_sequences=_names(train_sequences) if train_sequences is not None else None,
            steps=steps, batch_size=batch_size, crop_width=crop_width, crop_height=crop_height, lr=lr,
            class_weights=class_weights, jitter=jitter, val_every=val_every, seed=seed, threads=threads,
            resume=not no_resume, stop_at=stop_at, model=SegmenterConfig(input_width=width, input_height=height))
        config.validate()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        result = train_segmenter(config)
    except (SegmenterTrainError, DatasetError, CheckpointError) as error:
        raise click.ClickException(str(error)) from None
    val = result.val
    if result.step < result.schedule_steps:
        figures = f"stopped at step {result.step} of {result.schedule_steps} (run again without --stop-at to resume)"
    elif val:
        figures = (f"val mIoU {val['miou']:.3f} pixel accuracy {val['pixel_accuracy']:.3f} on {result.val_frames} "
                   f"frames of {','.join(config.val_sequences)}")
    else:
        figures = "no held-out sequence"
    click.echo(f"train-segmenter: {result.step} steps on {result.train_frames} frames in {result.train_seconds:.0f} s "
               f"({threads} threads), {figures} -> {result.segmenter_dir} (checkpoints in {out / 'checkpoints'}, "
               f"logs in {result.logs_dir})")
