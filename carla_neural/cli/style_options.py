"""--style K / --style-from PHOTO / --style-labels PNG: what `render`, `record`, `demo` and `drive`
share to pick a style (docs/styles.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from renderer.protocol import StyleChoice

Command = TypeVar("Command", bound=Callable[..., Any])


def style_options(command: Command) -> Command:
    """--style, --style-from, --style-labels."""
    options = [
        click.option("--style", "style_index", type=click.IntRange(0, 63), default=None, metavar="K",
                     help="Render in style K of the checkpoint (its K-th feature cluster of every class; "
                          "checkpoints trained with --feature-channels). Default: no style, as before."),
        click.option("--style-from", "style_photo", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, metavar="PHOTO",
                     help="Render in the style of a photo: it is encoded and each class takes the mean "
                          "feature of its pixels (labelled by --style-labels or the bundled segmenter)."),
        click.option("--style-labels", "style_labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, metavar="PNG", help="The --style-from photo's labelIds PNG (same size)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def resolve_style(checkpoint: str, style_index: int | None, style_photo: Path | None,
                  style_labels: Path | None) -> "StyleChoice | None":
    """The chosen style, checked against the checkpoint before anything runs; UsageError in one
    line otherwise."""
    if style_index is None and style_photo is None and style_labels is None:
        return None
    from renderer.checkpoint_ref import CheckpointError
    from renderer.style_choice import choose_style

    try:
        return choose_style(checkpoint, style_index, style_photo, style_labels)
    except (CheckpointError, ValueError) as error:
        raise click.UsageError(str(error)) from None
