"""The segmenter's files: ``model.safetensors`` + ``config.json``, loaded strictly, in eval mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from renderer.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    read_config_document,
    strict_load,
    write_weights_and_config,
)
from renderer.segmenter.model import Segmenter, SegmenterConfig

FORMAT_NAME = "carla-neural/segmenter"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights" / "segmenter"


def save_segmenter(model: Segmenter, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json``; returns the folder."""
    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "segmenter": model.config.to_dict(), "metadata": metadata or {}}
    return write_weights_and_config(model, folder, document)


def read_segmenter_config(folder: str | Path) -> tuple[SegmenterConfig, dict[str, Any]]:
    """The config and metadata of a segmenter folder; CheckpointError naming the file otherwise."""
    document = read_config_document(folder, FORMAT_NAME, FORMAT_VERSION)
    try:
        config = SegmenterConfig.from_dict(document["segmenter"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{Path(folder) / CONFIG_FILE}: bad segmenter config: {error}") from error
    return config, document.get("metadata", {})


def segmenter_folder(source: str | Path) -> Path:
    """``"bundled"`` -> renderer/weights/segmenter; any other value is taken as a folder."""
    return BUNDLED_DIR if str(source) == "bundled" else Path(source)


def load_segmenter(source: str | Path = "bundled", device: str | torch.device = "cpu") -> Segmenter:
    """Load ``"bundled"`` (renderer/weights/segmenter) or a segmenter folder, strictly, in eval mode."""
    folder = segmenter_folder(source)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{folder} is not a segmenter folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE}"
                              + (" (the bundled segmenter is missing from this install)" if str(source) == "bundled" else ""))
    config, _ = read_segmenter_config(folder)
    model = Segmenter(config)
    strict_load(model, load_file(str(folder / WEIGHTS_FILE)), str(folder / WEIGHTS_FILE))
    return model.to(device).eval()
