"""Checkpoint references ("bundled", "bundled-baseline", "bundled-adapted" or a path) -> the
folder, checked to be there.

The one home of the checkpoint-exists rule: the demo, the worker supervisor and the worker all
call `resolve_checkpoint` before anything starts. Torch-free, so that the client side checks a
checkpoint without loading torch.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED = "bundled"
BUNDLED_BASELINE = "bundled-baseline"
BUNDLED_ADAPTED = "bundled-adapted"
# The shipped models by reference: the vid2vid model trained on real streets, its frame-by-frame
# baseline (trained the same way, so that anyone can rerun the comparison in
# renderer/weights/lite/README.md), and the vid2vid model fine-tuned on the built-in world's maps
# (`carla-neural adapt`, renderer/weights/lite-adapted/README.md).
BUNDLED_FOLDERS = {BUNDLED: "lite", BUNDLED_BASELINE: "lite-baseline", BUNDLED_ADAPTED: "lite-adapted"}
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message says what is wrong and what to do."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """The checkpoint a reference names is not there (a missing path, or the bundled model not built)."""


def bundled_checkpoint(reference: str = BUNDLED) -> Path:
    """The folder of a shipped model: ``renderer/weights/lite/`` for "bundled",
    ``lite-baseline/`` for "bundled-baseline", ``lite-adapted/`` for "bundled-adapted" (may not be built yet)."""
    return Path(__file__).resolve().parent / "weights" / BUNDLED_FOLDERS[reference]


def is_our_checkpoint(folder: str | Path) -> bool:
    """True if ``folder`` holds config.json and model.safetensors."""
    folder = Path(folder)
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The folder a checkpoint reference names: one of BUNDLED_FOLDERS -> the shipped model,
    else the path; CheckpointMissing (one line: what is missing and what to give) when it is not there."""
    if str(checkpoint) in BUNDLED_FOLDERS:
        folder = bundled_checkpoint(str(checkpoint))
        if not is_our_checkpoint(folder):
            raise CheckpointMissing(
                f"the {checkpoint} model is missing from this install ({folder} has no {CONFIG_FILE} + "
                f"{WEIGHTS_FILE}): see renderer/weights/lite/README.md to train it, or pass --checkpoint "
                "with an NVIDIA or carla-neural checkpoint"
            )
        return folder
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointMissing(
            f"checkpoint not found: {path} does not exist; give a folder with {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}, an NVIDIA checkpoint folder, or one of {', '.join(map(repr, BUNDLED_FOLDERS))}"
        )
    return path
