"""A user's style choice for a checkpoint: ``--style K`` or ``--style-from PHOTO`` resolved to a
``StyleChoice`` and checked against the checkpoint before anything runs (docs/styles.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from renderer.protocol import StyleChoice
from renderer.styles import StyleBank, load_styles, style_from_photo

log = logging.getLogger(__name__)


def checkpoint_styles(checkpoint: str | Path) -> tuple[int, StyleBank | None]:
    """A checkpoint's feature channels (0: no styles; NVIDIA folders have none) and its style
    bank (None without clusters), read without building the model."""
    from renderer.checkpoint import read_config
    from renderer.checkpoint_ref import is_our_checkpoint, resolve_checkpoint

    folder = resolve_checkpoint(checkpoint)
    if not is_our_checkpoint(folder):
        return 0, None
    config, _ = read_config(folder)
    bank = load_styles(folder, config.label_nc, config.feat_nc) if config.feat_nc else None
    return config.feat_nc, bank


def choose_style(
    checkpoint: str | Path, index: int | None = None, photo: Path | None = None,
    photo_labels: Path | None = None,
) -> StyleChoice | None:
    """The StyleChoice of ``--style K`` or ``--style-from PHOTO [--style-labels PNG]`` for
    ``checkpoint``, checked before anything runs (None: neither given). ValueError in one line
    naming the option and what to do."""
    if index is None and photo is None:
        if photo_labels is not None:
            raise ValueError("--style-labels goes with --style-from PHOTO")
        return None
    if index is not None and photo is not None:
        raise ValueError("give --style K or --style-from PHOTO, not both")
    feat_nc, bank = checkpoint_styles(checkpoint)
    if feat_nc == 0:
        raise ValueError(f"--style: checkpoint {checkpoint} has no styles (no feature encoder); render it "
                         "without --style, or train one with `carla-neural train --feature-channels 3`")
    if index is not None:
        if bank is None:
            raise ValueError(f"--style {index}: checkpoint {checkpoint} has no style clusters yet; compute "
                             "them with `carla-neural styles CKPT --data DIR`, or use --style-from PHOTO")
        if not 0 <= index < bank.k:
            raise ValueError(f"--style {index}: checkpoint {checkpoint} has styles 0..{bank.k - 1}")
        return StyleChoice(index=index, name=f"style {index}")
    from renderer.loading import load_generator
    from renderer.training.datasets import DatasetError, read_label_ids, read_rgb

    assert photo is not None
    try:
        rgb = read_rgb(Path(photo))
        labels = read_label_ids(Path(photo_labels)) if photo_labels is not None else None
    except DatasetError as error:
        raise ValueError(f"--style-from: {error}") from None
    if labels is not None and labels.shape != rgb.shape[:2]:
        raise ValueError(f"--style-labels {photo_labels} is {labels.shape[1]}x{labels.shape[0]}, the photo "
                         f"{rgb.shape[1]}x{rgb.shape[0]}: give the photo's own label map")
    vectors, present = style_from_photo(load_generator(checkpoint).eval(), bank, rgb, labels)
    log.info("style from %s: %d classes from the photo, the others their training mean", photo, int(present.sum()))
    return StyleChoice(vectors=vectors, name=f"photo {Path(photo).name}")
