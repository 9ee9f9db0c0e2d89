"""`carla-neural convert`: an NVIDIA vid2vid checkpoint folder -> our safetensors + config.json."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="convert")
@click.argument("nvidia_folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--single-g", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Single-image generator file (default: label2city_single/ inside or beside the folder).")
def command(nvidia_folder: Path, out: Path, single_g: Path | None) -> None:
    """Convert NVIDIA_FOLDER (latest_net_G*.pth) into OUT (model.safetensors + config.json)."""
    from renderer.checkpoint import CheckpointError, convert_nvidia_checkpoint, read_config

    try:
        convert_nvidia_checkpoint(nvidia_folder, out, single_g)
    except CheckpointError as error:
        raise click.ClickException(str(error)) from None
    config, _ = read_config(out)
    single = "none" if config.single_g is None else f"{config.single_g.kind} ngf {config.single_g.ngf}"
    click.echo(f"converted {nvidia_folder} (ngf {config.ngf}, {config.n_downsampling} downsamplings, "
               f"{config.n_scales} scales, fg {'on' if config.use_fg else 'off'}, single G {single}) -> {out}")
