"""`carla-neural worker`: serve the renderer over ZeroMQ (same as `python -m renderer.worker`)."""

from __future__ import annotations

import click

from renderer.protocol import Limits
from renderer.cpus import parse_cpus
from renderer.worker import WorkerConfig, parse_size, run


@click.command(name="worker")
@click.option("--checkpoint", required=True, help="Checkpoint folder (config.json + model.safetensors), "
              "an NVIDIA checkpoint folder, or 'bundled'.")
@click.option("--bind", default="tcp://127.0.0.1:5555", show_default=True,
              help="ZeroMQ endpoint to listen on; port * picks a free one.")
@click.option("--engine", default="torch", show_default=True, help="Renderer engine.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback bind (no authentication!).")
@click.option("--max-sessions", default=8, show_default=True, help="Client sessions held at once.")
@click.option("--session-ttl", default=300.0, show_default=True, help="Seconds of silence that end a session.")
@click.option("--max-pending", default=4, show_default=True, help="Queued requests per session.")
@click.option("--max-queue", default=32, show_default=True, help="Queued requests in all.")
@click.option("--hwm", default=64, show_default=True, help="ZeroMQ high-water mark, messages each way.")
@click.option("--max-side", default=Limits.max_side, show_default=True, help="Largest accepted image side.")
@click.option("--max-pixels", default=Limits.max_pixels, show_default=True, help="Largest accepted H*W.")
@click.option("--size", default=None, help="Working size WxH the model renders at, e.g. 512x256.")
@click.option("--cpus", default=None, help="Pin the worker to these CPUs, e.g. 1, 2-7 or 0,2 (Linux), so "
              "that it does not compete with a simulator or pipeline on the same machine.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of the renderer (torch); default: torch's choice.")
@click.option("--parent-pid", type=int, default=None, hidden=True)
def command(checkpoint: str, bind: str, engine: str, device: str, allow_remote: bool, max_sessions: int,
            session_ttl: float, max_pending: int, max_queue: int, hwm: int, max_side: int, max_pixels: int,
            size: str | None, cpus: str | None, threads: int | None, parent_pid: int | None) -> None:
    """Serve the renderer over ZeroMQ: one renderer state per client session."""
    working_size = None
    if size is not None:
        try:
            working_size = parse_size(size)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--size") from None
    try:
        cpu_list = parse_cpus(cpus) if cpus is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--cpus") from None
    config = WorkerConfig(checkpoint=checkpoint, bind=bind, engine=engine, device=device,
                          allow_remote=allow_remote, max_sessions=max_sessions, session_ttl_s=session_ttl,
                          max_pending_per_session=max_pending, max_queue=max_queue, hwm=hwm,
                          limits=Limits(max_side=max_side, max_pixels=max_pixels), size=working_size,
                          parent_pid=parent_pid, cpus=cpu_list, threads=threads)
    code = run(config)
    if code:
        raise SystemExit(code)
