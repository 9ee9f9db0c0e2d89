"""Options every command shares: the WxH size type (renderer.sizes) and --threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from renderer.sizes import WxH

__all__ = ["WxH", "threads_option"]

Command = TypeVar("Command", bound=Callable[..., Any])


def threads_option(command: Command) -> Command:
    """--threads N: the renderer's CPU threads (torch), where this process or a worker it starts
    renders and no CPU split decides them."""
    return click.option(
        "--threads", type=click.IntRange(min=1), default=None,
        help="CPU threads of the renderer (torch). Default: half the CPUs this process may use, at "
             "least 1 (torch's one per core slows to a crawl when another process shares the cores).",
    )(command)
