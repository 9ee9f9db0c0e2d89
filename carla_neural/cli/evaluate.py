"""`carla-neural evaluate`: PSNR, FID/KID and temporal warping error of a checkpoint on held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option


def builtin_sequences(sequences: int, frames: int, width: int, height: int, seed: int, warmup: int = 5,
                      layout: str | None = None) -> list[list]:
    """Held-out built-in-world sequences as lists of EvalFrame (sequence i uses seed + i)."""
    from carla_neural.dataset_export import ExportConfig, frame_images, open_source
    from carla_neural.remap import Remapper
    from renderer.training.evaluation import EvalFrame

    config = ExportConfig(out="", world="builtin", sequences=sequences, frames=frames, width=width, height=height,
                          seed=seed, warmup=warmup, layout=layout).validate()
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
                        inception=None, real_stream=None, progress: bool = True):
    """(EvalResult, real Inception stream) of one of our checkpoints on held-out sequences."""
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
                                  real_stream=real_stream, on_frame=lambda: bar.update(1))


@click.command(name="evaluate")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="One of our checkpoint folders (config.json + model.safetensors).")
@click.option("--world", type=click.Choice(["builtin"]), default="builtin", show_default=True,
              help="Where the held-out sequences come from.")
@click.option("--sequences", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--frames", type=click.IntRange(min=4), default=24, show_default=True, help="Frames per sequence.")
@click.option("--size", type=WxH(), default="256x128", show_default=True, help="WIDTHxHEIGHT of the held-out frames.")
@click.option("--seed", type=int, default=1000, show_default=True,
              help="Seed of the first held-out sequence (keep it away from the training seeds).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--no-fid", is_flag=True, help="Skip FID/KID (InceptionV3 costs ~0.3 s per frame on a CPU).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures to this JSON file.")
@threads_option
def command(checkpoint: Path, world: str, sequences: int, frames: int, size: tuple[int, int], seed: int,
            device: str, no_fid: bool, json_path: Path | None, threads: int | None) -> None:
    """Measure a checkpoint on held-out built-in-world sequences."""
    from renderer.cpus import set_torch_threads

    set_torch_threads(threads)
    width, height = size
    held_out = builtin_sequences(sequences, frames, width, height, seed)
    result, _ = evaluate_checkpoint(checkpoint, held_out, device=device, fid=not no_fid)
    figures = {"checkpoint": str(checkpoint), "world": world, "size": [width, height], "seed": seed,
               **result.as_dict()}
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(figures, indent=2))
    click.echo(
        f"{checkpoint}: PSNR {result.psnr_db:.2f} dB, FID {result.fid:.1f}, KID {result.kid:.4f}, "
        f"warping error {result.warping_error * 1000:.3f}e-3 (reference frames {result.reference_warping_error * 1000:.3f}e-3), "
        f"tOF {result.tof:.3f} px on {result.frames} frames of {result.sequences} sequences"
        + (f" -> {json_path}" if json_path else ""))
