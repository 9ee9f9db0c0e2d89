"""`carla-neural render`: folders of label PNGs -> RGB PNGs through a vid2vid checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_sequences(labels: Path) -> list[tuple[str, list[Path]]]:
    """(name, frames) per sequence: ``labels`` itself, or one sub-folder per sequence (test_A)."""
    direct = _images(labels)
    if direct:
        return [("", direct)]
    sequences = [(sub.name, _images(sub)) for sub in sorted(p for p in labels.iterdir() if p.is_dir())]
    sequences = [(name, frames) for name, frames in sequences if frames]
    if not sequences:
        raise click.UsageError(f"{labels} holds no label images, directly or in sub-folders")
    return sequences


def pair_instances(instances: Path, name: str, frames: list[Path]) -> list[Path]:
    """Instance maps for ``frames``: same file names if present, else NVIDIA's pairing by sorted
    order (test_A and test_inst hold equally many files per sequence)."""
    folder = instances / name if name else instances
    if not folder.is_dir():
        raise click.ClickException(f"no instance folder {folder} for label sequence {name or frames[0].parent}")
    same_names = [folder / frame.name for frame in frames]
    if all(path.is_file() for path in same_names):
        return same_names
    available = _images(folder)
    if len(available) != len(frames):
        raise click.ClickException(
            f"{folder} holds {len(available)} instance maps for {len(frames)} label frames; "
            "give one per frame (same names, or the same count in the same sorted order)"
        )
    return available


def _read_single_channel(path: Path, what: str):
    import cv2
    import numpy as np

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise click.ClickException(f"cannot read {what} image {path}")
    if image.ndim == 3:
        channels = image[..., :3]
        grey = np.array_equal(channels[..., 0], channels[..., 1]) and np.array_equal(channels[..., 1], channels[..., 2])
        if not grey:
            raise click.ClickException(
                f"{path} is a colour image; {what} must be single-channel ids (labelIds PNGs, "
                "not the colourised *_color.png)"
            )
        image = channels[..., 0]
    return image


    return width, height


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
@click.option("--size", type=WxH(), default=None, help="Working WIDTHxHEIGHT of the model (default: the input size); "
              "outputs keep the input size.")
@click.option("--engine", default="torch", show_default=True, help="Renderer engine.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@threads_option
def command(checkpoint: str, labels_dir: Path, instances_dir: Path | None, single_g: Path | None, out: Path,
            size: tuple[int, int] | None, engine: str, device: str, threads: int | None) -> None:
    """Render label PNGs to RGB PNGs with the same names: one per input frame, first ones included."""
    import cv2
    from tqdm import tqdm

    from renderer.checkpoint import CheckpointError
    from renderer.loading import load_renderer

    from renderer.cpus import set_torch_threads

    set_torch_threads(threads)
    working_size = size
    sequences = find_sequences(labels_dir)
    try:
        renderer = load_renderer(checkpoint, engine=engine, device=device, size=working_size, single_g=single_g)
    except (CheckpointError, ValueError) as error:
        raise click.ClickException(str(error)) from None

    total = sum(len(frames) for _, frames in sequences)
    started = time.perf_counter()
    written = 0
    with tqdm(total=total, desc="render", unit="frame") as bar:
        for name, frames in sequences:
            renderer.reset()
            target = out / name if name else out
            target.mkdir(parents=True, exist_ok=True)
            instance_paths = pair_instances(instances_dir, name, frames) if instances_dir is not None else None
            for index, frame in enumerate(frames):
                label_ids = _read_single_channel(frame, "label")
                instance_ids = None
                if instance_paths is not None:
                    instance_ids = _read_single_channel(instance_paths[index], "instance").astype("int64")
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
    click.echo(f"rendered {written} frames in {len(sequences)} sequence(s) at {width}x{height} "
               f"({1000 * seconds / max(written, 1):.0f} ms/frame, engine {engine}) -> {out}")
