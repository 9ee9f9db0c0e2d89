"""Export simulator sequences in NVIDIA's vid2vid layout, plus the simulator's ground-truth flow.

    OUT/<phase>_A/<seq>/<frame>.png     Cityscapes labelIds, uint8
    OUT/<phase>_B/<seq>/<frame>.png     RGB
    OUT/<phase>_inst/<seq>/<frame>.png  Cityscapes-style instance ids, uint16
    OUT/<phase>_flow/<seq>/<frame>.png  backward flow t -> t-1 in pixels, KITTI 16-bit PNG
    OUT/dataset.json                    per phase: what was exported, from which world, which seeds

Every sequence comes from its own source (seed = base seed + sequence index) so sequences differ.
A sequence's files are written to a staging folder and renamed into place when complete, so an
interrupted export never leaves a half sequence that training would read.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from carla_neural.remap import Remapper
from carla_neural.sources.base import Frame, Source
from carla_neural.sources.encoding import backward_flow_px, bgra_to_rgb, write_flow_png

log = logging.getLogger(__name__)

WORLDS = ("builtin", "carla")


class ExportError(RuntimeError):
    """An export that cannot run; the message says what is missing."""


@dataclass
class ExportConfig:
    """What to export: which world, how many sequences of how many frames, at which size."""

    out: str
    world: str = "builtin"
    sequences: int = 4
    frames: int = 30
    width: int = 256
    height: int = 128
    seed: int = 0
    phase: str = "train"
    warmup: int = 5  # ticks dropped before each sequence (settling, first flow)
    frame_step: int = 1  # keep every n-th tick
    layout: str | None = None  # built-in world: "urban" or "highway" (None: the world's default)
    # CARLA only
    host: str = "127.0.0.1"
    port: int = 2000
    town: str | None = None
    vehicles: int = 30
    walkers: int = 20
    tag_scheme: str = "0.9.14"
    carla_timeout_s: float = 10.0
    extra: dict = field(default_factory=dict)

    def validate(self) -> "ExportConfig":
        """Raise ValueError naming the first bad field."""
        if self.world not in WORLDS:
            raise ValueError(f"world must be one of {WORLDS}, got {self.world!r}")
        for name in ("sequences", "frames", "frame_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"size must be at least 16x16, got {self.width}x{self.height}")
        if self.world == "carla":
            from carla_neural.sources.carla_session import check_seed

            check_seed(self.seed)
            check_seed(self.seed + self.sequences - 1)  # sequence i uses seed + i
        if not self.phase.isidentifier():
            raise ValueError(f"phase must be a plain name like 'train' or 'test', got {self.phase!r}")
        return self


def open_source(config: ExportConfig, sequence_index: int) -> Source:
    """A fresh source for one sequence; CARLA is imported only here and only for world='carla'."""
    seed = config.seed + sequence_index
    if config.world == "builtin":
        from carla_neural.sources.world import BuiltinWorld, WorldConfig

        kwargs = {"width": config.width, "height": config.height, "seed": seed}
        if config.layout is not None:
            kwargs["layout"] = config.layout
        kwargs.update(config.extra)
        return BuiltinWorld(WorldConfig(**kwargs))
    try:
        from carla_neural.sources.carla_source import CameraRig, CarlaConfig, CarlaSource
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ExportError(f"the CARLA source cannot be imported ({err}); install the 'carla' extra") from err
    rig = CameraRig(width=config.width, height=config.height,
                    sensors=("semantic", "instance", "rgb", "flow", "depth"))
    carla_config = CarlaConfig(host=config.host, port=config.port, map_name=config.town, seed=seed, camera=rig,
                               vehicles=config.vehicles, walkers=config.walkers, autopilot=True,
                               timeout_s=config.carla_timeout_s)
    from carla_neural.sources.carla_session import CarlaConnectionError, CarlaUnavailable

    try:
        return CarlaSource(carla_config)
    except CarlaConnectionError as err:
        raise ExportError(
            f"cannot reach a CARLA server at {config.host}:{config.port} ({err}). Start one "
            "(e.g. `docker run --gpus all -p 2000-2002:2000-2002 carlasim/carla:0.9.16 ./CarlaUE4.sh -RenderOffScreen`) "
            "or export from the built-in world with --world builtin"
        ) from err
    except CarlaUnavailable as err:
        raise ExportError(str(err)) from err
    except (ValueError, RuntimeError) as err:
        # The server answered but refused the setup (a blueprint or map it lacks, a taken spawn
        # point); CarlaSource has already put the server back.
        raise ExportError(
            f"the CARLA server at {config.host}:{config.port} answered but could not set up sequence "
            f"{sequence_index}: {err}"
        ) from err


def frame_images(frame: Frame, remapper: Remapper) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(label_ids (H, W) uint8, rgb (H, W, 3) uint8, instance_ids (H, W) uint16, backward flow (H, W, 2) | None)."""
    if frame.rgb_bgra is None:
        raise ExportError("the source gives no RGB camera image; a training pair needs one")
    label_ids = remapper.label_ids(frame.semantic_bgra)
    rgb = bgra_to_rgb(frame.rgb_bgra)
    if frame.instance_bgra is not None:
        instance_ids = remapper.instance_ids(frame.instance_bgra)
    else:
        instance_ids = label_ids.astype(np.int32)
    if instance_ids.max(initial=0) > np.iinfo(np.uint16).max:
        raise ExportError("instance ids exceed uint16; Cityscapes-style ids (labelId*1000+k) must stay < 65536")
    flow_px = backward_flow_px(frame.flow) if frame.flow is not None else None
    return label_ids, rgb, instance_ids.astype(np.uint16), flow_px


