"""Styles over the wire: a real worker process, a client that sends the style of its session, an
old client that sends none, hostile STYLE messages, and a worker whose checkpoint has no styles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zmq

from carla_neural.render_client import RenderClient, WorkerError
from renderer import protocol
from renderer.loading import load_renderer
from renderer.protocol import ErrorCode, Flag, MsgType, StyleChoice
from renderer.worker import READY_PREFIX

HEIGHT, WIDTH = 32, 64


def _labels() -> tuple[np.ndarray, np.ndarray]:
    labels = np.full((HEIGHT, WIDTH), 7, np.uint8)
    labels[:12] = 23
    labels[16:24, 10:30] = 26
    instances = labels.astype(np.int32)
    instances[16:24, 10:30] = 26001
    return labels, instances


def _start(checkpoint: Path, log_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "renderer.worker", "--checkpoint", str(checkpoint),
                                    "--bind", "tcp://127.0.0.1:*", "--device", "cpu", "--threads", "1"],
                                   stdout=subprocess.PIPE, stderr=log_file, env=env, text=True)
    line = process.stdout.readline()
    if not line.startswith(READY_PREFIX):
        process.kill()
        pytest.fail(f"worker did not start: {line!r}\n{log_path.read_text()[-2000:]}")
    return process, line.split("endpoint=")[1].split()[0]


def _serving(checkpoint: Path, tmp_path_factory):
    process, endpoint = _start(checkpoint, tmp_path_factory.mktemp("log") / "worker.log")
    yield endpoint
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def styled_worker(tiny_style_checkpoint, tmp_path_factory):
    yield from _serving(tiny_style_checkpoint, tmp_path_factory)


@pytest.fixture(scope="module")
def plain_worker(tiny_checkpoint, tmp_path_factory):
    yield from _serving(tiny_checkpoint, tmp_path_factory)


def _reference(checkpoint: Path, choice: StyleChoice | None, frames: int) -> list[np.ndarray]:
    """The same frames rendered in this process, with the worker's one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        renderer = load_renderer(checkpoint, device="cpu")
        renderer.apply_style(choice)
        labels, instances = _labels()
        return [renderer.step(labels, instances) for _ in range(frames)]
    finally:
        torch.set_num_threads(threads)


def _client_frames(endpoint: str, choice: StyleChoice | None, frames: int) -> list[np.ndarray]:
    labels, instances = _labels()
    with RenderClient(endpoint, style=choice) as client:
        return [client.render(index, labels, instances) for index in range(frames)]


class _Peer:
    """A raw DEALER socket: what a client of another implementation sends."""

    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.session_id = int.from_bytes(os.urandom(8), "little") | 1

    def request(self, frames: list) -> protocol.Message:
        self.socket.send_multipart(frames, copy=False)
        assert self.socket.poll(20000), "no reply from the worker"
        return protocol.decode(self.socket.recv_multipart())

    def close(self) -> None:
        self.socket.close(linger=0)


def test_a_session_renders_in_its_style_as_in_process(styled_worker, tiny_style_checkpoint):
    for choice in (StyleChoice(index=0), StyleChoice(index=1)):
        remote = _client_frames(styled_worker, choice, 4)
        local = _reference(tiny_style_checkpoint, choice, 4)
        for a, b in zip(remote, local):
            assert np.abs(a.astype(int) - b).max() <= 1
    style_0 = _client_frames(styled_worker, StyleChoice(index=0), 4)
    style_1 = _client_frames(styled_worker, StyleChoice(index=1), 4)
    assert all(np.abs(a.astype(int) - b).mean() > 2.0 for a, b in zip(style_0, style_1))
    # Vectors sent explicitly (what --style-from sends) render as the index of the same vectors.
    from renderer.styles import load_styles

    bank = load_styles(tiny_style_checkpoint, 35, 3)
    as_vectors = _client_frames(styled_worker, StyleChoice(vectors=bank.vectors(1)), 4)
    assert all(np.array_equal(a, b) for a, b in zip(as_vectors, style_1))


