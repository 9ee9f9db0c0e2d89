"""The label transform's cost per frame (carla_neural.label_transform) on built-in-world frames.

`python -m domain_adapt.transform --bench [--threads N] [--config FILE]`: milliseconds per frame
at 512x256 and 1024x512 (median, best, worst).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from carla_neural.label_transform import (
    ANALYSIS_HEIGHT,
    ANALYSIS_WIDTH,
    LabelTransform,
    LabelTransformConfig,
    load_transform_config,
)


def benchmark(width: int = ANALYSIS_WIDTH, height: int = ANALYSIS_HEIGHT, frames: int = 30,
              config: LabelTransformConfig | None = None) -> dict[str, float]:
    """Milliseconds per frame (median, best, worst) of the transform on built-in-world frames."""
    from carla_neural.remap import Remapper
    from carla_neural.sources.world import BuiltinWorld, WorldConfig

    remapper = Remapper("0.9.14")
    with BuiltinWorld(WorldConfig(width=width, height=height, seed=0, sensors=("semantic",))) as world:
        maps = [remapper.label_ids(world.tick().semantic_bgra) for _ in range(frames)]
    transform = LabelTransform(config or load_transform_config())
    transform(maps[0])  # the first call sizes the filters
    times = []
    for label_ids in maps * 3:
        transform(label_ids)
        times.append(transform.last_ms)
    return {"median_ms": float(np.median(times)), "best_ms": float(np.min(times)), "worst_ms": float(np.max(times))}


def main() -> None:
    """`python -m domain_adapt.transform --bench [--threads N]`: the per-frame cost."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--bench", action="store_true", help="time the calibrated transform per frame")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1)")
    parser.add_argument("--config", type=Path, default=None, help="transform config JSON (default: calibrated)")
    args = parser.parse_args()
    if not args.bench:
        parser.print_help()
        return
    cv2.setNumThreads(args.threads)
    config = load_transform_config(args.config)
    for size in ((512, 256), (1024, 512)):
        figures = benchmark(*size, config=config)
        print(f"{size[0]}x{size[1]}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
