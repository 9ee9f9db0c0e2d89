"""Transport benchmark: round-trip ms of one frame over ZeroMQ, zero-copy against copying.

    carla-neural bench-transport [--frames 200] [--json out.json] [--sizes 512x256,1024x512]
                                 [--checkpoint CKPT] [--threads N]

(or `python -m carla_neural.bench_transport` with the same options). For each size (512x256 and
1024x512 unless --sizes) and each mode, a separate echo process speaks protocol v1 —
it decodes and checks every RENDER (label_ids uint8 + instance_ids int32) exactly as the worker
does and answers with an (H, W, 3) uint8 image — so the figure is the wire cost alone: encoding,
two process hops over loopback TCP, decoding. With --checkpoint the real worker is measured too,
and its transport overhead is the round trip minus the render time the worker reports.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import zmq

from carla_neural.cli.options import WxHList, threads_option
from renderer import protocol
from renderer.protocol import Flag, MsgType


def serve_echo(endpoint: str, zero_copy: bool) -> None:
    """Answer RENDER requests with a fixed rgb image until a BYE arrives."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    print(router.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    images: dict[tuple[int, int], np.ndarray] = {}
    while True:
        identity, *frames = router.recv_multipart(copy=not zero_copy)
        message = protocol.decode(frames, expect=protocol.REQUEST_TYPES)
        if message.msg_type == MsgType.BYE:
            return
        label_ids, _ = protocol.check_render_request(message)
        shape = label_ids.shape
        if shape not in images:
            images[shape] = np.full((*shape, 3), 127, np.uint8)
        reply = protocol.encode(MsgType.RENDER_REPLY, session_id=message.session_id, seq=message.seq,
                                frame_id=message.frame_id, arrays=[images[shape]])
        router.send_multipart([identity if isinstance(identity, bytes) else identity.bytes, *reply],
                              copy=not zero_copy)


def _stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"median_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "mean_ms": round(statistics.fmean(ordered), 3)}


def bench_echo(width: int, height: int, zero_copy: bool, frames: int) -> dict[str, Any]:
    """Round trips through an echo process: (H, W) uint8 + (H, W) int32 out, (H, W, 3) uint8 back."""
    server = subprocess.Popen([sys.executable, "-m", "carla_neural.bench_transport", "--serve-echo",
                               "tcp://127.0.0.1:*", *([] if zero_copy else ["--copy"])],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    endpoint = server.stdout.readline().strip()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    rng = np.random.default_rng(0)
    label_ids = rng.integers(0, 34, (height, width), dtype=np.uint8)
    instance_ids = rng.integers(0, 34_000, (height, width), dtype=np.int32)
    samples = []
    try:
        for index in range(frames + 20):
            started = time.perf_counter()
            dealer.send_multipart(protocol.render_request(1, index + 1, index, label_ids, instance_ids,
                                                          flags=int(Flag.RESET) if index == 0 else 0),
                                  copy=not zero_copy)
            reply = protocol.decode(dealer.recv_multipart(copy=not zero_copy), expect=protocol.REPLY_TYPES)
            protocol.check_render_reply(reply, (height, width))
            if index >= 20:  # warm-up: connection set-up, allocator
                samples.append((time.perf_counter() - started) * 1000)
        dealer.send_multipart(protocol.encode(MsgType.BYE, session_id=1))
        server.wait(timeout=10)
    finally:
        dealer.close(linger=0)
        if server.poll() is None:
            server.kill()
    payload_mb = (label_ids.nbytes + instance_ids.nbytes + height * width * 3) / 1e6
    return {"size": f"{width}x{height}", "mode": "zero-copy" if zero_copy else "copy",
            "payload_mb": round(payload_mb, 2), **_stats(samples)}


def bench_worker(checkpoint: str, width: int, height: int, frames: int, device: str,
                 threads: int | None = None) -> dict[str, Any]:
    """Round trips through the real worker (`threads` torch threads, None: its default);
    overhead = round trip - the worker's render time."""
    from carla_neural.worker_supervisor import WorkerSupervisor

    rng = np.random.default_rng(0)
    label_ids = rng.integers(0, 34, (height, width), dtype=np.uint8)
    instance_ids = rng.integers(0, 34_000, (height, width), dtype=np.int32)
    round_trips, overheads = [], []
    with WorkerSupervisor(checkpoint, device=device, threads=threads) as supervisor, supervisor.client() as client:
        for index in range(frames + 5):
            client.render(index, label_ids, instance_ids)
            result = client.last_result
            assert result is not None
            if index >= 5:
                round_trips.append(result.latency_ms)
                overheads.append(result.latency_ms - result.render_ms)
    return {"size": f"{width}x{height}", "mode": "worker", "round_trip": _stats(round_trips),
            "overhead": _stats(overheads)}


@click.command(name="bench-transport")
@click.option("--frames", type=click.IntRange(min=1), default=200, show_default=True,
              help="Timed round trips per case.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures here.")
@click.option("--sizes", type=WxHList(), default="512x256,1024x512", show_default=True,
              help="Comma-separated WIDTHxHEIGHT.")
@click.option("--checkpoint", default=None, help="Also measure the real worker with this checkpoint.")
@click.option("--worker-frames", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed frames per size for --checkpoint.")
@click.option("--device", default="auto", show_default=True, help="Device for --checkpoint.")
@threads_option
@click.option("--serve-echo", "echo_endpoint", default=None, hidden=True)
@click.option("--copy", "copy_mode", is_flag=True, hidden=True)
def command(frames: int, json_path: Path | None, sizes: list[tuple[int, int]], checkpoint: str | None,
            worker_frames: int, device: str, threads: int | None, echo_endpoint: str | None,
            copy_mode: bool) -> None:
    """Round-trip ms per frame, zero-copy vs copying (and through the real worker with --checkpoint)."""
    if echo_endpoint:
        serve_echo(echo_endpoint, zero_copy=not copy_mode)
        return
    results = []
    for width, height in sizes:
        for zero_copy in (True, False):
            row = bench_echo(width, height, zero_copy, frames)
            results.append(row)
            click.echo(f"{row['size']:>9}  {row['mode']:<9}  {row['payload_mb']:5.2f} MB/frame  "
                       f"median {row['median_ms']:7.3f} ms  p90 {row['p90_ms']:7.3f} ms  mean {row['mean_ms']:7.3f} ms")
    if checkpoint:
        for width, height in sizes:
            row = bench_worker(checkpoint, width, height, worker_frames, device, threads)
            results.append(row)
            click.echo(f"{row['size']:>9}  worker     round trip median {row['round_trip']['median_ms']:8.2f} ms, "
                       f"transport overhead median {row['overhead']['median_ms']:6.2f} ms "
                       f"(p90 {row['overhead']['p90_ms']:.2f})")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"transport": results}, indent=2) + "\n")
        click.echo(f"wrote {json_path}")


if __name__ == "__main__":
    command()
