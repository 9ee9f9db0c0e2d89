"""`carla-neural render`: folders of label PNGs -> RGB PNGs through a vid2vid checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option
from carla_neural.cli.style_options import resolve_style, style_options


@click.command(name="render")
@click.option("--checkpoint", required=True,
              help="NVIDIA vid2vid folder (latest_net_G*.pth), our checkpoint folder, or 'bundled'.")
@click.option("--labels", "labels_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of labelId PNGs, or one sub-folder per sequence (NVIDIA's test_A).")
@click.option("--instances", "instances_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Instance-id PNGs in the same layout and names (NVIDIA's test_inst).")
@click.option("--single-g", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="NVIDIA single-image generator for the first frames (label2city_single/latest_net_G_*.pth).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--size", type=WxH(), default=None, help="Working WIDTHxHEIGHT of the model (default: the size the "
              "checkpoint was trained at, its metadata.working_size, else the input size); outputs keep "
              "the input size.")
@click.option("--engine", default="torch", show_default=True, help="Renderer engine.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--adapt-labels/--no-adapt-labels", default=False, show_default=True,
              help="Pass every label map through the label transform (carla_neural.label_transform: classes the "
                   "real maps lack, boundary smoothing, specks) before rendering.")
@click.option("--transform-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Label transform config JSON (default: the calibrated one); implies --adapt-labels.")
@style_options
@threads_option
def command(checkpoint: str, labels_dir: Path, instances_dir: Path | None, single_g: Path | None, out: Path,
            size: tuple[int, int] | None, engine: str, device: str, adapt_labels: bool, transform_config: Path | None,
            style_index: int | None, style_photo: Path | None, style_labels: Path | None,
            threads: int | None) -> None:
    """Render label PNGs to RGB PNGs with the same names: one per input frame, first ones included."""
    import cv2
    from tqdm import tqdm

    from carla_neural.label_folders import (
        LabelFolderError,
        check_sequences,
        describe_skipped,
        find_sequences,
        pair_instances,
        read_ids,
    )
    from renderer.checkpoint import CheckpointError
    from renderer.loading import load_renderer

    from renderer.cpus import set_torch_threads

    set_torch_threads(threads)
    working_size = size
    try:
        sequences, skipped = find_sequences(labels_dir)
        if instances_dir is not None:
            sequences = [pair_instances(instances_dir, sequence) for sequence in sequences]
    except LabelFolderError as error:
        raise click.ClickException(str(error)) from None
    if (note := describe_skipped(skipped)) is not None:
        click.echo(note, err=True)
    label_transform = None
    if adapt_labels or transform_config is not None:
        from carla_neural.label_transform import LabelTransform, TransformConfigError, load_transform_config

        try:
            label_transform = LabelTransform(load_transform_config(transform_config))
        except TransformConfigError as error:
            raise click.ClickException(str(error)) from None
    style = resolve_style(checkpoint, style_index, style_photo, style_labels)
    try:
        renderer = load_renderer(checkpoint, engine=engine, device=device, size=working_size, single_g=single_g)
        if style is not None:
            renderer.apply_style(style)  # kept for every sequence: reset() starts them in the same style
    except (CheckpointError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    # Every input is read and checked before the first frame is rendered or written.
    try:
        check_sequences(sequences, renderer.config.label_nc)
    except LabelFolderError as error:
        raise click.ClickException(f"{error} (nothing was rendered)") from None

    total = sum(len(sequence.frames) for sequence in sequences)
    started = time.perf_counter()
    written = 0
    transform_ms = 0.0
    with tqdm(total=total, desc="render", unit="frame") as bar:
        for sequence in sequences:
            renderer.reset()
            target = out / sequence.name if sequence.name else out
            target.mkdir(parents=True, exist_ok=True)
            for index, frame in enumerate(sequence.frames):
                label_ids = read_ids(frame, "label")
                if label_transform is not None:
                    label_ids = label_transform(label_ids.astype("uint8", copy=False))
                    transform_ms += label_transform.last_ms
                instance_ids = None
                if sequence.instances is not None:
                    instance_ids = read_ids(sequence.instances[index], "instance").astype("int64")
                try:
                    rgb = renderer.step(label_ids, instance_ids)
                except ValueError as error:
                    raise click.ClickException(f"{frame}: {error}") from None
                out_path = target / (frame.stem + ".png")
                if not cv2.imwrite(str(out_path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                    raise click.ClickException(f"cannot write {out_path}")
                written += 1
                bar.update(1)
    seconds = time.perf_counter() - started
    width, height = renderer.size or (0, 0)
    adapted = f", label transform {transform_ms / max(written, 1):.2f} ms/frame" if label_transform else ""
    adapted += f", {style.label}" if style is not None else ""
    click.echo(f"rendered {written} frames in {len(sequences)} sequence(s) at {width}x{height} "
               f"({1000 * seconds / max(written, 1):.0f} ms/frame, engine {engine}{adapted}) -> {out}")
