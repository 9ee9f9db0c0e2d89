"""`carla-neural dataset export`: simulator sequences in NVIDIA's vid2vid layout, with ground-truth flow."""

from __future__ import annotations

from pathlib import Path

import click

from carla_neural.cli.options import WxH


@click.group(name="dataset")
def command() -> None:
    """Build training datasets."""


@command.command(name="export")
@click.option("--world", type=click.Choice(["builtin", "carla"]), default="builtin", show_default=True,
              help="The built-in procedural world, or a running CARLA server.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Dataset folder.")
@click.option("--sequences", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--frames", type=click.IntRange(min=1), default=30, show_default=True, help="Frames per sequence.")
@click.option("--size", type=WxH(), default="256x128", show_default=True, help="WIDTHxHEIGHT of the cameras.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sequence i uses seed + i.")
@click.option("--phase", default="train", show_default=True, help="Folder prefix: train_A, test_A, ...")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Ticks dropped first.")
@click.option("--frame-step", type=click.IntRange(min=1), default=1, show_default=True, help="Keep every n-th tick.")
@click.option("--layout", type=click.Choice(["urban", "highway"]), default=None, help="Built-in world layout.")
@click.option("--host", default="127.0.0.1", show_default=True, help="CARLA server host.")
@click.option("--port", type=int, default=2000, show_default=True, help="CARLA server port.")
@click.option("--town", default=None, help="CARLA map to load (default: the server's current one).")
@click.option("--tag-scheme", type=click.Choice(["0.9.14", "0.9.13"]), default="0.9.14", show_default=True)
def export(world: str, out: Path, sequences: int, frames: int, size: tuple[int, int], seed: int, phase: str, warmup: int,
           frame_step: int, layout: str | None, host: str, port: int, town: str | None, tag_scheme: str) -> None:
    """Export sequences to OUT/{phase}_A, _B, _inst and _flow."""
    from tqdm import tqdm

    from carla_neural.dataset_export import ExportConfig, ExportError, export_dataset

    width, height = size
    config = ExportConfig(out=str(out), world=world, sequences=sequences, frames=frames, width=width, height=height,
                          seed=seed, phase=phase, warmup=warmup, frame_step=frame_step, layout=layout, host=host,
                          port=port, town=town, tag_scheme=tag_scheme)
    try:
        config.validate()
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    with tqdm(total=sequences * frames, desc=f"export {world}", unit="frame") as bar:
        try:
            summary = export_dataset(config, on_frame=lambda seq, frame: bar.update(1))
        except ExportError as err:
            raise click.ClickException(str(err)) from None
    click.echo(f"exported {sequences} sequences x {frames} frames ({width}x{height}, flow: "
               f"{'simulator' if summary['has_flow'] else 'none'}) in {summary['export_seconds']:.1f} s -> {out}")
