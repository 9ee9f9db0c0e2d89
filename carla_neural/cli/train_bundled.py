"""`carla-neural train-bundled` (what `make model` runs): the shipped `lite` model and its baseline.

1. exports built-in-world training data (NVIDIA layout + the world's ground-truth flow);
2. trains the `lite` vid2vid generator (temporal) and the frame-by-frame baseline (the same
   generator with its temporal path off, pix2pixHD-style) for the same number of clips;
3. evaluates both on held-out built-in-world sequences (PSNR, FID, KID, warping error, tOF);
4. writes OUT/config.json + OUT/model.safetensors (the lite model), OUT/figures.json and
   OUT/README.md (data, steps, time, figures, the command).

The number of clips is either given (--steps) or sized from a time budget (--minutes per model):
a short calibration measures seconds per clip at the final clip length and full resolution.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import click

from carla_neural.cli.options import WxH

log = logging.getLogger(__name__)

TRAIN_SEED_BASE = 0
EVAL_SEED_BASE = 1000


def bundled_model_config() -> dict:
    """The generator config of the shipped model: the `lite` preset as it stands."""
    from renderer.model.config import preset

    return preset("lite").to_dict()


def train_config(data: Path, out: Path, model_json: Path, temporal: bool, steps: int, device: str, seed: int,
                 width: int, height: int):
    """The TrainConfig both models use; only `temporal` differs."""
    from renderer.training.config import TrainConfig
    from renderer.training.losses import LossWeights

    half = max(1, steps // 2)
    return TrainConfig(
        datasets=[str(data)], crop_width=width, crop_height=height, flip=True,
        model=str(model_json), temporal=temporal,
        # Both scales at full size from the start (a scale added late set both models back more than
        # the short run could recover). The first half trains frame by frame - the whole run of the
        # baseline, the warm start of lite - on clips of 4 frames; the second half on clips of 8, lite
        # temporally (2 real + 6 generated frames). Constant lr, then a linear decay over the last quarter.
        steps=steps, frame_steps=half if temporal and steps > 1 else 0, steps_per_scale=0,
        clip_length=4, max_clip_length=8, clip_double_every=half, lr=2e-4, decay_start=3 * steps // 4,
        # No VGG19 weights ship with the project; an L1 term gives the short run a colour anchor.
        weights=LossWeights(l1=10.0), use_vgg=True,
        d_channels=16, d_layers=3, d_scales=2, temporal_strides=2,
        out_dir=str(out), seed=seed, device=device, log_every=5, image_every=max(10, steps // 10),
        save_every=max(5, steps // 20), resume=True, num_workers=_loader_workers(device),
    ).validate()


LONG_CLIP_LENGTH = 16


def long_clip_config(config, long_steps: int):
    """Stage 2 of both models: resume at the end of `config` and train `long_steps` more clips of
    LONG_CLIP_LENGTH frames (lite: 2 real + 14 generated, nearer the length it renders unattended),
    lr restarting at half and decaying linearly to 0."""
    import dataclasses

    return dataclasses.replace(
        config, steps=config.steps + long_steps, clip_length=LONG_CLIP_LENGTH, max_clip_length=LONG_CLIP_LENGTH,
        clip_double_every=0, lr=config.lr / 2, decay_start=config.steps).validate()


def _loader_workers(device: str) -> int:
    """Background data loading only pays when a GPU does the training."""
    import torch

    return 4 if device != "cpu" and torch.cuda.is_available() else 0


def _seconds_per_clip(config, clips: int, frame_phase: bool) -> float:
    from renderer.training.trainer import Trainer

    trainer = Trainer(config)
    batches = trainer._batches(0)
    stage = trainer.spatial.stage(config.steps - 1)
    _, batch = next(batches)
    trainer.train_clip(batch, stage, frame_phase)  # warm-up
    started = time.monotonic()
    for _ in range(clips):
        _, batch = next(batches)
        trainer.train_clip(batch, stage, frame_phase)
    seconds = (time.monotonic() - started) / clips
    trainer.close()
    shutil.rmtree(config.out_dir, ignore_errors=True)
    return seconds


def calibrate(config, clips: int = 2) -> float:
    """Mean seconds per clip over the schedule of `train_config` (temporal), from two probes: short
    clips frame by frame (the first half) and long clips trained temporally (the second half)."""
    import dataclasses

    probe_dir = str(Path(config.out_dir).parent / "calibration")
    common = dict(steps=clips + 1, frame_steps=0, decay_start=None, clip_double_every=0, out_dir=probe_dir,
                  resume=False, save_every=10**6, image_every=10**6)
    short = dataclasses.replace(config, clip_length=config.clip_length, max_clip_length=config.clip_length, **common)
    long = dataclasses.replace(config, clip_length=config.max_clip_length, max_clip_length=config.max_clip_length,
                               **common)
    return 0.5 * _seconds_per_clip(short.validate(), clips, True) + 0.5 * _seconds_per_clip(long.validate(), clips, False)


def _schedule_text(training: dict) -> str:
    if not training:
        return "schedule not recorded"
    steps = training["steps"]
    clip = f"clip length {training['clip_length']}"
    if training["clip_double_every"] and training["max_clip_length"] > training["clip_length"]:
        clip += f", doubling every {training['clip_double_every']} clips up to {training['max_clip_length']}"
    spatial = "all scales at full size from the start"
    if training["steps_per_scale"] and training["steps_per_scale"] < steps:
        spatial = (f"the coarse scale alone at half size for the first {training['steps_per_scale']} clips, "
                   "then both scales at full size")
    parts = [f"batch {training['batch_size']}", clip, spatial]
    if training.get("frame_steps"):
        parts.append(f"lite trained frame by frame (the baseline's objective) for its first {training['frame_steps']} "
                     "clips, temporally after")
    text = f"{steps} clips per model ({'; '.join(parts)})"
    if training.get("long_steps"):
        text += f", then {training['long_steps']} clips of {training['long_clip_length']} frames (lite temporally)"
    return text


def _decay_text(training: dict) -> str:
    start = training.get("decay_start")
    text = ("linear decay over the second half" if start is None
            else f"constant for {start} clips, then a linear decay to 0 at clip {training['steps']}")
    if training.get("long_steps"):
        text += f"; the long clips restart at {training['long_lr']:g} and decay linearly to 0"
    return text


def _strides_text(training: dict) -> str:
    count = training.get("temporal_strides", 0)
    strides = [3**index for index in range(count)]
    if training.get("max_clip_length", 8) < 7:
        strides = strides[:1]
    return " and ".join(str(s) for s in strides) or "none"


def write_readme(out: Path, figures: dict) -> None:
    """OUT/README.md: what the shipped model is, how it was made, what it reaches."""
    lite, base = figures["lite"], figures["baseline"]
    ratio = figures.get("warping_error_ratio")
    lines = [
        "# Bundled `lite` model",
        "",
        "vid2vid sequential generator (NVIDIA's design at the `lite` preset: 2 spatial scales, flow warping, occlusion",
        "weight, single-image generator for the first frames; ngf 8, 3x3 full-resolution kernels, no foreground branch), trained on",
        "built-in-world data only. It renders Cityscapes labelIds; expect the built-in world's look, not photographs.",
        "",
        "Use: `renderer.loading.load_renderer(\"bundled\", size=(W, H))`; it was trained at "
        f"{figures['data']['size'][0]}x{figures['data']['size'][1]} (config.json metadata `working_size`), and renders at that size by default.",
        "",
        "## How it was made",
        "",
        "- Commands, in order: " + ", ".join(f"`{line}`" for line in figures["commands"]) + ".",
        f"- Machine: {figures['machine']}",
        f"- Training data: {figures['data']['sequences']} built-in-world sequences x {figures['data']['frames']} frames at "
        f"{figures['data']['size'][0]}x{figures['data']['size'][1]} (seeds {TRAIN_SEED_BASE}..{TRAIN_SEED_BASE + figures['data']['sequences'] - 1}), "
        "with the world's ground-truth optical flow.",
        f"- Steps: {_schedule_text(figures.get('training', {}))}; "
        f"training time lite {figures['train_seconds'].get('lite', float('nan')):.0f} s, "
        f"baseline {figures['train_seconds'].get('baseline', float('nan')):.0f} s.",
        "- Losses: LSGAN + feature matching (x10) on a 2-scale PatchGAN over (labels, image), temporal GAN + feature",
        f"  matching on 3 frames + 2 flows at strides {_strides_text(figures.get('training', {}))}, flow L1 and flow-warp "
        "(x10), output warp (x10), L1 (x10);",
        "  no VGG loss (no VGG19 weights ship with the project). "
        f"Adam (0.5, 0.999), lr 2e-4, {_decay_text(figures.get('training', {}))}.",
        "- Baseline: the same generator and losses with its temporal path off (no previous frames, no flow, current",
        "  labels only), trained for the same number of clips on the same data: pix2pixHD-style, frame by frame.",
        *([f"  lite trains exactly so for its first {figures['training']['frame_steps']} clips (a warm start), then "
           "with its temporal path on."] if figures.get("training", {}).get("frame_steps") else []),
        "",
        f"## Figures (held-out sequences: {figures['eval']['sequences']} x {figures['eval']['frames']} frames, seeds "
        f"{EVAL_SEED_BASE}.., first 2 frames of each not scored)",
        "",
        "| model | PSNR dB | FID | KID | warping error (x1e-3) | tOF px |",
        "|---|---|---|---|---|---|",
        f"| lite (vid2vid) | {lite['psnr_db']:.2f} | {lite['fid']:.1f} | {lite['kid']:.4f} | {lite['warping_error'] * 1e3:.3f} | {lite['tof']:.3f} |",
        f"| frame-by-frame baseline | {base['psnr_db']:.2f} | {base['fid']:.1f} | {base['kid']:.4f} | {base['warping_error'] * 1e3:.3f} | {base['tof']:.3f} |",
        f"| reference frames (the world's RGB) | - | - | - | {lite['reference_warping_error'] * 1e3:.3f} | 0 |",
        "",
        (f"Against the issue's targets: warping error ratio lite / baseline {ratio:.3f} "
         f"({'met' if ratio <= 0.7 else 'NOT met'}: target <= 0.7); FID lite {lite['fid']:.1f} vs baseline "
         f"{base['fid']:.1f} ({'met' if lite['fid'] < base['fid'] else 'NOT met'}: target lite < baseline).")
        if ratio is not None else "",
        "FID over this few frames is biased upward and noisy (another held-out set moves it by several points):",
        "compare the two models only with each other, weigh KID with it, and read a gap of a few points as a tie.",
        "",
        "Reproduce: the commands above (CPU), or `make model`, which runs every stage in one process with the",
        f"same `--steps {figures['steps']}` (one model after the other). Threads and machine change the floating-point",
        "order, so expect figures close to these, not identical. Without `--steps`, `train-bundled` sizes the clips",
        "per model from a time budget (`--minutes`) after a short calibration. Figures: `figures.json`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


@click.command(name="train-bundled")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/model"),
              show_default=True, help="Where the trained model goes. The shipped one is renderer/weights/lite: "
              "give that to replace it.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/bundled"),
              show_default=True, help="Data, runs, logs and the baseline checkpoint.")
@click.option("--sequences", type=click.IntRange(min=1), default=16, show_default=True, help="Training sequences.")
@click.option("--frames", type=click.IntRange(min=8), default=32, show_default=True, help="Frames per sequence.")
@click.option("--size", type=WxH(), default="256x128", show_default=True, help="WIDTHxHEIGHT of data and training.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Clips per model (default: from --minutes).")
@click.option("--long-steps", type=click.IntRange(min=0), default=None,
              help="Clips of 16 frames per model after --steps (default: a fifth of --steps; 0: none).")
@click.option("--minutes", type=click.FloatRange(min=0.5), default=15.0, show_default=True,
              help="Time budget per model for the --steps clips (not the long clips) when --steps is not given.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-sequences", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--eval-frames", type=click.IntRange(min=4), default=24, show_default=True)
@click.option("--only", type=click.Choice(["all", "export", "lite", "baseline", "evaluate"]), default="all",
              show_default=True, help="Run one stage (the others must have run before).")
@click.option("--no-fid", is_flag=True, help="Skip FID/KID in the evaluation.")
def command(out: Path, work: Path, sequences: int, frames: int, size: str, steps: int | None, long_steps: int | None,
            minutes: float,
            device: str, seed: int, eval_sequences: int, eval_frames: int, only: str, no_fid: bool) -> None:
    """Export built-in-world data, train lite and the baseline, evaluate both, write the model."""
    width, height = size
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    state_path = work / "bundled_state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    loaded = json.loads(json.dumps(state))  # what the file held when this process started
    command_line = "carla-neural train-bundled " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "carla-neural train-bundled"
    if os.environ.get("OMP_NUM_THREADS"):
        command_line = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command_line}"
    # Stages may run as separate commands (lite and baseline at once); the README lists each.
    state.setdefault("commands", {})[only] = command_line

    def save_state() -> None:
        # Two stages may run at once (lite and baseline in two processes): write only what this
        # process changed since it read the file, so neither undoes the other's entries.
        on_disk = json.loads(state_path.read_text()) if state_path.exists() else {}
        for key, value in state.items():
            before = loaded.get(key)
            if isinstance(value, dict) and isinstance(on_disk.get(key), dict):
                before = before if isinstance(before, dict) else {}
                on_disk[key].update({k: v for k, v in value.items() if before.get(k) != v})
            elif value != before:
                on_disk[key] = value
        state_path.write_text(json.dumps(on_disk, indent=2))

    if only in ("all", "export"):
        from carla_neural.dataset_export import ExportConfig, export_dataset

        index = data / "dataset.json"
        wanted = {"sequences": sequences, "frames_per_sequence": frames, "size": [width, height]}
        existing = json.loads(index.read_text())["phases"].get("train", {}) if index.exists() else {}
        if all(existing.get(k) == v for k, v in wanted.items()):
            click.echo(f"training data already exported in {data}")
        else:
            from tqdm import tqdm
            with tqdm(total=sequences * frames, desc="export built-in world", unit="frame") as bar:
                export_dataset(ExportConfig(out=str(data), world="builtin", sequences=sequences, frames=frames,
                                            width=width, height=height, seed=TRAIN_SEED_BASE),
                               on_frame=lambda s, f: bar.update(1))
        state["data"] = {"sequences": sequences, "frames": frames, "size": [width, height]}
        save_state()

    model_json = work / "model_config.json"
    model_json.write_text(json.dumps({"generator": bundled_model_config()}, indent=2))

    def run(kind: str) -> None:
        from renderer.training.trainer import Trainer

        temporal = kind == "lite"
        clips = steps or state.get("steps")
        if clips is None:
            probe = train_config(data, work / kind, model_json, True, 100, device, seed, width, height)
            per_clip = calibrate(probe)
            clips = max(20, int(minutes * 60 / per_clip))
            click.echo(f"calibration: {per_clip:.2f} s per clip -> {clips} clips in {minutes:g} min")
        state["steps"] = clips
        state["long_steps"] = long = clips // 5 if long_steps is None else long_steps
        exported = state.get("data", {}).get("frames", frames)
        if long and exported < LONG_CLIP_LENGTH:
            raise click.UsageError(f"the long-clip stage needs sequences of >= {LONG_CLIP_LENGTH} frames, the data has "
                                   f"{exported}: export more --frames, or pass --long-steps 0")
        config = train_config(data, work / kind, model_json, temporal, clips, device, seed, width, height)
        started = time.monotonic()
        # A finished stage resumes at its end and trains nothing more.
        for stage_config in (config, long_clip_config(config, long)) if long else (config,):
            trainer = Trainer(stage_config)
            trainer.train()
            trainer.close()
        state.setdefault("train_seconds", {})[kind] = state.get("train_seconds", {}).get(kind, 0.0) + time.monotonic() - started
        state.setdefault("machine", {})[kind] = f"{platform.node()} ({trainer.device.type})"
        save_state()
        click.echo(f"{kind}: {clips} + {long} clips in {state['train_seconds'][kind]:.0f} s -> {work / kind / 'generator'}")

    if only in ("all", "lite"):
        run("lite")
    if only in ("all", "baseline"):
        run("baseline")
    if only in ("all", "evaluate"):
        from carla_neural.cli.evaluate import builtin_sequences, evaluate_checkpoint

        held_out = builtin_sequences(eval_sequences, eval_frames, width, height, EVAL_SEED_BASE)
        lite, real_stream = evaluate_checkpoint(work / "lite" / "generator", held_out, device=device, fid=not no_fid)
        base, _ = evaluate_checkpoint(work / "baseline" / "generator", held_out, device=device, fid=not no_fid,
                                      inception=real_stream.extractor if real_stream is not None else None,
                                      real_stream=real_stream)
        ratio = lite.warping_error / base.warping_error if base.warping_error > 0 else None
        # The schedule as train_config defines it (train_config.json holds the last stage's only).
        stage1 = train_config(data, work / "lite", model_json, True, state["steps"], device, seed, width, height)
        stage2 = long_clip_config(stage1, state.get("long_steps", 0))
        values = stage1.to_dict()
        training = {k: values[k] for k in ("steps", "batch_size", "clip_length", "max_clip_length", "clip_double_every",
                                           "steps_per_scale", "frame_steps", "decay_start", "temporal_strides",
                                           "crop_width", "crop_height", "lr", "gan_mode", "weights")}
        training.update(long_steps=stage2.steps - stage1.steps, long_clip_length=stage2.clip_length,
                        long_lr=stage2.lr)
        figures = {
            "commands": [state["commands"][stage] for stage in ("all", "export", "lite", "baseline", "evaluate")
                         if stage in state.get("commands", {})],
            "training": training,
            "machine": "; ".join(f"{k}: {v}" for k, v in state.get("machine", {}).items()),
            "data": state.get("data", {"sequences": sequences, "frames": frames, "size": [width, height]}),
            "steps": state.get("steps"),
            "train_seconds": state.get("train_seconds", {}),
            "eval": {"sequences": eval_sequences, "frames": eval_frames, "seed": EVAL_SEED_BASE},
            "lite": lite.as_dict(),
            "baseline": base.as_dict(),
            "warping_error_ratio": ratio,
            "lite_beats_baseline_fid": lite.fid < base.fid,
            "lite_warping_error_at_most_0_7x": ratio is not None and ratio <= 0.7,
        }
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(work / "lite" / "generator" / name, out / name)
        shipped = json.loads((out / "config.json").read_text())
        # The renderer works at the size the model was trained at and resizes to the caller's.
        shipped.setdefault("metadata", {})["working_size"] = [width, height]
        (out / "config.json").write_text(json.dumps(shipped, indent=2) + "\n")
        (out / "figures.json").write_text(json.dumps(figures, indent=2))
        write_readme(out, figures)
        click.echo(
            f"lite: PSNR {lite.psnr_db:.2f} dB, FID {lite.fid:.1f}, warping error {lite.warping_error * 1e3:.3f}e-3 | "
            f"baseline: PSNR {base.psnr_db:.2f} dB, FID {base.fid:.1f}, warping error {base.warping_error * 1e3:.3f}e-3 | "
            f"ratio {ratio if ratio is None else round(ratio, 3)} -> {out}")
