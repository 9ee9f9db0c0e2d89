"""Cost per frame of each pipeline stage, and end-to-end fps against the renderer's own fps.

    carla-neural bench-stages [--json PATH] [--sizes 512x256,1024x512] [--checkpoint CKPT]
                              [--no-cpu-split] [--threads N]

(or `python -m carla_neural.stage_bench` with the same options).

Stages (milliseconds per frame, median): world (built-in world tick with the sensors the demo
uses: semantic, instance, RGB; `world_all_sensors_ms` adds depth and flow), remap (label
ids, instance ids, palette, RGB), adapt (the calibrated label transform,
carla_neural.label_transform, on the same label ids: what `--adapt-labels` adds between remap and
the renderer; not in the end-to-end run, which runs as the demo does by default), transport (ZeroMQ round trip to a worker process minus the
worker's render time, one frame at a time), render (in-process renderer step with all CPUs,
or --threads), display (headless pygame draw + poll), record (all four H.264 videos, synchronous).

End to end: the lock-step pipeline as `carla-neural demo` runs it: a worker process, headless
display and recorder, 2 frames in flight, and (unless --no-cpu-split) the worker on its own
CPUs with one renderer thread each and this process on the others (carla_neural.cpu_split).
`worker_alone_fps` is the same worker fed the same way with nothing around it (world frames
ticked and remapped beforehand; no display, no recorder), measured before and after the
end-to-end run. Three ways to read the end-to-end rate:

- `overhead_pct` = (mean frame period - mean worker render time) / mean frame period, in the
  same run: the share of the frame time the pipeline adds around the renderer;
- `vs_worker_alone_pct` = 1 - e2e fps / worker_alone_fps: what running world, remap, display
  and recorder beside the renderer costs, the renderer slowed by their load included;
- `vs_alone_pct` = 1 - e2e fps / renderer_alone_fps, the renderer in-process with all CPUs
  (which, on a machine without a GPU, the pipeline must share with it).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from carla_neural.cli.options import WxHList, threads_option
from renderer.cpus import torch_threads

log = logging.getLogger(__name__)


def _median_ms(operation: Callable[[int], Any], count: int, warmup: int = 1) -> float:
    for index in range(warmup):
        operation(index)
    samples = []
    for index in range(warmup, warmup + count):
        start = time.perf_counter()
        operation(index)
        samples.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(samples), 3)


def _render_median_ms(backend: Any, world_frames: list[Any], remapper: Any, count: int) -> float:
    """Median in-process render step over `count` frames after 2 warm-up frames."""
    samples = []
    for index in range(count + 2):
        step = world_frames[index % len(world_frames)]
        rendered = backend.render(remapper.label_ids(step.semantic_bgra),
                                  remapper.instance_ids(step.instance_bgra), index)
        if index >= 2:  # the first frames come from the single-image generator
            samples.append(rendered.round_trip_ms)
    return round(statistics.median(samples), 3)


def _worker_alone_fps(client: Any, labelled: list[tuple[Any, Any]], count: int) -> float:
    """Frames per second of the worker fed as the pipeline feeds it (2 in flight) but with no
    world, display or recorder around it: `count` frames after 2 warm-up frames."""
    client.reset()
    sent = received = 0
    started = 0.0
    while received < count + 2:
        while sent < count + 2 and client.in_flight < 2:
            client.send(sent, *labelled[sent % len(labelled)])
            sent += 1
        client.receive()
        received += 1
        if received == 2:
            started = time.perf_counter()
    return round(count / (time.perf_counter() - started), 3)


def bench_size(width: int, height: int, checkpoint: str, device: str, frames: int, render_frames: int,
               e2e_frames: int, cpu_split: bool = True, threads: int | None = None) -> dict[str, Any]:
    """All stage figures at one size; `threads`: the in-process render's and (without the CPU
    split) the worker's torch threads, None: torch's own in-process, the worker's default."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from carla_neural.backends import InProcessBackend
    from carla_neural.display import Display
    from carla_neural.label_transform import LabelTransform, load_transform_config
    from carla_neural.recorder import FrameRecord, Recorder, RecorderConfig
    from carla_neural.remap import Remapper, colorize_label_ids
    from carla_neural.runs import BackendSpec, DisplaySpec, RecordSpec, RunSpec, demo_world, open_run
    from carla_neural.sources.encoding import bgra_to_rgb
    from carla_neural.sources.world import BuiltinWorld, WorldConfig
    from renderer.loading import load_renderer

    result: dict[str, Any] = {"size": f"{width}x{height}"}
    demo_config = demo_world(width, height, 0).world
    with BuiltinWorld(demo_config) as world:
        world_frames = []
        result["world_ms"] = _median_ms(lambda _: world_frames.append(world.tick()), frames)
    with BuiltinWorld(WorldConfig(width=width, height=height, seed=0)) as world:
        result["world_all_sensors_ms"] = _median_ms(lambda _: world.tick(), max(3, frames // 2))
    remapper = Remapper("0.9.14", unknown="unlabeled")

    def remap(index: int) -> None:
        frame = world_frames[index % len(world_frames)]
        label_ids = remapper.label_ids(frame.semantic_bgra)
        remapper.instance_ids(frame.instance_bgra)
        colorize_label_ids(label_ids)
        bgra_to_rgb(frame.rgb_bgra)

    result["remap_ms"] = _median_ms(remap, frames, warmup=2)
    transform = LabelTransform(load_transform_config())
    frame_ids = [remapper.label_ids(frame.semantic_bgra) for frame in world_frames]
    result["adapt_ms"] = _median_ms(lambda index: transform(frame_ids[index % len(frame_ids)]), frames, warmup=2)
    frame = world_frames[-1]
    label_ids = remapper.label_ids(frame.semantic_bgra)
    instance_ids = remapper.instance_ids(frame.instance_bgra)
    raw = bgra_to_rgb(frame.rgb_bgra)
    labels = colorize_label_ids(label_ids)

    with Display((width, height), headless=True) as display:
        images = {"raw": raw, "labels": labels, "neural": raw}

        def show(_: int) -> None:
            display.show(images)
            display.poll()

        result["display_ms"] = _median_ms(show, frames, warmup=2)

    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(folder, RecorderConfig(), threaded=False)
        record = FrameRecord(0, 0.0, raw=raw, labels=labels, neural=raw)
        result["record_ms"] = _median_ms(lambda _: recorder.write(record), frames, warmup=2)
        recorder.close()

    with torch_threads(threads):
        renderer = load_renderer(checkpoint, device=device)
        backend = InProcessBackend(renderer)
        result["render_ms"] = _render_median_ms(backend, world_frames, remapper, render_frames)
        if renderer.style_bank is not None:
            # Side by side with render_ms, same process: what rendering in a style adds per frame.
            from renderer.protocol import StyleChoice

            renderer.apply_style(StyleChoice(index=0))
            result["render_style_0_ms"] = _render_median_ms(backend, world_frames, remapper, render_frames)
            renderer.apply_style(None)
    result["renderer_alone_fps"] = round(1000.0 / result["render_ms"], 3)
    del renderer, backend
    labelled = [(remapper.label_ids(step.semantic_bgra), remapper.instance_ids(step.instance_bgra))
                for step in world_frames]

    with tempfile.TemporaryDirectory() as folder:
        # The end-to-end run as `carla-neural demo` assembles it (headless, 4 videos, no PNGs).
        spec = RunSpec(command="stage_bench", source=demo_world(width, height, 1),
                       backend=BackendSpec(checkpoint=checkpoint, device=device, cpu_split=cpu_split,
                                           threads=threads, worker_log=Path(folder) / "worker.log"),
                       size=(width, height), mode="lockstep", display=DisplaySpec(headless=True),
                       record=RecordSpec(Path(folder) / "run", png=False))
        with open_run(spec) as run:
            result["cpu_split"] = run.split.describe() if run.split else None
            client = run.client
            transport = []
            for index in range(render_frames + 2):
                start = time.perf_counter()
                rendered = client.render_result(index, label_ids, instance_ids)
                round_trip_ms = (time.perf_counter() - start) * 1e3
                if index >= 2:
                    transport.append(round_trip_ms - rendered.render_ms)
            result["transport_ms"] = round(statistics.median(transport), 3)
            # The same worker with nothing around it, before and after the end-to-end run (the
            # mean of the two evens out a machine that gets busier or quieter meanwhile).
            worker_alone = [_worker_alone_fps(client, labelled, e2e_frames)]
            client.reset()
            started = time.perf_counter()
            # Two warm-up frames (single-image generator), then the measured frames.
            run.run(frames=2)
            warm = time.perf_counter()
            run.run(frames=e2e_frames)
            elapsed = time.perf_counter() - warm
            e2e_summary = run.pipeline.summary()
            log.info("end to end: %.1f s including warm-up", time.perf_counter() - started)
            worker_alone.append(_worker_alone_fps(client, labelled, e2e_frames))
    result["e2e_fps"] = round(e2e_frames / elapsed, 3)
    # Same run, same load: the main loop's mean period against the worker's mean render time.
    result["e2e_frame_ms"] = e2e_summary.get("frame_ms_mean")
    result["e2e_worker_render_ms"] = e2e_summary.get("render_ms_mean")
    if result["e2e_worker_render_ms"]:
        result["renderer_fps"] = round(1000.0 / result["e2e_worker_render_ms"], 3)
    result["overhead_pct"] = e2e_summary.get("pipeline_overhead_pct")
    result["worker_alone_fps"] = round(statistics.mean(worker_alone), 3)
    result["worker_alone_fps_runs"] = worker_alone
    result["vs_worker_alone_pct"] = round(100.0 * (1.0 - result["e2e_fps"] / result["worker_alone_fps"]), 2)
    result["vs_alone_pct"] = round(100.0 * (1.0 - result["e2e_fps"] / result["renderer_alone_fps"]), 2)
    result["e2e_stages_ms"] = {stage: figures["median"] for stage, figures in e2e_summary["stages_ms"].items()}
    result["around_renderer_serial_ms"] = round(
        sum(result[key] for key in ("world_ms", "remap_ms", "transport_ms", "display_ms", "record_ms")), 3
    )
    return result


@click.command(name="bench-stages")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures to this JSON file.")
@click.option("--sizes", type=WxHList(), default="512x256,1024x512", show_default=True,
              help="Comma-separated WIDTHxHEIGHT.")
@click.option("--checkpoint", default="bundled", show_default=True, help="Renderer checkpoint.")
@click.option("--device", default="auto", show_default=True, help="Renderer device: auto, cpu, cuda.")
@click.option("--frames", type=click.IntRange(min=1), default=30, show_default=True, help="Frames per cheap stage.")
@click.option("--render-frames", type=click.IntRange(min=1), default=20, show_default=True,
              help="Frames for render and transport.")
@click.option("--e2e-frames", type=click.IntRange(min=1), default=150, show_default=True,
              help="Frames of the end-to-end run.")
@click.option("--cpu-split/--no-cpu-split", default=True, show_default=True,
              help="End to end with the worker on its own CPUs (--no-cpu-split: without).")
@threads_option
def command(json_path: Path | None, sizes: list[tuple[int, int]], checkpoint: str, device: str, frames: int,
            render_frames: int, e2e_frames: int, cpu_split: bool, threads: int | None) -> None:
    """Cost per frame of each pipeline stage, and end-to-end fps against the renderer's own fps:
    a table (and JSON with --json)."""
    logging.basicConfig(level=logging.WARNING)
    import torch

    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available(), "python": sys.version.split()[0]},
        "checkpoint": checkpoint,
        "sizes": [],
    }
    header = ("size", "world", "remap", "adapt", "transport", "render", "render in style 0", "display", "record",
              "worker alone fps", "renderer fps in run", "e2e fps", "overhead %", "vs worker alone %", "vs renderer alone %")
    click.echo(" | ".join(header))
    for width, height in sizes:
        figures = bench_size(width, height, checkpoint, device, frames, render_frames, e2e_frames, cpu_split,
                             threads)
        results["sizes"].append(figures)
        click.echo(" | ".join(str(figures.get(key, "-")) for key in (
            "size", "world_ms", "remap_ms", "adapt_ms", "transport_ms", "render_ms", "render_style_0_ms",
            "display_ms", "record_ms", "worker_alone_fps", "renderer_fps", "e2e_fps", "overhead_pct",
            "vs_worker_alone_pct", "vs_alone_pct")))
    if any(figures.get("cpu_split") for figures in results["sizes"]):
        click.echo(f"end to end with {results['sizes'][0]['cpu_split']}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


if __name__ == "__main__":
    command()
