"""`carla-neural evaluate`: PSNR, FID/KID and temporal warping error of a checkpoint on held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option


def builtin_sequences(sequences: int, frames: int, width: int, height: int, seed: int, warmup: int = 5,
                      layout: str | None = None, mount: str | None = None) -> list[list]:
    """Held-out built-in-world sequences as lists of EvalFrame (sequence i uses seed + i; `mount`
    None: the world's default camera)."""
    from carla_neural.dataset_export import ExportConfig, frame_images, open_source
    from carla_neural.remap import Remapper
    from renderer.training.evaluation import EvalFrame

    config = ExportConfig(out="", world="builtin", sequences=sequences, frames=frames, width=width, height=height,
                          seed=seed, warmup=warmup, layout=layout,
                          extra={"mount": mount} if mount is not None else {}).validate()
    remapper = Remapper(unknown="unlabeled")
    result = []
    for index in range(sequences):
        with open_source(config, index) as source:
            for _ in range(warmup):
                source.tick()
            sequence = []
            for _ in range(frames):
                label_ids, rgb, instance_ids, flow_px = frame_images(source.tick(), remapper)
                if flow_px is None:
                    raise click.ClickException("the built-in world gave no flow; evaluation needs its flow camera")
                sequence.append(EvalFrame(label_ids, instance_ids.astype("int32"), rgb, flow_px))
            result.append(sequence)
    return result


def evaluate_checkpoint(checkpoint: Path, sequences: list[list], device: str = "auto", fid: bool = True,
                        inception=None, real_stream=None, progress: bool = True, segmenter=None,
                        reference_segmentation: dict | None = None):
    """(EvalResult, real Inception stream) of one of our checkpoints on held-out sequences; with a
    segmenter, its segmentation consistency too (see evaluate_sequences)."""
    import torch
    from tqdm import tqdm

    from renderer.metrics import InceptionFeatures
    from renderer.training.evaluation import SequenceRenderer, evaluate_sequences
    from renderer.training.generator import load_trainable
    from renderer.training.trainer import resolve_device

    torch_device = resolve_device(device)
    generator = load_trainable(checkpoint, torch_device)
    renderer = SequenceRenderer(generator, torch_device)
    if fid and inception is None:
        inception = InceptionFeatures(device=str(torch_device), batch_size=16)
    total = sum(len(s) for s in sequences)
    with tqdm(total=total, desc=f"evaluate {checkpoint.name}", unit="frame", disable=not progress) as bar:
        return evaluate_sequences(sequences, renderer.step, renderer.reset, inception if fid else None,
                                  real_stream=real_stream, on_frame=lambda: bar.update(1), segmenter=segmenter,
                                  reference_segmentation=reference_segmentation)


def evaluate_style(checkpoint: Path, style: str, sequences: list[list], size: tuple[int, int], device: str = "auto",
                   fid: bool = True, inception=None, real_stream=None, segmenter=None,
                   reference_segmentation: dict | None = None):
    """(EvalResult, real Inception stream, per-class mean RGB of the rendered frames) of a
    checkpoint with styles rendered in ``style`` ('default' or an index) by the SequentialRenderer."""
    from tqdm import tqdm

    from renderer.loading import load_renderer
    from renderer.metrics import InceptionFeatures
    from renderer.metrics.class_color import ClassColorStats
    from renderer.style_choice import choose_style
    from renderer.training.evaluation import evaluate_sequences

    choice = None if style == "default" else choose_style(checkpoint, int(style))
    renderer = load_renderer(checkpoint, device=device, size=size)
    renderer.apply_style(choice)
    if fid and inception is None:
        inception = InceptionFeatures(device=str(renderer.device), batch_size=16)
    colours = ClassColorStats()

    def step(label_ids, instance_ids):
        out = renderer.step(label_ids, instance_ids)
        colours.update(out, label_ids)
        return out

    total = sum(len(s) for s in sequences)
    with tqdm(total=total, desc=f"evaluate {checkpoint.name} style {style}", unit="frame") as bar:
        result, real_stream = evaluate_sequences(sequences, step, renderer.reset, inception if fid else None,
                                                 real_stream=real_stream, on_frame=lambda: bar.update(1),
                                                 segmenter=segmenter, reference_segmentation=reference_segmentation)
    return result, real_stream, colours.mean_rgb()


def _class_name(label: int) -> str:
    """Cityscapes name of a labelId (the id itself, as text, outside the table)."""
    from cityscapesscripts.helpers.labels import id2label

    return id2label[label].name if label in id2label else str(label)


def _as_compare_metrics(result, class_rgb: dict) -> dict:
    """An EvalResult in the shape of compare's metrics, for compare.style_sweep.sweep_summary."""
    return {"warping_error": {"neural": result.warping_error},
            "segmentation": {"neural": {"miou": (result.segmentation or {}).get("miou")}},
            "class_colors": [{"label_id": int(label), "name": _class_name(label),
                              "neural_mean_rgb": list(rgb)} for label, rgb in class_rgb.items()]}


def _photo_spread(data: Path, size: tuple[int, int], figures: dict) -> dict[int, float]:
    """{label id: max RGB distance} between the per-class mean colours of the dataset's sequences'
    photos: how much real appearances differ, beside the styles' spread. Stored in ``figures``."""
    from carla_neural.compare.style_sweep import class_spread
    from renderer.training.evaluation import photo_class_colours

    colours = photo_class_colours(data, size)
    names = {label: _class_name(label) for table in colours.values() for label in table}
    spread = class_spread(colours, names)
    figures["photo_class_spread"] = {"sequences": sorted(colours), "class_spread": spread}
    return {row["label_id"]: row["max_rgb_distance"] for row in spread}


def _parse_eval_styles(values: tuple[str, ...]) -> list[str]:
    for value in values:
        if value != "default" and not (value.isdigit() and int(value) <= 63):
            raise click.BadParameter(f"{value!r}: give 'default' or a style index 0..63", param_hint="--style")
    return list(values)


def _checkpoint_folder(value: str) -> Path:
    """"bundled" or one of our checkpoint folders -> its folder (a clear error otherwise)."""
    from renderer.checkpoint import CheckpointError
    from renderer.loading import resolve_checkpoint_folder

    try:
        return resolve_checkpoint_folder(value)
    except CheckpointError as err:
        raise click.BadParameter(str(err), param_hint="--checkpoint") from None


def _format(name: str, result, reference: str) -> str:
    fid_text = "FID/KID skipped (--no-fid)" if result.fid != result.fid else f"FID {result.fid:.1f}, KID {result.kid:.4f}"
    seg_text = ""
    if result.segmentation is not None and result.reference_segmentation is not None:
        mine, ceiling = result.segmentation["miou"], result.reference_segmentation["miou"]
        seg_text = (f"seg mIoU {mine:.3f} ({reference} {ceiling:.3f}, ratio {mine / ceiling if ceiling else float('nan'):.2f}), "
                    f"pixel accuracy {result.segmentation['pixel_accuracy']:.3f}, ")
    return (f"{name}: PSNR {result.psnr_db:.2f} dB, {fid_text}, {seg_text}"
            f"warping error {result.warping_error * 1000:.3f}e-3 ({reference} {result.reference_warping_error * 1000:.3f}e-3), "
            f"tOF {result.tof:.3f} px on {result.frames} frames of {result.sequences} sequences")


@click.command(name="evaluate")
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="`bundled` or one of our checkpoint folders; repeat it to score several models against "
                   "the same references (e.g. a model and its frame-by-frame baseline).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Held-out real (or recorded) sequences with photos: NVIDIA's layout (train_A/train_B/train_inst) "
                   "or run folders. Without it, sequences of the built-in world.")
