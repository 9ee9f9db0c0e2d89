"""A small run folder with known motion, written by the real recorder: for tests and for trying
`carla-neural compare` without a simulator or a model.

The scene pans left by `pan_px` per frame (backward flow +pan_px) while a car drives right by
`car_px` per frame (backward flow -car_px), so occlusions and disocclusions happen at the car's
edges. The "neural" stream is the raw stream with a colour cast, a per-frame brightness flicker
and fresh noise per frame: it must score a higher warping error and tOF than raw.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from carla_neural.recorder import PNG_KINDS, FrameRecord, Recorder, RecorderConfig
from carla_neural.remap import colorize_label_ids

SKY, BUILDING, ROAD, CAR = 23, 11, 7, 26
_BASE_RGB = {SKY: (90, 140, 200), BUILDING: (110, 100, 95), ROAD: (70, 70, 75), CAR: (170, 30, 30)}


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 30, (height // 4 + 2, width // 4 + 2)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def render_synthetic_frame(t: int, width: int, height: int, pan_px: int = 2,
                           car_px: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frame t of the scene: ((H, W, 3) uint8 raw, (H, W) uint8 label_ids, (H, W) int32
    instance_ids, (H, W, 2) float32 backward flow in px)."""
    world_width = width + pan_px * 200
    background = _texture(height, world_width, seed=1)
    labels_world = np.full((height, world_width), ROAD, np.uint8)
    labels_world[: height // 3] = SKY
    labels_world[height // 3: height // 2 + 4] = BUILDING
    start = pan_px * t
    label_ids = labels_world[:, start:start + width].copy()
    shade = background[:, start:start + width]
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0] = pan_px
    car_width, car_height = width // 4, height // 5
    car_x = 4 + car_px * t
    car_y = height - car_height - 4
    car_shade = _texture(car_height, car_width, seed=2)
    columns = np.arange(width)
    on_car = (columns >= car_x) & (columns < car_x + car_width)
    rows = slice(car_y, car_y + car_height)
    label_ids[rows, on_car] = CAR
    shade = shade.copy()
    shade[rows, on_car] = car_shade[:, columns[on_car] - car_x]
    flow[rows, on_car, 0] = -car_px
    rgb = np.zeros((height, width, 3), np.float32)
    for label, base in _BASE_RGB.items():
        rgb[label_ids == label] = base
    rgb += shade[..., None]
    instance_ids = label_ids.astype(np.int32)
    instance_ids[label_ids == CAR] = CAR * 1000
    return np.clip(rgb, 0, 255).astype(np.uint8), label_ids, instance_ids, flow


def write_synthetic_run(out_dir: str | Path, frames: int = 6, width: int = 128, height: int = 64,
                        png: tuple[str, ...] = PNG_KINDS, videos: bool = True) -> Path:
    """Write a run folder of `frames` frames at width x height with the recorder; returns its path."""
    rng = np.random.default_rng(0)
    config = RecorderConfig(fps=10.0, png=png, videos=("raw", "labels", "neural") if videos else (),
                            side_by_side=videos)
    run_info = {"source": "synthetic", "scenario": "synthetic pan", "size": [width, height]}
    recorder = Recorder(out_dir, config, run_info, threaded=False)
    try:
        for t in range(frames):
            raw, label_ids, instance_ids, flow = render_synthetic_frame(t, width, height)
            flicker = 12.0 * np.sin(1.7 * t)
            neural = raw.astype(np.float32) * (0.9, 1.0, 1.1) + flicker + rng.normal(0, 6, raw.shape)
            recorder.write(FrameRecord(
                frame_id=100 + t, sim_time=0.1 * t, timings_ms={"render": 1.0},
                raw=raw, labels=colorize_label_ids(label_ids), neural=np.clip(neural, 0, 255).astype(np.uint8),
                label_ids=label_ids, instance_ids=instance_ids, flow_px=flow))
    finally:
        recorder.close()
    return Path(out_dir)
