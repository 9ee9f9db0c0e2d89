"""`carla-neural train`: train or fine-tune a vid2vid generator on paired label/RGB sequences.

Multi-GPU / multi-node: launch through torchrun, e.g.
    torchrun --nproc_per_node 4 "$(which carla-neural)" train --data DATA --out runs/x
Every rank reads RANK/WORLD_SIZE/LOCAL_RANK; networks are wrapped in DistributedDataParallel.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option


@click.command(name="train")
@click.option("--data", "datasets", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A vid2vid dataset (train_A/train_B/...), a recorder run folder, or a folder of runs. Repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: checkpoints/, tensorboard/, samples/, generator/ (the result).")
@click.option("--val-sequences", default=None,
              help="Comma-separated sequence names kept out of training (held out), e.g. seq0004.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A TrainConfig JSON (e.g. a run's train_config.json); options given here override it.")
@click.option("--model", default=None,
              help="Generator preset (lite, lite_spade, nvidia_1024_g1, nvidia_2048) or config.json.")
@click.option("--generator", type=click.Choice(["nvidia", "spade"]), default=None,
              help="Generator design: nvidia (NVIDIA's) or spade (SPADE image decoders); default: the model's own. "
                   "--model lite --generator spade is the lite_spade preset (equal multiply-adds per frame).")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Fine-tune from one of our checkpoints or an NVIDIA vid2vid checkpoint folder.")
@click.option("--baseline", is_flag=True, default=None, help="Frame-by-frame baseline: temporal path off.")
@click.option("--feature-channels", type=click.IntRange(0, 16), default=None,
              help="Styles (docs/styles.md): train a feature encoder of this many channels (e.g. 3) with the "
                   "generator; its per-class clusters are stored with the result. Default 0: no styles.")
@click.option("--styles-only", is_flag=True, default=None,
              help="With --init-from and --feature-channels: train only the style encoder and convolutions; "
                   "without a style the model renders exactly as the --init-from model.")
@click.option("--style-input", type=click.Choice(["stems", "tone"]), default=None,
              help="With --styles-only: where the style enters. stems (default): beside the labels, into the "
                   "network; tone: a per-class colour change of the output only (docs/styles.md, \"How it works\").")
@click.option("--style-clusters", type=click.IntRange(1, 64), default=None,
              help="Styles per class clustered at the end of training (default 8).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training clips.")
@click.option("--size", type=WxH(), default=None, help="Crop WIDTHxHEIGHT (multiple of the generator's size multiple).")
@click.option("--load-width", type=click.IntRange(min=16), default=None, help="Resize frames to this width first.")
@click.option("--clip-length", type=click.IntRange(min=1), default=None)
@click.option("--max-clip-length", type=click.IntRange(min=1), default=None)
@click.option("--clip-double-every", type=click.IntRange(min=0), default=None, help="Steps between doublings.")
@click.option("--frame-steps", type=click.IntRange(min=0), default=None,
              help="Warm start: a temporal model trains frame by frame (temporal path off) for this many clips first.")
@click.option("--steps-per-scale", type=click.IntRange(min=0), default=None,
              help="Spatial curriculum: steps before the next finer scale joins (0: all scales from the start).")
@click.option("--finest-alone-steps", type=click.IntRange(min=0), default=None,
              help="Steps a newly added scale trains alone (coarser scales frozen).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--d-warmup-steps", type=click.IntRange(min=0), default=None,
              help="Fine-tuning with a fresh discriminator: the generator stays still (lr 0) for this many "
                   "clips while the discriminators learn its output. Default 0.")
@click.option("--gan-mode", type=click.Choice(["lsgan", "hinge"]), default=None)
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="torchvision-format VGG19 weights (.pth or .safetensors); default: torchvision's cache if present.")
@click.option("--no-vgg", is_flag=True, default=None, help="Turn the VGG perceptual loss off.")
@click.option("--l1", type=click.FloatRange(min=0), default=None, help="Weight of an L1 image term (vid2vid: 0).")
@click.option("--region-colour", type=click.FloatRange(min=0), default=None,
              help="Weight of an L1 term on each region's mean colour (default 0), aimed at styles' per-class colour.")
@click.option("--segmentation", type=click.FloatRange(min=0), default=None,
              help="Weight of a semantic term (default 0): a frozen teacher segmenter (--seg-teacher) must "
                   "read the input labels in the output.")
@click.option("--seg-teacher", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="Segmenter folder for --segmentation (carla-neural train-segmenter); repeat it for an ensemble "
                   "whose losses are averaged. Use ones trained apart from the bundled segmenter, which scores "
                   "segmentation consistency.")
@click.option("--colour-jitter", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
              help="Styles: recolour each class per clip by up to this fraction (default 0), so that the "
                   "photo's colours reach the generator only through the style encoder.")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
@click.option("--no-resume", is_flag=True, default=None, help="Start over even if OUT holds a checkpoint.")
@click.option("--no-amp", is_flag=True, default=None,
              help="fp32 throughout. Default: mixed precision on CUDA, and bf16 on CPUs that run it natively "
                   "(AMX / AVX-512 BF16; about half the time per clip), never where it would be emulated.")
@threads_option
def command(datasets: tuple[str, ...], out: Path, config_file: Path | None, threads: int | None, **options) -> None:
    """Train a generator with vid2vid's losses and curriculum (resumes OUT if it holds a checkpoint)."""
    from renderer.training.config import ConfigError, TrainConfig
    from renderer.cpus import set_torch_threads
    from renderer.training.losses import LossWeights

    set_torch_threads(threads)

    values = json.loads(config_file.read_text()) if config_file else {}
    if datasets:
        values["datasets"] = list(datasets)
    values["out_dir"] = str(out)
    renames = {"init_from": "init_from", "workers": "num_workers"}
    for name, value in options.items():
        if value is None or value == ():
            continue
        if name == "size":
            values["crop_width"], values["crop_height"] = value
        elif name == "val_sequences":
            values["val_sequences"] = [n.strip() for n in value.split(",") if n.strip()]
        elif name == "baseline":
            values["temporal"] = not value
        elif name == "seg_teacher":
            values["seg_teacher"] = value[0] if len(value) == 1 else list(value)
        elif name == "no_vgg":
            values["use_vgg"] = not value
        elif name == "no_resume":
            values["resume"] = not value
        elif name == "no_amp":
            values["amp"] = not value
        elif name in ("l1", "region_colour", "segmentation"):
            weights = values.get("weights") or {}
            weights = dataclasses.asdict(weights) if isinstance(weights, LossWeights) else dict(weights)
            weights[name] = value
            values["weights"] = weights
        else:
            values[renames.get(name, name)] = value
    try:
        config = TrainConfig.from_dict(values)
    except (ConfigError, TypeError) as err:
        raise click.UsageError(str(err)) from None

    from renderer.training.datasets import DatasetError
    from renderer.training.trainer import Trainer

    try:
        trainer = Trainer(config)
    except (DatasetError, ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    start = trainer.step
    trainer.train()
    trainer.close()
    if trainer.dist.is_main:
        styles = f", {config.style_clusters} styles" if config.feature_channels else ""
        click.echo(f"trained steps {start}..{trainer.step} ({'temporal' if config.temporal else 'frame-by-frame'}"
                   f"{styles}) -> {out / 'generator'} (checkpoints in {out / 'checkpoints'}, logs in "
                   f"{out / 'tensorboard'})")
