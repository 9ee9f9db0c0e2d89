"""`carla-neural demo`: built-in world -> render worker -> display and recorder, lock-step."""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

import click

from carla_neural.cli._live import cpu_split_option

log = logging.getLogger(__name__)

# What a previous run left in the folder; removed before a new demo run writes there.
_RUN_FILES = ("run.json", "frames.jsonl", "summary.json", "raw.mp4", "labels.mp4", "neural.mp4",
              "side_by_side.mp4", "worker.log")


def parse_size(text: str) -> tuple[int, int]:
    """'512x256' -> (512, 256); both sides positive multiples of 2."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not WIDTHxHEIGHT, e.g. 512x256")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise click.BadParameter(f"{width}x{height}: sides must be even and within 16..4096")
    return width, height


def _clear_previous_run(out: Path) -> None:
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    if (out / "frames").is_dir():
        shutil.rmtree(out / "frames")


def _checkpoint_facts(checkpoint: str) -> str:
    """Fail early, with what to do, when the checkpoint is missing."""
    if checkpoint == "bundled":
        from renderer.loading import bundled_checkpoint

        folder = bundled_checkpoint()
        if not ((folder / "config.json").exists() and (folder / "model.safetensors").exists()):
            raise click.ClickException(
                f"the bundled model is not built yet ({folder} has no config.json + "
                f"model.safetensors): run `make model`, or pass --checkpoint PATH"
            )
        return str(folder)
    if not Path(checkpoint).exists():
        raise click.ClickException(f"checkpoint {checkpoint} does not exist")
    return checkpoint


@click.command(name="demo")
@click.option("--frames", "frame_count", type=click.IntRange(min=1), default=300, show_default=True,
              help="Frames to render and record.")
@click.option("--size", default="512x256", show_default=True, help="Camera size WIDTHxHEIGHT.",
              callback=lambda _ctx, _param, value: parse_size(value))
@click.option("--checkpoint", default="bundled", show_default=True,
              help="Model: 'bundled' (the shipped lite model), our checkpoint folder, or an NVIDIA folder.")
@click.option("--headless", is_flag=True, help="No window even when there is a screen.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              show_default=True, help="Run folder to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the built-in world.")
@click.option("--engine", default="torch", show_default=True, help="Renderer engine of the worker.")
@click.option("--device", default="auto", show_default=True, help="Renderer device: auto, cpu, cuda.")
@click.option("--png/--no-png", default=False, show_default=True,
              help="Also write PNG frames (raw, neural, label ids, instance ids, flow).")
@cpu_split_option
def command(frame_count: int, size: tuple[int, int], checkpoint: str, headless: bool, out_dir: Path, seed: int,
            engine: str, device: str, png: bool, cpu_split: bool) -> None:
    """Built-in world -> render worker -> display and recorder, every frame rendered (lock-step).

    Needs no CARLA server: the built-in world drives a car through procedural streets and emits
    CARLA's camera images. Writes videos (raw, labels, neural, side by side), frames.jsonl,
    run.json and summary.json into --out.
    """
    from carla_neural.cpu_split import pinned, plan_split
    from carla_neural.display import has_screen

    width, height = size
    fps = 1.0 / _world_step_s()
    checkpoint_path = _checkpoint_facts(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous_run(out_dir)
    headless = headless or not has_screen()
    split = plan_split() if cpu_split else None
    with pinned(split.pipeline if split else None):
        _run(frame_count, width, height, checkpoint, checkpoint_path, headless, out_dir, seed, engine, device,
             png, fps, split)


def _run(frame_count: int, width: int, height: int, checkpoint: str, checkpoint_path: str, headless: bool,
         out_dir: Path, seed: int, engine: str, device: str, png: bool, fps: float, split: Any) -> None:
    from tqdm import tqdm

    from carla_neural.display import Display
    from carla_neural.pipeline import ClientBackend, Pipeline, PipelineConfig, Presented
    from carla_neural.recorder import PNG_KINDS, Recorder, RecorderConfig
    from carla_neural.cpu_split import worker_cpu_options
    from carla_neural.sources.world import BuiltinWorld, WorldConfig
    from carla_neural.worker_supervisor import WorkerStartError, WorkerSupervisor

    click.echo(f"demo: starting the render worker ({checkpoint}, {engine}, {device}"
               f"{'; ' + split.describe() if split else ''}) ...", err=True)
    supervisor = WorkerSupervisor(checkpoint_path, engine=engine, device=device, log_path=out_dir / "worker.log",
                                  **worker_cpu_options(split))
    try:
        supervisor.start()
    except (WorkerStartError, FileNotFoundError) as error:
        supervisor.stop()
        raise click.ClickException(f"the render worker did not start: {error}") from None

    run_info: dict[str, Any] = {
        "command": "demo",
        "source": "builtin",
        "seed": seed,
        "size": [width, height],
        "checkpoint": checkpoint_path,
        "engine": engine,
        "device": device,
        "mode": "lockstep",
        "cpu_split": split.describe() if split else None,
        "tag_scheme": "0.9.14",
        "worker": supervisor.ping() or {},
    }
    config = RecorderConfig(fps=fps, png=PNG_KINDS if png else ())
    started = time.perf_counter()
    client = supervisor.client()
    try:
        with BuiltinWorld(_world_config(WorldConfig, width, height, seed, flow=png)) as world, \
                Display((width, height), title="carla-neural demo", headless=headless) as display:
            recorder = Recorder(out_dir, config, run_info=run_info)
            pipeline = Pipeline(world, ClientBackend(client), display, recorder,
                                # On a screen, play no faster than real time; headless, as fast as it goes.
                                PipelineConfig(mode="lockstep", record_flow=png,
                                               max_fps=None if headless else fps))
            with tqdm(total=frame_count, unit="frame", desc="demo", dynamic_ncols=True) as progress:

                def on_frame(presented: Presented) -> None:
                    timings = presented.frame.timings_ms
                    progress.set_postfix(render=f"{timings.get('render', 0):.0f}ms", refresh=False)
                    progress.update(1)

                pipeline_summary: dict[str, Any] | None = None
                try:
                    pipeline_summary = pipeline.run(frame_count, on_frame=on_frame)
                finally:
                    # Also on Ctrl+C or an error: finish the videos and write the summary.
                    if pipeline_summary is None:
                        pipeline_summary = pipeline.summary(time.perf_counter() - started)
                    worker_stats = {"restarts": supervisor.restarts, **client.stats}
                    summary = recorder.close({"pipeline": pipeline_summary, "worker": worker_stats})
    finally:
        client.close()
        supervisor.stop()

    click.echo(_closing_line(summary, pipeline_summary, out_dir, width, height))


def _world_step_s() -> float:
    """The built-in world's fixed simulation step (CARLA's usual 0.05 s), so videos play in real time."""
    from carla_neural.sources.world import builtin

    return float(getattr(builtin, "FIXED_DELTA_S", 0.05))


def _world_config(world_config_class: Any, width: int, height: int, seed: int, flow: bool = False) -> Any:
    """A WorldConfig for the demo: only the sensors it uses (no depth; flow only for PNGs)."""
    fields = getattr(world_config_class, "model_fields", None) or getattr(
        world_config_class, "__dataclass_fields__", {})
    sensors = ("semantic", "instance", "rgb") + (("flow",) if flow else ())
    wanted = {"width": width, "height": height, "seed": seed, "sensors": sensors}
    return world_config_class(**{name: value for name, value in wanted.items() if name in fields})


def _closing_line(summary: dict[str, Any], pipeline_summary: dict[str, Any], out_dir: Path,
                  width: int, height: int) -> str:
    frames = summary.get("frames", 0)
    fps = pipeline_summary.get("fps") or 0.0
    render_ms = pipeline_summary.get("render_ms_mean")
    renderer_fps = f", renderer {1000.0 / render_ms:.1f} fps on its own render time" if render_ms else ""
    overhead_pct = pipeline_summary.get("pipeline_overhead_pct")
    overhead_text = f", pipeline overhead {overhead_pct:.1f}%" if overhead_pct is not None else ""
    videos = ", ".join(name for name in summary.get("files", []) if name.endswith(".mp4"))
    return (f"demo: {frames} frames at {width}x{height}, {fps:.1f} fps end to end{renderer_fps}"
            f"{overhead_text} -> {out_dir}/ ({videos}, frames.jsonl, run.json, summary.json)")