def test_an_old_client_without_style_still_works(styled_worker, tiny_style_checkpoint):
    """A client that knows nothing of STYLE sends today's RENDER bytes and gets the default style."""
    labels, instances = _labels()
    peer = _Peer(styled_worker)
    images = []
    for index in range(3):
        flags = Flag.RESET if index == 0 else Flag.NONE
        reply = peer.request(protocol.render_request(peer.session_id, index + 1, index, labels, instances,
                                                     flags=int(flags)))
        assert reply.msg_type == MsgType.RENDER_REPLY, reply.text
        images.append(protocol.check_render_reply(reply, (HEIGHT, WIDTH)))
    peer.close()
    for a, b in zip(images, _reference(tiny_style_checkpoint, None, 3)):
        assert np.abs(a.astype(int) - b).max() <= 1


def _refusal(endpoint: str, frames_of) -> protocol.Message:
    peer = _Peer(endpoint)
    reply = peer.request(frames_of(peer.session_id))
    peer.close()
    assert reply.msg_type == MsgType.ERROR
    return reply


def test_hostile_styles_are_refused_and_the_worker_goes_on(styled_worker):
    reply = _refusal(styled_worker, lambda sid: protocol.encode(MsgType.STYLE, session_id=sid, seq=1, aux=5))
    assert reply.code == ErrorCode.BAD_VALUE and "aux" in reply.text and "styles 0..1" in reply.text
    reply = _refusal(styled_worker, lambda sid: protocol.encode(MsgType.STYLE, session_id=sid, seq=1, aux=1000))
    assert reply.code == ErrorCode.BAD_VALUE and "0..63" in reply.text
    reply = _refusal(styled_worker, lambda sid: protocol.style_request(
        sid, 1, StyleChoice(vectors=np.zeros((35, 4), np.float32))))
    assert reply.code == ErrorCode.BAD_SHAPE and "(35, 3)" in reply.text
    reply = _refusal(styled_worker, lambda sid: protocol.encode(
        MsgType.STYLE, session_id=sid, seq=1, aux=protocol.STYLE_VECTORS, arrays=[np.full((35, 3), np.inf, np.float32)]))
    assert reply.code == ErrorCode.BAD_VALUE and "vectors" in reply.text
    assert _client_frames(styled_worker, StyleChoice(index=1), 1)[0].shape == (HEIGHT, WIDTH, 3)


def test_a_style_for_a_checkpoint_without_styles_is_a_clear_error(plain_worker):
    reply = _refusal(plain_worker, lambda sid: protocol.style_request(sid, 1, StyleChoice(index=0)))
    assert reply.code == ErrorCode.BAD_VALUE and "has no styles" in reply.text
    labels, instances = _labels()
    with RenderClient(plain_worker, style=StyleChoice(index=0)) as client:
        with pytest.raises(WorkerError, match="style refused.*has no styles"):
            client.render(0, labels, instances)
    peer = _Peer(plain_worker)  # "no style" is accepted everywhere
    assert peer.request(protocol.style_request(peer.session_id, 1, None)).msg_type == MsgType.ACK
    peer.close()


def test_a_restarted_worker_renders_the_session_in_its_style_again(tiny_style_checkpoint):
    """The client sends its style again before re-priming, so the frames after a restart are the
    style's, as a fresh sequence in that style started `history_frames` earlier renders them."""
    from carla_neural.worker_supervisor import WorkerSupervisor

    labels, instances = _labels()
    frames = []
    for index in range(8):  # a car moving right
        frame = labels.copy()
        frame[16:24] = 7
        frame[16:24, 4 * index:4 * index + 12] = 26
        frames.append(frame)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with WorkerSupervisor(tiny_style_checkpoint, device="cpu", env=env, ready_timeout_s=90) as supervisor:
        def run(choice, sequence):
            with supervisor.client(style=choice) as client:
                return [client.render(index, frame).copy() for index, frame in enumerate(sequence)]

        with supervisor.client(style=StyleChoice(index=1)) as client:
            output = [client.render(index, frame).copy() for index, frame in enumerate(frames[:4])]
            os.kill(supervisor.pid, signal.SIGKILL)
            supervisor._process.wait(timeout=10)  # dead before frame 4 is sent: the new worker renders it
            output += [client.render(index, frame).copy() for index, frame in enumerate(frames[4:], start=4)]
            assert client.stats["recoveries"] == 1
        history = 2
        reprimed = run(StyleChoice(index=1), frames[4 - history:])
        other_style = run(StyleChoice(index=0), frames[4 - history:])
    for index in range(4, 8):
        np.testing.assert_array_equal(output[index], reprimed[index - (4 - history)])
        assert np.abs(output[index].astype(int) - other_style[index - (4 - history)]).mean() > 2.0
