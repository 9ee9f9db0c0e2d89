"""One entry point from a checkpoint reference to a ready ``SequentialRenderer``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from renderer.checkpoint import (
    CheckpointError,
    find_nvidia_scale_files,
    is_our_checkpoint,
    load_checkpoint,
    load_nvidia_checkpoint,
    read_config,
)
from renderer.checkpoint_ref import bundled_checkpoint, resolve_checkpoint
from renderer.model.generator import Vid2VidGenerator
from renderer.sequential import FrameEngine, SequentialRenderer

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_checkpoint_folder(checkpoint: str | Path) -> Path:
    """"bundled" or one of our checkpoint folders -> the folder, its config.json already validated;
    CheckpointError naming what is wrong."""
    folder = resolve_checkpoint(checkpoint)
    if not is_our_checkpoint(folder):
        raise CheckpointError(f"{folder} is not one of our checkpoints (config.json + model.safetensors); "
                              "convert an NVIDIA checkpoint first with `carla-neural convert`")
    read_config(folder)  # a bad config is reported before any frame is simulated or rendered
    return folder


def working_size_of(checkpoint: str | Path) -> tuple[int, int] | None:
    """The working (W, H) one of our checkpoints recommends (``metadata.working_size`` in its
    config.json: the size it was trained at), or None."""
    folder = resolve_checkpoint(checkpoint)
    if not is_our_checkpoint(folder):
        return None
    _, metadata = read_config(folder)
    size = metadata.get("working_size")  # read_config checked it: [width, height] within bounds
    return None if size is None else (int(size[0]), int(size[1]))


def load_generator(
    checkpoint: str | Path, single_g: str | Path | None = None, device: str | torch.device = "cpu"
) -> Vid2VidGenerator:
    """A generator from an NVIDIA folder, one of our checkpoint folders, or "bundled"."""
    path = resolve_checkpoint(checkpoint)
    if path.is_file():
        raise CheckpointError(
            f"{path} is a file: give the checkpoint *folder* (NVIDIA's latest_net_G*.pth, or our "
            "config.json + model.safetensors)"
        )
    if is_our_checkpoint(path):
        if single_g is not None:
            raise CheckpointError("--single-g applies to NVIDIA checkpoints; ours carry their own")
        return load_checkpoint(path, device)
    if find_nvidia_scale_files(path):
        return load_nvidia_checkpoint(path, single_g, device)
    raise CheckpointError(
        f"{path} is neither a carla-neural checkpoint (config.json + model.safetensors) nor an "
        "NVIDIA vid2vid folder (latest_net_G0.pth …)"
    )


def build_engine(
    name: str, generator: Vid2VidGenerator, device: torch.device, size: tuple[int, int] | None
) -> FrameEngine:
    """The named engine from ``renderer.engines.build_engine``, which owns every engine."""
    from renderer.engines import build_engine as build

    return build(name, generator, device=device, size=size)


def load_renderer(
    checkpoint: str | Path,
    engine: str = "torch",
    device: str | torch.device = "auto",
    size: tuple[int, int] | None = None,
    single_g: str | Path | None = None,
) -> SequentialRenderer:
    """A SequentialRenderer for ``checkpoint`` (NVIDIA folder, our folder, or "bundled").

    ``size`` is the working (W, H), rounded to what the network accepts; None takes the
    checkpoint's ``metadata.working_size`` if it has one (the size it was trained at), else the
    first frame's size. Frames of any size go in and come out at their own size.
    ``single_g`` names NVIDIA's single-image generator file when it is elsewhere.
    """
    torch_device = resolve_device(device)
    if size is None:
        size = working_size_of(checkpoint)
    generator = load_generator(checkpoint, single_g, torch_device).to(torch_device).eval()
    renderer = SequentialRenderer(generator, torch_device, size)
    renderer.engine = build_engine(engine, generator, torch_device, renderer.size)
    if generator.has_styles:
        from renderer.styles import load_styles

        renderer.style_bank = load_styles(resolve_checkpoint(checkpoint), generator.config.label_nc,
                                          generator.config.feat_nc)
        renderer.apply_style(None)  # the default style (StyleBank.default_vectors)
    log.info("renderer: %s on %s, engine %s", checkpoint, torch_device, engine)
    return renderer