@click.option("--world", type=click.Choice(["builtin"]), default="builtin", show_default=True,
              help="Where the held-out sequences come from when --data is not given.")
@click.option("--sequences", default=None,
              help="With --data: comma-separated sequence names (default: all). Without: how many built-in-world "
                   "sequences (default 8).")
@click.option("--frames", type=click.IntRange(min=4), default=24, show_default=True,
              help="Frames per built-in-world sequence.")
@click.option("--size", type=WxH(), default=None, help="WIDTHxHEIGHT of the held-out frames (default 512x256 with --data, "
                                           "256x128 on the built-in world).")
@click.option("--seed", type=int, default=1000, show_default=True,
              help="Seed of the first built-in-world sequence (keep it away from the training seeds).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--no-fid", is_flag=True, help="Skip FID/KID (InceptionV3 costs ~0.3 s per frame on a CPU).")
@click.option("--segmenter", default="bundled", show_default=True,
              help="The segmenter behind segmentation consistency: `bundled` or a folder from `train-segmenter`.")
@click.option("--no-seg", is_flag=True, help="Skip segmentation consistency (~0.5 s per frame on one CPU thread).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures to this JSON file.")
@click.option("--style", "styles", multiple=True, metavar="default|K",
              help="Checkpoints with styles: evaluate each in this style (repeatable, e.g. --style default "
                   "--style 0 --style 1); adds every style's per-class mean colours, the spread across the "
                   "styles and the ratios to 'default' (docs/styles.md); with --data, also the spread of "
                   "the photos' per-class mean colours across the dataset's sequences, for scale.")
