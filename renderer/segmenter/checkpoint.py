"""The segmenter's files: ``model.safetensors`` + ``config.json``, loaded strictly, in eval mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from renderer.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, strict_load
from renderer.segmenter.model import Segmenter, SegmenterConfig

FORMAT_NAME = "carla-neural/segmenter"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights" / "segmenter"


def save_segmenter(model: Segmenter, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "segmenter": model.config.to_dict(), "metadata": metadata or {}}
    # Temporary names first: a crash never leaves a half-written pair.
    weights_tmp, config_tmp = folder / (WEIGHTS_FILE + ".partial"), folder / (CONFIG_FILE + ".partial")
    save_file(tensors, str(weights_tmp), metadata={"format": FORMAT_NAME})
    config_tmp.write_text(json.dumps(document, indent=2) + "\n")
    weights_tmp.replace(folder / WEIGHTS_FILE)
    config_tmp.replace(folder / CONFIG_FILE)
    return folder


def read_segmenter_config(folder: str | Path) -> tuple[SegmenterConfig, dict[str, Any]]:
    """The config and metadata of a segmenter folder; CheckpointError naming the file otherwise."""
    path = Path(folder) / CONFIG_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error
    if document.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a {FORMAT_NAME} config (format={document.get('format')!r}); "
                              "give a folder written by `carla-neural train-segmenter`")
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {document['format_version']}; this code reads up to "
                              f"{FORMAT_VERSION}: update carla-neural")
    try:
        config = SegmenterConfig.from_dict(document["segmenter"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad segmenter config: {error}") from error
    return config, document.get("metadata", {})


def load_segmenter(source: str | Path = "bundled", device: str | torch.device = "cpu") -> Segmenter:
    """Load ``"bundled"`` (renderer/weights/segmenter) or a segmenter folder, strictly, in eval mode."""
    folder = BUNDLED_DIR if str(source) == "bundled" else Path(source)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{folder} is not a segmenter folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE}"
                              + (" (the bundled segmenter is missing from this install)" if str(source) == "bundled" else ""))
    config, _ = read_segmenter_config(folder)
    model = Segmenter(config)
    strict_load(model, load_file(str(folder / WEIGHTS_FILE)), str(folder / WEIGHTS_FILE))
    return model.to(device).eval()
