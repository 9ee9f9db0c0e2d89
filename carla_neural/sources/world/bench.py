"""Benchmark the built-in world: ms per frame of all sensors, per stage, at a few sizes.

Run on one core for the figure the issue asks for:
    OMP_NUM_THREADS=1 carla-neural bench-world
(or `python -m carla_neural.sources.world.bench`, same options: --layouts, --sizes, --frames,
--warmup, --weather). The world renders with numpy and OpenCV, not torch: OMP_NUM_THREADS, not
--threads, sets its threads.
CPU time (process_time) is reported next to wall time: on a shared machine wall time includes
waiting for a core, CPU time does not.
"""

from __future__ import annotations

import statistics
import time

import click

from carla_neural.cli.options import WxHList
from carla_neural.sources.world.builtin import BuiltinWorld, WorldConfig


def bench_size(layout: str, width: int, height: int, frames: int, warmup: int, weather: str) -> dict[str, float]:
    """Tick a world `frames` times after `warmup` ticks; return mean wall/CPU ms per frame and per stage."""
    world = BuiltinWorld(WorldConfig(layout=layout, width=width, height=height, weather=weather))
    for _ in range(warmup):
        world.tick()
    wall, cpu = [], []
    stages: dict[str, list[float]] = {}
    for _ in range(frames):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        world.tick()
        wall.append(1000.0 * (time.perf_counter() - wall_start))
        cpu.append(1000.0 * (time.process_time() - cpu_start))
        for stage, ms in world.last_timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    result = {"wall_ms": statistics.mean(wall), "wall_median_ms": statistics.median(wall),
              "cpu_ms": statistics.mean(cpu)}
    result.update({f"{stage}_ms": statistics.mean(values) for stage, values in stages.items()})
    return result


@click.command(name="bench-world")
@click.option("--layouts", default="urban,highway", show_default=True, help="Comma-separated world layouts.")
@click.option("--sizes", type=WxHList(), default="512x256,1024x512", show_default=True,
              help="Comma-separated WIDTHxHEIGHT.")
@click.option("--frames", type=click.IntRange(min=1), default=100, show_default=True, help="Timed ticks per case.")
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True, help="Untimed ticks first.")
@click.option("--weather", default="ClearNoon", show_default=True, help="Weather preset.")
def command(layouts: str, sizes: list[tuple[int, int]], frames: int, warmup: int, weather: str) -> None:
    """Print a table of ms/frame of the built-in world for the requested layouts and sizes."""
    header = f"{'layout':8} {'size':>9} {'wall ms':>8} {'median':>7} {'cpu ms':>7} {'fps(cpu)':>8}  stages (wall ms)"
    click.echo(header)
    for layout in layouts.split(","):
        for width, height in sizes:
            result = bench_size(layout, width, height, frames, warmup, weather)
            stages = " ".join(f"{key[:-3]}={value:.1f}" for key, value in result.items()
                              if key not in ("wall_ms", "wall_median_ms", "cpu_ms"))
            size = f"{width}x{height}"
            click.echo(f"{layout:8} {size:>9} {result['wall_ms']:8.1f} {result['wall_median_ms']:7.1f} "
                       f"{result['cpu_ms']:7.1f} {1000.0 / result['cpu_ms']:8.1f}  {stages}")


if __name__ == "__main__":
    command()
