"""Benchmark every metric's cost per frame: `python -m renderer.metrics.bench --size 512x256`
(options --frames, --no-inception, --device, --threads: InceptionV3's torch threads)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import click
import numpy as np

from renderer.cpus import torch_threads

from renderer.metrics.class_color import ClassColorStats
from renderer.metrics.temporal import TemporalFlowDifference, WarpingErrorStream, label_consistency_mask
from renderer.options import threads_option
from renderer.sizes import WxH


def _moving_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    # A smooth random texture panning 2 px per frame: realistic work for flow estimation.
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height, width + 2 * count, 3), dtype=np.uint8)
    texture = np.ascontiguousarray(np.repeat(np.repeat(texture[::4, ::4], 4, 0), 4, 1)[:height])
    return [np.ascontiguousarray(texture[:, 2 * i:2 * i + width]) for i in range(count)]


def _time_per_frame(step: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        step(index)
    return (time.perf_counter() - start) * 1000.0 / count


def run_benchmark(width: int, height: int, count: int, inception: bool, device: str) -> dict[str, float]:
    """Milliseconds per frame for each metric at the given size; {metric name: ms}."""
    frames = _moving_frames(width, height, count)
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0] = 2.0
    labels = (np.arange(width, dtype=np.uint8)[None, :] // 16).repeat(height, 0)
    results: dict[str, float] = {}

    stream = WarpingErrorStream()
    results["warping_error"] = _time_per_frame(lambda i: stream.update(frames[i], flow), count)
    results["label_consistency_mask"] = _time_per_frame(
        lambda i: label_consistency_mask(labels, labels, flow), count)
    for preset in ("ultrafast", "fast", "medium"):
        tof = TemporalFlowDifference(preset)
        # tOF runs DIS twice per frame (synthesized and reference video).
        results[f"tof_{preset}"] = _time_per_frame(lambda i: tof.update(frames[i], frames[-1 - i]), count)
    colors = ClassColorStats()
    results["class_color"] = _time_per_frame(lambda i: colors.update(frames[i], labels), count)
    if inception:
        from renderer.metrics.inception import InceptionFeatures

        extractor = InceptionFeatures(device=device, batch_size=8)
        extractor(np.stack(frames[:2]))  # warm-up
        batch = np.stack(frames[:8])
        results["inception_features"] = _time_per_frame(lambda i: extractor(batch), 2) / len(batch)
    return results


@click.command()
@click.option("--size", type=WxH(), default="512x256", show_default=True, help="WIDTHxHEIGHT of the frames.")
@click.option("--frames", type=click.IntRange(min=1), default=20, show_default=True, help="Frames per metric.")
@click.option("--no-inception", is_flag=True, help="Skip InceptionV3 (slow on CPU).")
@click.option("--device", default="cpu", show_default=True, help="Device of InceptionV3.")
@threads_option
def command(size: tuple[int, int], frames: int, no_inception: bool, device: str, threads: int | None) -> None:
    """Print a JSON object of ms/frame per metric."""
    width, height = size
    with torch_threads(threads):
        results = run_benchmark(width, height, frames, not no_inception, device)
    click.echo(json.dumps({"size": [width, height], "ms_per_frame": {k: round(v, 3) for k, v in results.items()}},
                          indent=2))


if __name__ == "__main__":
    command()