def _ticks(source: Source, config: ExportConfig) -> Iterator[Frame]:
    for _ in range(config.warmup):
        source.tick()
    while True:
        frame = None
        for _ in range(config.frame_step):
            frame = source.tick()
        assert frame is not None
        yield frame


def export_dataset(config: ExportConfig, on_frame: Callable[[int, int], None] | None = None) -> dict:
    """Write the dataset; returns the summary also saved as dataset.json. `on_frame(seq, frame)` reports progress."""
    config.validate()
    if config.frame_step != 1:
        log.warning("frame_step %d: the exported flow is the simulator's one-tick flow, so train_flow is "
                    "omitted and training falls back to DIS flow", config.frame_step)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    remapper = Remapper(scheme=config.tag_scheme, unknown="unlabeled")
    kinds = ("A", "B", "inst", "flow")
    started = time.monotonic()
    has_flow = True
    for index in range(config.sequences):
        name = f"seq{index:04d}"
        staging = {kind: out / f"{config.phase}_{kind}" / f".{name}.partial" for kind in kinds}
        final = {kind: out / f"{config.phase}_{kind}" / name for kind in kinds}
        for folder in list(staging.values()) + list(final.values()):
            if folder.exists():
                shutil.rmtree(folder)
        for folder in staging.values():
            folder.mkdir(parents=True)
        with open_source(config, index) as source:
            for frame_number, frame in zip(range(config.frames), _ticks(source, config)):
                label_ids, rgb, instance_ids, flow_px = frame_images(frame, remapper)
                stem = f"{frame_number:06d}.png"
                _write(staging["A"] / stem, label_ids)
                _write(staging["B"] / stem, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                _write(staging["inst"] / stem, instance_ids)
                if flow_px is not None and config.frame_step == 1:
                    write_flow_png(staging["flow"] / stem, flow_px)
                else:
                    has_flow = False
                if on_frame is not None:
                    on_frame(index, frame_number)
        for kind in kinds:
            if kind == "flow" and not has_flow:
                shutil.rmtree(staging[kind])
                continue
            staging[kind].rename(final[kind])
    summary = {
        "format": "vid2vid",
        "phase": config.phase,
        "sequences": config.sequences,
        "frames_per_sequence": config.frames,
        "size": [config.width, config.height],
        "has_flow": has_flow,
        "flow": "backward (t -> t-1) pixels, KITTI 16-bit PNG" if has_flow else None,
        "label_ids": "Cityscapes labelIds",
        "export_seconds": round(time.monotonic() - started, 2),
        "config": asdict(config),
    }
    index_path = out / "dataset.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index.setdefault("phases", {})[config.phase] = summary
    index_path.write_text(json.dumps(index, indent=2))
    return summary


def _write(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise ExportError(f"could not write {path}: check that the disk has room and the folder is writable")
