"""What `drive` and `record` share: source options, opening the source and the render backend."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

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
                     help="Checkpoint folder, NVIDIA folder or 'bundled' (default: the scenario's, else bundled)."),
        click.option("--engine", type=click.Choice(["torch", "compile", "onnx", "openvino", "tensorrt"]), default=None,
                     help="Renderer engine (default: the scenario's, else torch)."),
        click.option("--device", default="auto", show_default=True, help="Renderer device: auto, cpu, cuda."),
        click.option("--worker", "worker_endpoint", default=None, metavar="ENDPOINT",
                     help="Use a running worker (e.g. tcp://127.0.0.1:5555) instead of starting one."),
    ]
    for option in reversed(options):
        command = option(command)
    return cpu_split_option(command)


def cpu_split_option(command: Command) -> Command:
    """--cpu-split/--no-cpu-split."""
    return click.option(
        "--cpu-split/--no-cpu-split", default=True, show_default=True,
        help="Give the render worker we start the upper half of the CPUs (one renderer thread each) and "
             "keep this process on the lower half, so that world, recorder and renderer do not slow "
             "each other down. Linux, 2 CPUs or more; not with --worker.")(command)


@contextlib.contextmanager
def render_backend(checkpoint: str, engine: str, device: str, worker_endpoint: str | None,
                   cpu_split: bool = False) -> Iterator[tuple[Any, str]]:
    """A pipeline backend on a worker: a running one at `worker_endpoint`, or one we start and stop
    (with cpu_split, on its own CPUs, and this process on the others while the block runs).

    Yields (backend, description) and closes both on exit.
    """
    from carla_neural.cpu_split import pinned, plan_split, worker_cpu_options
    from carla_neural.pipeline import ClientBackend
    from carla_neural.render_client import RenderClient, WorkerSupervisor

    with contextlib.ExitStack() as stack:
        if worker_endpoint:
            client = RenderClient(worker_endpoint)
            description = f"worker at {worker_endpoint}"
        else:
            split = plan_split() if cpu_split else None
            stack.enter_context(pinned(split.pipeline if split else None))
            supervisor = stack.enter_context(WorkerSupervisor(checkpoint, engine=engine, device=device,
                                                              **worker_cpu_options(split)))
            client = supervisor.client()
            description = f"worker process ({checkpoint}, {engine}{'; ' + split.describe() if split else ''})"
        stack.callback(client.close)
        client.connect()
        backend = ClientBackend(client)
        yield backend, description


def renderer_facts(backend: Any, checkpoint: str, engine: str, device: str) -> dict[str, Any]:
    """checkpoint, engine, device and working size as the worker reports them (what it really
    serves, which differs from our options when we use a running worker)."""
    facts = getattr(getattr(backend, "client", None), "facts", {}) or {}
    return {
        "checkpoint": facts.get("checkpoint", checkpoint),
        "engine": facts.get("engine", engine),
        "device": facts.get("device", device),
        "working_size": facts.get("working_size"),
    }


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
