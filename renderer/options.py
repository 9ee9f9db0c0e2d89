"""click options that renderer/ commands and carla_neural's share (carla_neural.cli.options
re-exports them; renderer/ never imports carla_neural)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

Command = TypeVar("Command", bound=Callable[..., Any])


def threads_option(command: Command) -> Command:
    """--threads N: the renderer's CPU threads (torch), where this process or a worker it starts
    renders and no CPU split decides them."""
    return click.option(
        "--threads", type=click.IntRange(min=1), default=None,
        help="CPU threads of the renderer (torch). Default: half the CPUs this process may use, at "
             "least 1 (torch's one per core slows to a crawl when another process shares the cores).",
    )(command)
