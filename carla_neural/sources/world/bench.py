"""Benchmark the built-in world: ms per frame of all sensors, per stage, at a few sizes.

Run on one core for the figure the issue asks for:
    OMP_NUM_THREADS=1 python -m carla_neural.sources.world.bench
CPU time (process_time) is reported next to wall time: on a shared machine wall time includes
waiting for a core, CPU time does not.
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def main(argv: list[str] | None = None) -> None:
    """Print a table of ms/frame for the requested layouts and sizes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="urban,highway")
    parser.add_argument("--sizes", default="512x256,1024x512")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--weather", default="ClearNoon")
    args = parser.parse_args(argv)
    header = f"{'layout':8} {'size':>9} {'wall ms':>8} {'median':>7} {'cpu ms':>7} {'fps(cpu)':>8}  stages (wall ms)"
    print(header)
    for layout in args.layouts.split(","):
        for size in args.sizes.split(","):
            width, height = (int(part) for part in size.lower().split("x"))
            result = bench_size(layout, width, height, args.frames, args.warmup, args.weather)
            stages = " ".join(f"{key[:-3]}={value:.1f}" for key, value in result.items()
                              if key not in ("wall_ms", "wall_median_ms", "cpu_ms"))
            print(f"{layout:8} {size:>9} {result['wall_ms']:8.1f} {result['wall_median_ms']:7.1f} "
                  f"{result['cpu_ms']:7.1f} {1000.0 / result['cpu_ms']:8.1f}  {stages}")


if __name__ == "__main__":
    main()
