"""Checkpoint references ("bundled" or a path) -> the folder, checked to be there.

The one home of the checkpoint-exists rule: the demo, the worker supervisor and the worker all
call `resolve_checkpoint` before anything starts. Torch-free, so that the client side checks a
checkpoint without loading torch.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED = "bundled"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message says what is wrong and what to do."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """The checkpoint a reference names is not there (a missing path, or the bundled model not built)."""


def bundled_checkpoint() -> Path:
    """The shipped ``lite`` model folder, ``renderer/weights/lite/`` (may not be built yet)."""
    return Path(__file__).resolve().parent / "weights" / "lite"


def is_our_checkpoint(folder: str | Path) -> bool:
    """True if ``folder`` holds config.json and model.safetensors."""
    folder = Path(folder)
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The folder a checkpoint reference names: "bundled" -> the shipped lite model, else the path;
    CheckpointMissing (one line: what is missing and what to give) when it is not there."""
    if str(checkpoint) == BUNDLED:
        folder = bundled_checkpoint()
        if not is_our_checkpoint(folder):
            raise CheckpointMissing(
                f"the bundled lite model is not built yet ({folder} has no {CONFIG_FILE} + {WEIGHTS_FILE}): "
                "run `make model` to train it, or pass --checkpoint with an NVIDIA or carla-neural checkpoint"
            )
        return folder
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointMissing(
            f"checkpoint not found: {path} does not exist; give a folder with {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}, an NVIDIA checkpoint folder, or {BUNDLED!r}"
        )
    return path
