"""`carla-neural demo`: built-in world -> render worker -> display and recorder, lock-step."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import click

from carla_neural.cli._live import adapt_options, cpu_split_option
from carla_neural.cli.options import WxH, threads_option
from carla_neural.cli.style_options import resolve_style, style_options

log = logging.getLogger(__name__)

# What a previous run left in the folder; removed before a new demo run writes there.
_RUN_FILES = ("run.json", "frames.jsonl", "summary.json", "raw.mp4", "labels.mp4", "neural.mp4",
              "side_by_side.mp4", "worker.log")


def _clear_previous_run(out: Path) -> None:
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    if (out / "frames").is_dir():
        shutil.rmtree(out / "frames")


def _checkpoint_facts(checkpoint: str) -> str:
    """The checkpoint folder; fails early, with what to do, when it is missing."""
    from renderer.checkpoint_ref import CheckpointMissing, resolve_checkpoint

    try:
        return str(resolve_checkpoint(checkpoint))
    except CheckpointMissing as error:
        raise click.ClickException(str(error)) from None


@click.command(name="demo")
@click.option("--frames", "frame_count", type=click.IntRange(min=1), default=300, show_default=True,
              help="Frames to render and record.")
@click.option("--size", type=WxH(min_side=16, max_side=4096, even=True), default="512x256", show_default=True,
              help="Camera size WIDTHxHEIGHT.")
@click.option("--checkpoint", default=None,
              help="Model: 'bundled-adapted' (default: the street model fine-tuned on the built-in world's maps, "
                   "with the label transform on), 'bundled' (the street model), our folder, or an NVIDIA folder.")
@click.option("--headless", is_flag=True, help="No window even when there is a screen.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              show_default=True, help="Run folder to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the built-in world.")
@click.option("--mount", default=None,
              help="Camera mount: hood, chase, roof, bumper or cityscapes (the default: fitted to the real "
                   "video's viewpoint, where the adapted model's maps were recorded; docs/domain_adapt.md).")
@click.option("--engine", default="auto", show_default=True,
              help="Renderer engine of the worker: auto (openvino on a CPU where it is installed, else torch), "
                   "torch, compile, onnx, openvino or tensorrt.")
@click.option("--device", default="auto", show_default=True, help="Renderer device: auto, cpu, cuda.")
@click.option("--png/--no-png", default=False, show_default=True,
              help="Also write PNG frames (raw, neural, label ids, instance ids, flow).")
@style_options
@cpu_split_option
@threads_option
@adapt_options
def command(frame_count: int, size: tuple[int, int], checkpoint: str | None, headless: bool, out_dir: Path, seed: int,
            mount: str | None,
            engine: str, device: str, png: bool, style_index: int | None, style_photo: Path | None,
            style_labels: Path | None, cpu_split: bool, threads: int | None, adapt_labels: bool | None,
            transform_config: Path | None) -> None:
    """Built-in world -> render worker -> display and recorder, every frame rendered (lock-step).

    Needs no CARLA server: the built-in world drives a car through procedural streets and emits
    CARLA's camera images. Writes videos (raw, labels, neural, side by side), frames.jsonl,
    run.json, summary.json and worker.log into --out.
    """
    from tqdm import tqdm

    from carla_neural.cpu_split import plan_split
    from carla_neural.display import has_screen
    from carla_neural.label_transform import TransformConfigError
    from carla_neural.runs import (
        DEMO_MOUNT,
        BackendSpec,
        DisplaySpec,
        RecordSpec,
        RunSpec,
        adapt_spec,
        default_checkpoint,
        demo_world,
        open_run,
    )
    from carla_neural.sources.world.builtin import FIXED_DELTA_S
    from carla_neural.worker_supervisor import WorkerStartError

    width, height = size
    mount = mount or DEMO_MOUNT
    try:
        source = demo_world(width, height, seed, flow=png, mount=mount)
    except ValueError as error:
        raise click.ClickException(f"--mount {mount}: {error}") from None
    checkpoint = checkpoint or default_checkpoint("builtin")
    checkpoint_path = _checkpoint_facts(checkpoint)
    style = resolve_style(checkpoint_path, style_index, style_photo, style_labels)
    try:
        adapt = adapt_spec(adapt_labels, transform_config, checkpoint=checkpoint)
    except TransformConfigError as error:
        raise click.ClickException(str(error)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous_run(out_dir)
    headless = headless or not has_screen()
    spec = RunSpec(
        command="demo", source=source,
        backend=BackendSpec(checkpoint=checkpoint_path, engine=engine, device=device, cpu_split=cpu_split,
                            threads=threads, worker_log=out_dir / "worker.log", style=style),
        size=size, mode="lockstep", frames=frame_count,
        display=DisplaySpec(title="carla-neural demo", headless=headless),
        record=RecordSpec(out_dir, png=png), adapt=adapt,
        # On a screen, play no faster than real time; headless, as fast as it goes.
        max_fps=None if headless else 1.0 / FIXED_DELTA_S,
        # engine and device come from the worker (what "auto" became), with the other renderer facts.
        run_info={"source": "builtin", "seed": seed, "mount": mount, "checkpoint": checkpoint_path,
                  **({"style": style.label} if style is not None else {})},
    )
    split = plan_split() if cpu_split else None  # the one open_run makes: same CPUs, same answer
    click.echo(f"demo: starting the render worker ({checkpoint}, {engine}, {device}"
               f"{'; ' + split.describe() if split else ''}) ...", err=True)
    try:
        with open_run(spec) as run, \
                tqdm(total=frame_count, unit="frame", desc="demo", dynamic_ncols=True) as progress:

            def on_frame(presented: Any) -> None:
                timings = presented.frame.timings_ms
                progress.set_postfix(render=f"{timings.get('render', 0):.0f}ms", refresh=False)
                progress.update(1)

            run.run(on_frame)
    except (WorkerStartError, FileNotFoundError) as error:
        raise click.ClickException(f"the render worker did not start: {error}") from None
    assert run.summary is not None
    click.echo(_closing_line(run.summary, run.summary["pipeline"], out_dir, width, height))


def _closing_line(summary: dict[str, Any], pipeline_summary: dict[str, Any], out_dir: Path,
                  width: int, height: int) -> str:
    frames = summary.get("frames", 0)
    fps = pipeline_summary.get("fps") or 0.0
    render_ms = pipeline_summary.get("render_ms_mean")
    renderer_fps = f", renderer {1000.0 / render_ms:.1f} fps on its own render time" if render_ms else ""
    overhead_pct = pipeline_summary.get("pipeline_overhead_pct")
    overhead_text = f", pipeline overhead {overhead_pct:.1f}%" if overhead_pct is not None else ""
    restarts = summary.get("worker", {}).get("restarts", 0)
    restart_text = f", worker restarted {restarts}x" if restarts else ""
    videos = ", ".join(name for name in summary.get("files", []) if name.endswith(".mp4"))
    return (f"demo: {frames} frames at {width}x{height}, {fps:.1f} fps end to end{renderer_fps}"
            f"{overhead_text}{restart_text} -> {out_dir}/ ({videos}, frames.jsonl, run.json, summary.json, "
            "worker.log)")