@threads_option
def command(checkpoints: tuple[str, ...], data: Path | None, world: str, sequences: str | None, frames: int,
            size: tuple[int, int] | None, seed: int, device: str, no_fid: bool, segmenter: str, no_seg: bool,
            json_path: Path | None, styles: tuple[str, ...], threads: int | None) -> None:
    """Measure checkpoints on held-out real sequences (--data) or built-in-world sequences."""
    from renderer.checkpoint import CheckpointError
    from renderer.cpus import set_torch_threads

    set_torch_threads(threads)
    folders = [_checkpoint_folder(value) for value in checkpoints]
    style_list = _parse_eval_styles(styles)
    if style_list:
        from renderer.style_choice import choose_style

        for value, folder in zip(checkpoints, folders):
            for style in style_list:  # every style checked before anything is measured
                try:
                    choose_style(folder, None if style == "default" else int(style))
                except (CheckpointError, ValueError) as error:
                    raise click.UsageError(f"--checkpoint {value}: {error}") from None
    width, height = size or ((512, 256) if data is not None else (256, 128))
    if data is not None:
        from renderer.training.datasets import DatasetError
        from renderer.training.evaluation import dataset_sequences

        names = [n.strip() for n in sequences.split(",") if n.strip()] if sequences else None
        try:
            held_out = dataset_sequences(data, names, (width, height))
        except DatasetError as err:
            raise click.ClickException(str(err)) from None
        source = {"data": str(data), "sequences": [seq_name for seq_name in (names or [])] or "all"}
    else:
        try:
            count = int(sequences) if sequences else 8
        except ValueError:
            raise click.BadParameter(f"{sequences!r}: without --data, --sequences is a count of built-in-world "
                                     "sequences; give --data DIR to name real ones", param_hint="--sequences") from None
        if count < 1:
            raise click.BadParameter("must be >= 1", param_hint="--sequences")
        held_out = builtin_sequences(count, frames, width, height, seed)
        source = {"world": world, "sequences": count, "seed": seed}
    seg_model = None
    if not no_seg:
        from renderer.segmenter.checkpoint import load_segmenter

        try:
            seg_model = load_segmenter(segmenter)
        except CheckpointError as error:
            raise click.ClickException(str(error)) from None
    reference = "real frames" if data is not None else "the world's frames"
    figures: dict = {"size": [width, height], **source, "segmenter": None if no_seg else segmenter, "models": {}}
    real_stream = None
    reference_segmentation = None
    lines = []
    photo_spread: dict[int, float] = {}
    if style_list and data is not None:
        photo_spread = _photo_spread(data, (width, height), figures)
    for value, folder in zip(checkpoints, folders):
        if style_list:
            from carla_neural.compare.style_sweep import sweep_summary

            per_style = {}
            for style in style_list:
                result, real_stream, class_rgb = evaluate_style(
                    folder, style, held_out, (width, height), device=device, fid=not no_fid, real_stream=real_stream,
                    segmenter=seg_model, reference_segmentation=reference_segmentation)
                reference_segmentation = result.reference_segmentation
                name = f"{value} style {style}"
                figures["models"][name] = {"checkpoint": str(folder), "style": style, **result.as_dict()}
                lines.append(_format(name, result, reference))
                per_style[style] = _as_compare_metrics(result, class_rgb)
            summary = sweep_summary(per_style)
            figures.setdefault("styles", {})[value] = summary
            spread = sorted(summary["class_spread"], key=lambda row: -row["max_rgb_distance"])[:5]
            lines.append(f"{value}: per-class colour spread across styles (max RGB distance"
                         + ("; the photos' across the dataset's sequences in brackets" if photo_spread else "")
                         + ") " + ", ".join(f"{row['name']} {row['max_rgb_distance']:.0f}"
                                            + (f" ({photo_spread[row['label_id']]:.0f})"
                                               if row["label_id"] in photo_spread else "") for row in spread))
            continue
        from renderer.style_choice import checkpoint_styles

        try:
            feat_nc, bank = checkpoint_styles(folder)
            if feat_nc and (bank is None or bank.default_vectors() is not None):
                # A model with styles renders its default style, as `render` does without --style
                # (styles added to a frozen model have none: it renders as the model it was added to).
                result, real_stream, _ = evaluate_style(
                    folder, "default", held_out, (width, height), device=device, fid=not no_fid,
                    real_stream=real_stream, segmenter=seg_model, reference_segmentation=reference_segmentation)
            else:
                result, real_stream = evaluate_checkpoint(folder, held_out, device=device, fid=not no_fid,
                                                          real_stream=real_stream, segmenter=seg_model,
                                                          reference_segmentation=reference_segmentation)
        except CheckpointError as error:
            raise click.ClickException(str(error)) from None
        reference_segmentation = result.reference_segmentation
        figures["models"][value] = {"checkpoint": str(folder), **result.as_dict()}
        lines.append(_format(value, result, reference))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2))
    for line in lines:
        click.echo(line)
    if json_path is not None:
        click.echo(f"figures -> {json_path}")
