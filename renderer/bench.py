"""Benchmark of the sequential renderer: engines × sizes × configurations.

Each case renders a synthetic street sequence (the classes, layout and motion of a driving scene)
through ``SequentialRenderer.step`` — label ids in, RGB out, exactly what a user calls — with
random weights of the named preset. The start frames and ``warmup`` engine frames (which include
the engine's build: export, compile) are excluded from the timing. Reported per case: median and
mean ms/frame, frames/s from the median, peak memory, multiply-adds per frame (executed by our
fast paths, and of the dense architecture), the engine's build time and, from one more frame, how
far the engine's step is from the PyTorch fp32 generator's step on the same history.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from renderer.engines import EngineUnavailable, build_engine, engine_status
from renderer.macs import count_macs
from renderer.model import build_generator, preset
from renderer.model.inputs import build_pyramid, encode_label_frame
from renderer.model.stem import frame_codes
from renderer.sequential import SequentialRenderer, TorchEngine

log = logging.getLogger(__name__)

# Cityscapes labelIds used by the synthetic street.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN = 7, 8, 11, 12, 13, 17, 19, 20
VEGETATION, TERRAIN, SKY, PERSON, CAR, TRUCK, STATIC = 21, 22, 23, 24, 26, 27, 4


@dataclass
class BenchResult:
    """One case's figures (times in ms, memory in MiB, multiply-adds in GMAC per frame)."""

    config: str
    engine: str
    width: int
    height: int
    status: str  # "ok", "skipped" or "error"
    reason: str = ""
    frames: int = 0
    ms_median: float | None = None
    ms_mean: float | None = None
    ms_min: float | None = None
    fps: float | None = None
    cpu_ms_median: float | None = None  # process CPU time per frame (all threads): robust to contention
    peak_mib: float | None = None
    memory_kind: str = ""
    gmac_executed: float | None = None
    gmac_dense: float | None = None
    build_s: float | None = None
    diff_255: float | None = None  # max |engine - PyTorch fp32| of one step, same history, of 255
    threads: int = 0
    device: str = "cpu"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def synthetic_street(
    width: int, height: int, frames: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A driving-like sequence: (label_ids (H, W) uint8, instance_ids (H, W) int32) per frame.

    Sky, buildings, vegetation, sidewalks and road in perspective, poles, signs, lights, people and
    cars (one instance each) that move between frames; ~16 classes, as in a Cityscapes frame.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    horizon = height * 0.42
    sequence = []
    building_edges = np.sort(rng.integers(0, width, 12))
    building_tops = rng.uniform(0.05, 0.3, 13) * height
    for index in range(frames):
        shift = index * max(1, width // 128)
        labels = np.full((height, width), SKY, np.uint8)
        # Buildings and vegetation above the horizon, scrolling sideways with the camera.
        segment = np.searchsorted(building_edges, (cols + shift) % width)
        tops = building_tops[segment]
        above = (rows >= tops) & (rows < horizon)
        labels[above & (segment % 4 != 3)] = BUILDING
        labels[above & (segment % 4 == 3)] = VEGETATION
        labels[(rows >= horizon - height * 0.05) & (rows < horizon) & (segment % 5 == 1)] = WALL
        # Road in perspective, sidewalks and terrain beside it.
        depth = np.clip((rows - horizon) / (height - horizon), 0, 1)
        half_road = 0.05 * width + depth * 0.55 * width
        centre = width / 2
        ground = rows >= horizon
        labels[ground] = SIDEWALK
        labels[ground & (np.abs(cols - centre) < half_road)] = ROAD
        labels[ground & (np.abs(cols - centre) > half_road * 1.6)] = TERRAIN
        labels[ground & (np.abs(cols - centre) > half_road * 1.6) & (rows < horizon + height * 0.03)] = FENCE
        instances = labels.astype(np.int32)
        # Poles with signs and lights, a static object, people on the sidewalk.
        for k in range(6):
            x = int((k * width / 6 + 17 - shift * 1.5) % width)
            labels[int(horizon * 0.5) : int(horizon + height * 0.08), x : x + max(1, width // 170)] = POLE
            box = labels[int(horizon * 0.5) : int(horizon * 0.5) + max(2, height // 40), x : x + max(2, width // 100)]
            box[...] = SIGN if k % 2 else LIGHT
        labels[int(horizon + height * 0.05) : int(horizon + height * 0.1), width // 12 : width // 10] = STATIC
        for k in range(3):
            x = int((width * (0.1 + 0.3 * k) + 2 * index) % width)
            y = int(horizon + height * 0.06)
            labels[y : y + height // 12, x : x + max(2, width // 90)] = PERSON
            instances[y : y + height // 12, x : x + max(2, width // 90)] = PERSON * 1000 + k
        # Cars on the road, moving at different speeds, the largest a truck.
        for k in range(4):
            scale = 0.4 + 0.2 * k
            car_w, car_h = int(width * 0.09 * scale), int(height * 0.07 * scale)
            x = int(centre + (k - 1.5) * width * 0.14 + (k - 1.5) * index * 2)
            y = int(horizon + (height - horizon) * (0.1 + 0.2 * k))
            x0, x1 = np.clip([x, x + car_w], 0, width)
            y0, y1 = np.clip([y, y + car_h], 0, height)
            label = TRUCK if k == 0 else CAR
            labels[y0:y1, x0:x1] = label
            instances[y0:y1, x0:x1] = label * 1000 + k
        sequence.append((labels, instances))
    return sequence


def _peak_reset() -> bool:
    """Reset the kernel's peak-RSS counter for this process (Linux); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frame_macs(generator: Any, size: tuple[int, int], labels: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """(executed, dense) GMAC of one steady-state step at ``size`` on the given frames."""
    config = generator.config
    width, height = size
    encoded = []
    for label_ids, instance_ids in labels[-config.n_frames :]:
        ids = torch.from_numpy(label_ids.astype(np.int64))[None]
        inst = torch.from_numpy(instance_ids.astype(np.int64))[None]
        encoded.append(encode_label_frame(ids, inst, config.label_nc, config.use_instance))
    pyramids = [build_pyramid(frame, config.n_scales)[::-1] for frame in encoded]
    label_stacks = [torch.cat([p[s] for p in pyramids], 1) for s in range(config.n_scales)]
    prev_stacks = [
        torch.zeros(1, config.prev_output_nc, *label_stacks[s].shape[-2:]) for s in range(config.n_scales)
    ]
    edges = [frame[:, config.label_nc] for frame in encoded] if config.use_instance else [None] * len(encoded)
    codes = torch.stack(
        [
            frame_codes(torch.from_numpy(label_ids.astype(np.int64))[None], edge)
            for (label_ids, _), edge in zip(labels[-config.n_frames :], edges)
        ],
        dim=1,
    )
    executed = count_macs(generator, label_stacks, prev_stacks, label_codes=codes).gmac
    saved = [(scale.label_stem_mode, scale.warp_mode) for scale in generator.scales]
    generator.set_fast_paths("dense", "pixel")
    try:
        dense = count_macs(generator, label_stacks, prev_stacks).gmac
    finally:
        for scale, (stem, warp) in zip(generator.scales, saved):
            scale.label_stem_mode, scale.warp_mode = stem, warp
    return executed, dense


def dense_gmac(config_name: str, size: tuple[int, int]) -> float:
    """Multiply-adds (GMAC) of one step of the dense architecture at ``size``, counted on the
    meta device (no memory, no time): the on-paper figure."""
    config = preset(config_name)
    with torch.device("meta"):
        generator = build_generator(config.replace(single_g=None))
    generator.set_fast_paths("dense", "pixel")
    width, height = size
    label_stacks, prev_stacks = [], []
    for scale in range(config.n_scales):
        factor = 2 ** (config.n_scales - 1 - scale)
        shape = (height // factor, width // factor)
        label_stacks.append(torch.zeros(1, config.input_nc, *shape, device="meta"))
        prev_stacks.append(torch.zeros(1, config.prev_output_nc, *shape, device="meta"))
    return count_macs(generator, label_stacks, prev_stacks).gmac


def run_case(
    config_name: str,
    engine_name: str,
    size: tuple[int, int],
    frames: int = 10,
    warmup: int = 2,
    max_seconds: float = 60.0,
    device: str = "cpu",
    seed: int = 0,
    count: bool = True,
) -> BenchResult:
    """Time one (configuration, engine, size) case; never raises for an unavailable engine."""
    width, height = size
    result = BenchResult(
        config_name, engine_name, width, height, status="ok", threads=torch.get_num_threads(), device=device
    )
    usable, reason = engine_status(engine_name, device)
    if not usable:
        result.status, result.reason = "skipped", reason
        return result
    generator = build_generator(preset(config_name).replace(single_g=None), seed=seed).to(device).eval()
    config = generator.config
    if width % config.size_multiple or height % config.size_multiple:
        result.status = "error"
        result.reason = f"size must be a multiple of {config.size_multiple} for {config_name}"
        return result
    # One frame beyond the timed ones for the parity step.
    sequence = synthetic_street(width, height, config.n_frames - 1 + warmup + frames + 1, seed)
    if count:
        result.gmac_executed, result.gmac_dense = frame_macs(generator, size, sequence[: config.n_frames])
    gc.collect()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        result.memory_kind = "cuda max allocated"
    else:
        result.memory_kind = "peak RSS" if _peak_reset() else "process peak RSS (since start)"
    try:
        engine = build_engine(engine_name, generator, device)
    except EngineUnavailable as error:
        result.status, result.reason = "skipped", str(error)
        return result
    renderer = SequentialRenderer(generator, device, size, engine=engine, start="blank")
    times: list[float] = []
    cpu_times: list[float] = []
    started = time.perf_counter()
    try:
        for index, (label_ids, instance_ids) in enumerate(sequence[:-1]):
            if cuda:
                torch.cuda.synchronize()
            tick, cpu_tick = time.perf_counter(), time.process_time()
            renderer.step(label_ids, instance_ids)
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - tick
            if index >= config.n_frames - 1 + warmup:
                times.append(elapsed)
                cpu_times.append(time.process_time() - cpu_tick)
                if len(times) >= 2 and time.perf_counter() - started > max_seconds + engine.build_seconds:
                    break
        probe = ParityProbe(engine, generator)
        renderer.engine = probe
        renderer.step(*sequence[index + 1])
        result.diff_255 = probe.diff_255
    except Exception as error:  # a benchmark reports a failing engine and goes on
        log.exception("bench case %s/%s/%dx%d failed", config_name, engine_name, width, height)
        result.status, result.reason = "error", f"{type(error).__name__}: {error}"
        return result
    finally:
        engine.close()
    result.frames = len(times)
    result.ms_median = statistics.median(times) * 1000
    result.ms_mean = statistics.fmean(times) * 1000
    result.ms_min = min(times) * 1000
    result.fps = 1000.0 / result.ms_median
    result.cpu_ms_median = statistics.median(cpu_times) * 1000
    result.build_s = engine.build_seconds
    result.peak_mib = (torch.cuda.max_memory_allocated() / 2**20) if cuda else _peak_rss_mib()
    result.details = engine.describe()
    return result


class ParityProbe:
    """An engine wrapper that also runs the PyTorch fp32 generator on the same inputs and keeps
    the largest difference of the composed images, in 8-bit levels ([-1, 1] spans 255)."""

    def __init__(self, engine: Any, generator: Any) -> None:
        self.engine = engine
        self.reference = TorchEngine(generator)
        self.diff_255: float | None = None

    def __call__(self, label_stacks: Any, prev_stacks: Any, label_codes: Any = None) -> list[torch.Tensor]:
        images = self.engine(label_stacks, prev_stacks, label_codes)
        expected = self.reference(label_stacks, prev_stacks, label_codes)
        diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(images, expected))
        self.diff_255 = diff * 255.0 / 2.0
        return images


def run_bench(
    configs: Iterable[str],
    engines: Iterable[str],
    sizes: Iterable[tuple[int, int]],
    frames: int = 10,
    warmup: int = 2,
    max_seconds: float = 60.0,
    device: str = "cpu",
    on_result: Callable[[BenchResult], None] | None = None,
) -> list[BenchResult]:
    """Every configuration × size × engine; ``on_result`` sees each result as it is done."""
    results = []
    for config_name in configs:
        for size in sizes:
            macs: tuple[float | None, float | None] | None = None
            for engine_name in engines:
                result = run_case(
                    config_name, engine_name, size, frames, warmup, max_seconds, device, count=macs is None
                )
                if macs is None and result.gmac_dense is not None:
                    macs = (result.gmac_executed, result.gmac_dense)
                elif macs is not None:
                    result.gmac_executed, result.gmac_dense = macs
                results.append(result)
                if on_result is not None:
                    on_result(result)
                gc.collect()
    return results


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_table(results: Iterable[BenchResult]) -> str:
    """A fixed-width text table of the results."""
    header = ("config", "engine", "size", "ms/frame", "fps", "CPU ms", "peak MiB", "GMAC exec", "GMAC dense", "build s", "diff/255", "status")
    rows = [header]
    for r in results:
        status = r.status if r.status == "ok" else f"{r.status}: {r.reason}"
        rows.append(
            (
                r.config,
                r.engine,
                f"{r.width}x{r.height}",
                _fmt(r.ms_median),
                _fmt(r.fps, 2),
                _fmt(r.cpu_ms_median),
                _fmt(r.peak_mib, 0),
                _fmt(r.gmac_executed, 2),
                _fmt(r.gmac_dense, 2),
                _fmt(r.build_s, 1),
                _fmt(r.diff_255, 3),
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows[:]) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths)]
        lines.append("  ".join(cells + [row[-1]]))
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    """The machine the figures come from: CPU model, cores, threads, torch version, GPU."""
    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    try:
        facts["load_average"] = os.getloadavg()
    except OSError:
        pass
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts
