"""`carla-neural pictures`: strips of chosen frames, rendered in sequence, for a person to look at."""

from __future__ import annotations

from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option


def _frame_list(value: str) -> list[int]:
    try:
        picked = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of frame numbers", param_hint="--frames") from None
    if not picked or picked[0] < 0:
        raise click.BadParameter("give frame numbers >= 0, e.g. 4,14,24", param_hint="--frames")
    return picked


@click.command(name="pictures")
@click.option("--checkpoint", "checkpoints", multiple=True, default=("bundled",), show_default=True,
              help="`bundled`, `bundled-adapted`, ours, or an NVIDIA folder. Repeatable: one neural column each, "
                   "e.g. before and after adaptation.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A dataset with photos (NVIDIA's layout): strips of labels | neural | real photo. Without it, "
                   "the built-in world: raw | labels | neural.")
@click.option("--sequence", default=None, help="With --data: the sequence to show (default: the first).")
@click.option("--frames", "frames_text", default="4,14,24", show_default=True,
              help="Comma-separated frame numbers (the sequence is rendered from frame 0 up to the last one).")
@click.option("--size", type=WxH(min_side=16, max_side=4096), default="512x256", show_default=True,
              help="WIDTHxHEIGHT of the panels.")
@click.option("--seed", type=int, default=1000, show_default=True, help="Built-in world: the sequence's seed.")
@click.option("--mount", default=None,
              help="Built-in world: the camera mount (default: the demo's, cityscapes; or hood, chase, roof, bumper).")
@click.option("--adapt-labels/--no-adapt-labels", default=None,
              help="Pass the labels through the label transform before each model (default: only for "
                   "bundled-adapted, as in a run). The label panel shows the maps before it.")
@click.option("--engine", default="torch", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG to write. Strips of real data hold the dataset's photos: keep them out of the repository.")
@threads_option
def command(checkpoints: tuple[str, ...], data: Path | None, sequence: str | None, frames_text: str,
            size: tuple[int, int], seed: int, mount: str | None, adapt_labels: bool | None, engine: str, out: Path,
            threads: int | None) -> None:
    """Render a sequence and write a strip of chosen frames, side by side with their labels and photos."""
    from carla_neural.label_transform import LabelTransform
    from carla_neural.pictures import render_rows, strip, write_png
    from carla_neural.runs import DEMO_MOUNT, adapt_spec
    from renderer.checkpoint import CheckpointError
    from renderer.loading import load_renderer
    from renderer.training.datasets import DatasetError

    from renderer.cpus import set_torch_threads

    set_torch_threads(threads)
    picked = _frame_list(frames_text)
    width, height = size
    if data is not None:
        from renderer.training.evaluation import dataset_sequences
        from renderer.training.datasets import scan_dataset

        try:
            name = sequence or scan_dataset(data)[0].name
            (frames,) = dataset_sequences(data, [name], (width, height))
        except DatasetError as err:
            raise click.ClickException(str(err)) from None
        titles, real_last, label = ["labels", "photo"], True, f"{data.name}/{name}"
    else:
        from carla_neural.cli.evaluate import builtin_sequences

        mount = mount or DEMO_MOUNT
        try:
            (frames,) = builtin_sequences(1, max(picked) + 1, width, height, seed, mount=mount)
        except ValueError as err:
            raise click.ClickException(f"--mount {mount}: {err}") from None
        titles, real_last = ["raw (built-in world)", "labels"], False
        label = f"built-in world seed {seed}, {mount} mount"
    if max(picked) >= len(frames):
        raise click.BadParameter(f"the sequence has {len(frames)} frames (0..{len(frames) - 1})", param_hint="--frames")
    steps, names = [], []
    for checkpoint in checkpoints:
        try:
            renderer = load_renderer(checkpoint, engine=engine, device="cpu")
        except CheckpointError as err:
            raise click.ClickException(str(err)) from None
        adapt = adapt_spec(adapt_labels, checkpoint=checkpoint)  # the rule a run follows
        transformed = adapt is not None
        if transformed:
            transform = LabelTransform(adapt.config)
            steps.append(lambda labels, instances, r=renderer, t=transform: r.step(t(labels), instances))
        else:
            steps.append(renderer.step)
        short = Path(checkpoint).name if len(checkpoints) > 1 else ""
        names.append(f"neural{' ' + short if short else ''}{' +transform' if transformed else ''}")
    neural_at = 1 if real_last else 2
    titles[neural_at:neural_at] = names
    rows = render_rows(frames, picked, steps, real_photo_last=real_last)
    image = strip(rows, titles, [f"frame {i}" for i in picked])
    write_png(image, out)
    click.echo(f"{len(picked)} frames of {label} rendered by {', '.join(checkpoints)} -> {out}")
