"""What `drive`, `record` (and `demo`) share: source, render and label-transform options, the
errors shown without a traceback, and SIGTERM handling."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from carla_neural.cli.options import threads_option
from renderer.engine_names import LIVE_ENGINES

if TYPE_CHECKING:
    from carla_neural.runs import BackendSpec
    from renderer.protocol import StyleChoice

log = logging.getLogger(__name__)

Command = TypeVar("Command", bound=Callable[..., Any])


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message tells the user what to do: shown without a traceback
    (run with -vv to log it)."""
    from carla_neural.recorder import RecorderError
    from carla_neural.render_client import WorkerError, WorkerUnavailable
    from carla_neural.sources.assembler import SensorTimeout
    from carla_neural.sources.carla_session import CarlaConnectionError, CarlaUnavailable
    from scenarios.schema import ScenarioError

    return (CarlaConnectionError, CarlaUnavailable, ScenarioError, SensorTimeout, WorkerUnavailable,
            WorkerError, RecorderError, FileNotFoundError, ValueError)


def source_options(command: Command) -> Command:
    """--world, --host, --port, --timeout."""
    options = [
        click.option("--world", type=click.Choice(["carla", "builtin"]), default="carla",
                     show_default=True,
                     help="carla: a CARLA server at --host/--port; builtin: the procedural world, no server."),
        click.option("--host", default="127.0.0.1", show_default=True, help="CARLA server host."),
        click.option("--port", type=int, default=2000, show_default=True, help="CARLA server RPC port."),
        click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True,
                     help="Seconds to wait for the CARLA server."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def render_options(command: Command) -> Command:
    """--checkpoint, --engine, --device, --worker."""
    options = [
        click.option("--checkpoint", default=None,
                     help="Checkpoint folder, NVIDIA folder, 'bundled' or 'bundled-adapted' (default: the scenario's, "
                          "else bundled-adapted on the built-in world, bundled on CARLA)."),
        click.option("--engine", type=click.Choice(LIVE_ENGINES), default=None,
                     help="Renderer engine (default: the scenario's, else torch)."),
        click.option("--device", default="auto", show_default=True, help="Renderer device: auto, cpu, cuda."),
        click.option("--worker", "worker_endpoint", default=None, metavar="ENDPOINT",
                     help="Use a running worker (e.g. tcp://127.0.0.1:5555) instead of starting one."),
    ]
    for option in reversed(options):
        command = option(command)
    return threads_option(cpu_split_option(command))


def adapt_options(command: Command) -> Command:
    """--adapt-labels/--no-adapt-labels, --transform-config."""
    options = [
        click.option("--adapt-labels/--no-adapt-labels", default=None,
                     help="Pass the label ids through the label transform (carla_neural.label_transform: "
                          "classes the real maps lack, boundaries, specks) before the renderer (default: "
                          "the scenario's rendering.adapt_labels, else on for bundled-adapted only). The "
                          "recorded label PNGs stay the simulator's; the labels panel and video show what the renderer got."),
        click.option("--transform-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     metavar="FILE", help="Label transform config JSON (default: the scenario's "
                     "rendering.transform_config, else the calibrated one); implies --adapt-labels."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def cpu_split_option(command: Command) -> Command:
    """--cpu-split/--no-cpu-split."""
    return click.option(
        "--cpu-split/--no-cpu-split", default=True, show_default=True,
        help="Give the render worker we start the upper half of the CPUs (one renderer thread each) and "
             "keep this process on the lower half, so that world, recorder and renderer do not slow "
             "each other down. Linux, 2 CPUs or more; not with --worker.")(command)


def backend_spec(checkpoint: str | None, engine: str | None, device: str, worker_endpoint: str | None,
                 cpu_split: bool, threads: int | None, style: "StyleChoice | None" = None) -> "BackendSpec":
    """The BackendSpec of --checkpoint, --engine, --device, --worker, --cpu-split, --threads and
    the chosen style (carla_neural.cli.style_options)."""
    from carla_neural.runs import BackendSpec

    return BackendSpec(checkpoint=checkpoint or "bundled", engine=engine or "torch", device=device,
                       worker=worker_endpoint or None, cpu_split=cpu_split, threads=threads, style=style)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (docker stop, kill) like Ctrl-C inside the block, so that cleanup runs:
    the CARLA server is put back in asynchronous mode and the recorder closes its files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
