"""`carla-neural adapt`: fine-tune a generator on simulator label maps against unpaired real video."""

from __future__ import annotations

from pathlib import Path

import click

from carla_neural.cli.options import WxH, threads_option


def _names(value: str | None) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()] if value else []


@click.command(name="adapt")
@click.option("--checkpoint", required=True,
              help="The source model: 'bundled', one of our checkpoint folders or an NVIDIA vid2vid folder.")
@click.option("--maps", "sims", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Simulator label maps: a `record` run folder (frames/label_ids, instance_ids, flow), a folder "
                   "of runs, or an NVIDIA-layout tree of labels. Repeatable.")
@click.option("--real", required=True, type=click.Path(path_type=Path),
              help="Real video in NVIDIA's layout: train_A/<seq>/ labelIds and train_B/<seq>/ photos (unpaired "
                   "with the maps: no photo of a simulator frame is needed).")
@click.option("--real-hold-out", default=None,
              help="Comma-separated real sequences never used (e.g. seq0004, the held-out yardstick).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: generator/ (the result), checkpoints/, tensorboard/, samples/, adapt_log.jsonl, "
                   "train_config.json. A second run resumes it.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Clips (one step per frame).")
@click.option("--size", type=WxH(), default="256x128", show_default=True,
              help="Crop WIDTHxHEIGHT the generator trains on (a multiple of its size multiple).")
@click.option("--load-width", type=click.IntRange(min=16), default=None,
              help="Resize frames to this width before cropping (default: the crop width, whole frames).")
@click.option("--clip-length", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=1, max_open=True), default=1e-4,
              show_default=True)
@click.option("--w-gan", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Image discriminator (real photos vs generated simulator frames).")
@click.option("--w-temporal-gan", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Temporal discriminator (real clips vs generated clips).")
@click.option("--w-seg", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Semantic consistency: the frozen segmenter's cross-entropy against the input labels.")
@click.option("--w-warp", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="L1 to the previous output warped along the simulator's flow (trusted pixels).")
@click.option("--w-anchor", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="On real label maps: L1 between the adapted and the source model's frames.")
@click.option("--w-anchor-feature", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="On real label maps: L1 between their image-discriminator features.")
@click.option("--adapt-labels/--no-adapt-labels", default=False, show_default=True,
              help="Pass the simulator maps through the label transform first, as a run with --adapt-labels "
                   "does before the renderer (docs/domain_adapt.md): the model learns the maps it will be given.")
@click.option("--transform-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Label transform config JSON (default: the calibrated one); implies --adapt-labels.")
@click.option("--flow", type=click.Choice(["auto", "require", "off"]), default="auto", show_default=True,
              help="The warp loss: auto (where a run has flow PNGs; says which do not), require (refuse maps "
                   "without flow), off.")
@click.option("--segmenter", default="bundled", show_default=True, help="'bundled' or a segmenter folder.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--image-every", type=click.IntRange(min=1), default=100, show_default=True,
              help="Steps between sample strips (samples/step_N.png).")
@click.option("--stop-at", type=click.IntRange(min=1), default=None,
              help="Leave after this step, checkpointed (the run still spans --steps); run again to resume.")
@click.option("--no-resume", is_flag=True, help="Start over even if OUT holds a checkpoint.")
@threads_option
def command(checkpoint: str, sims: tuple[Path, ...], real: Path, real_hold_out: str | None, out: Path, steps: int,
            size: tuple[int, int], load_width: int | None, clip_length: int, lr: float, w_gan: float,
            w_temporal_gan: float, w_seg: float, w_warp: float, w_anchor: float, w_anchor_feature: float,
            adapt_labels: bool, transform_config: Path | None, flow: str,
            segmenter: str, device: str, seed: int, save_every: int, image_every: int, stop_at: int | None,
            no_resume: bool, threads: int | None) -> None:
    """Fine-tune CHECKPOINT on simulator label maps without paired photos (docs/domain_adapt.md)."""
    from domain_adapt.adapt_config import AdaptConfig, AdaptWeights
    from domain_adapt.finetune import Adapter, AdaptInputError
    from renderer.cpus import set_torch_threads
    from renderer.training.config import ConfigError
    from renderer.training.datasets import DatasetError

    used_threads = set_torch_threads(threads)
    weights = AdaptWeights(gan=w_gan, temporal_gan=w_temporal_gan, segmentation=w_seg, warp=w_warp,
                           anchor_l1=w_anchor, anchor_feature=w_anchor_feature)
    try:
        config = AdaptConfig(checkpoint=checkpoint, sim=[str(p) for p in sims], real=str(real),
                             real_hold_out=_names(real_hold_out), segmenter=segmenter, out_dir=str(out),
                             crop_width=size[0], crop_height=size[1], load_width=load_width,
                             clip_length=clip_length, adapt_labels=adapt_labels or transform_config is not None,
                             transform_config=str(transform_config) if transform_config else None, flow=flow,
                             steps=steps, lr=lr, weights=weights, seed=seed,
                             device=device, image_every=image_every, save_every=save_every,
                             resume=not no_resume).validate()
        adapter = Adapter(config)  # every input is checked here, before anything is written
    except (AdaptInputError, ConfigError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    where = "CPU (slow: a GPU, --device cuda, is the place for real runs)" if adapter.device.type == "cpu" \
        else f"GPU {adapter.device}"
    click.echo(f"adapting {checkpoint} on {where}, {used_threads} torch thread(s): "
               f"{len(config.sim)} map folder(s), {len(adapter.inputs.sim_sequences)} sequence(s); "
               f"{len(adapter.inputs.real_sequences)} real sequence(s)"
               + ("; maps through the label transform" if config.adapt_labels else ""), err=True)
    start = adapter.step
    try:
        history = adapter.train(until=stop_at)
    except DatasetError as error:  # a frame past the first that does not read
        raise click.ClickException(str(error)) from None
    finally:
        adapter.close()
    if not history:
        click.echo(f"adapt: {out} is already at step {adapter.step} of {steps}; nothing to do -> {out / 'generator'}")
        return
    first, last = history[0], history[-1]
    result = out / "generator" if adapter.step >= steps else out / "checkpoints" / "latest" / "generator"
    click.echo(f"adapted steps {start}..{adapter.step} of {steps} on {adapter.device.type}: segmenter CE "
               f"{first['G_Seg']:.3f} -> {last['G_Seg']:.3f}, anchor L1 {first['A_L1']:.4f} -> {last['A_L1']:.4f} "
               f"-> {result} (checkpoints in {out / 'checkpoints'}, logs in {out / 'tensorboard'}, "
               f"samples in {out / 'samples'})")
