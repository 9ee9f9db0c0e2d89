"""The render worker as a real process: every class of bad message gets an error reply that names
the problem, and the worker goes on serving everyone else."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from renderer import protocol
from renderer.protocol import ErrorCode, Flag, Message, MsgType
from renderer.worker import READY_PREFIX

HEIGHT, WIDTH = 32, 64
# Small limits so that the size checks can be reached with small messages.
WORKER_ARGS = ["--max-sessions", "4", "--max-pending", "2", "--max-queue", "6", "--max-side", "256",
               "--max-pixels", "16384", "--session-ttl", "30"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


CLI = [sys.executable, "-c", "from carla_neural.cli import main; main()"]


def start_worker(checkpoint: Path, log_path: Path, *extra: str, cli: bool = False) -> tuple[subprocess.Popen, str]:
    """Start `python -m renderer.worker` (or `carla-neural worker`) and wait for its ready line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    program = [*CLI, "-v", "worker"] if cli else [sys.executable, "-m", "renderer.worker"]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([*program, "--checkpoint", str(checkpoint),
                                    "--bind", "tcp://127.0.0.1:*", "--device", "cpu", *extra],
                                   stdout=subprocess.PIPE, stderr=log_file, env=env, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the ready line, or EOF if it died
    if not line.startswith(READY_PREFIX):
        process.kill()
        pytest.fail(f"worker did not start: {line!r}\n{log_path.read_text()[-2000:]}")
    endpoint = line.split("endpoint=")[1].split()[0]
    return process, endpoint


@pytest.fixture(scope="module")
def worker(checkpoint, tmp_path_factory):
    # `carla-neural worker`, the command users run
    process, endpoint = start_worker(checkpoint, tmp_path_factory.mktemp("log") / "worker.log", *WORKER_ARGS,
                                     cli=True)
    yield endpoint
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("worker did not stop on SIGTERM")
    assert process.returncode == 0


class Peer:
    """A raw DEALER socket that speaks (or breaks) the protocol."""

    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.session_id = int.from_bytes(os.urandom(8), "little") | 1
        self.seq = 0

    def send(self, frames: list) -> None:
        self.socket.send_multipart(frames, copy=False)

    def receive(self, timeout_s: float = 20.0) -> Message:
        assert self.socket.poll(int(timeout_s * 1000)), "no reply from the worker"
        return protocol.decode(self.socket.recv_multipart())

    def request(self, frames: list, timeout_s: float = 20.0) -> Message:
        self.send(frames)
        return self.receive(timeout_s)

    def render_frames(self, label_ids: np.ndarray, flags: int = Flag.RESET, instance_ids=None) -> list:
        self.seq += 1
        return protocol.render_request(self.session_id, self.seq, self.seq, label_ids, instance_ids, flags=int(flags))

    def bye(self) -> None:
        self.seq += 1
        self.request(protocol.encode(MsgType.BYE, session_id=self.session_id, seq=self.seq))
        self.socket.close(linger=0)


def labels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 34, (HEIGHT, WIDTH), dtype=np.uint8)


def assert_serves(endpoint: str) -> None:
    """A well-behaved client still gets its frame rendered."""
    peer = Peer(endpoint)
    reply = peer.request(peer.render_frames(labels(1)))
    assert reply.msg_type == MsgType.RENDER_REPLY, reply.text
    assert protocol.check_render_reply(reply, (HEIGHT, WIDTH)).shape == (HEIGHT, WIDTH, 3)
    peer.bye()


def assert_refused(endpoint: str, frames: list, code: ErrorCode, *words: str) -> Message:
    peer = Peer(endpoint)
    reply = peer.request(frames)
    assert reply.msg_type == MsgType.ERROR, f"expected an error reply, got {reply.msg_type.name}"
    assert reply.code == code, f"expected {code.name}, got {ErrorCode(reply.code).name}: {reply.text}"
    for word in words:
        assert word in reply.text, f"{word!r} not in {reply.text!r}"
    peer.socket.close(linger=0)
    assert_serves(endpoint)
    return reply


def good_frames(session_id: int = 99, seq: int = 5, frame_id: int = 12) -> list[bytes]:
    frames = protocol.render_request(session_id, seq, frame_id, labels(), flags=int(Flag.RESET))
    return [bytes(frame) if not isinstance(frame, np.ndarray) else frame.tobytes() for frame in frames]


def patched(frames: list[bytes], offset: int, raw: bytes) -> list[bytes]:
    header = bytearray(frames[0])
    header[offset:offset + len(raw)] = raw
    return [bytes(header), *frames[1:]]


def test_worker_renders_and_answers_pings(worker):
    peer = Peer(worker)
    pong = peer.request(protocol.encode(MsgType.PING, seq=1))
    assert pong.msg_type == MsgType.PONG and '"protocol": 1' in pong.text
    reply = peer.request(peer.render_frames(labels(), instance_ids=np.full((HEIGHT, WIDTH), 26001, np.int32)))
    assert reply.msg_type == MsgType.RENDER_REPLY and reply.frame_id == peer.seq and reply.aux > 0
    assert protocol.check_render_reply(reply, (HEIGHT, WIDTH)).shape == (HEIGHT, WIDTH, 3)
    peer.bye()


def test_bad_magic(worker):
    assert_refused(worker, patched(good_frames(), 0, b"HTTP"), ErrorCode.BAD_MAGIC, "magic", "HTTP")


def test_unknown_version_echoes_the_request_ids(worker):
    reply = assert_refused(worker, patched(good_frames(session_id=99, seq=5), 4, b"\x07"),
                           ErrorCode.BAD_VERSION, "version 7")
    assert (reply.session_id, reply.seq) == (99, 5)


def test_unknown_type_and_reply_types(worker):
    assert_refused(worker, patched(good_frames(), 5, b"\x63"), ErrorCode.BAD_TYPE, "unknown message type 99")
    assert_refused(worker, protocol.encode(MsgType.ACK, session_id=3, seq=1), ErrorCode.BAD_TYPE, "ACK")


def test_unknown_flags(worker):
    assert_refused(worker, patched(good_frames(), 6, b"\x00\x01"), ErrorCode.BAD_FLAGS, "0x100")


def test_wrong_frame_count(worker):
    frames = good_frames()
    assert_refused(worker, frames[:1], ErrorCode.BAD_FRAME_COUNT, "needs 2 frame(s), got 1")
    assert_refused(worker, [*frames, b"more"], ErrorCode.BAD_FRAME_COUNT, "got 3")
    assert_refused(worker, protocol.encode(MsgType.RESET, session_id=4, arrays=[labels()]),
                   ErrorCode.BAD_FRAME_COUNT, "RESET carries no arrays, got 1")
    # Heartbeats and goodbyes too: refused, not answered with PONG or ACK.
    assert_refused(worker, protocol.encode(MsgType.PING, seq=2, arrays=[labels()]),
                   ErrorCode.BAD_FRAME_COUNT, "PING carries no arrays, got 1")
    assert_refused(worker, protocol.encode(MsgType.BYE, session_id=4, arrays=[labels(), labels()]),
                   ErrorCode.BAD_FRAME_COUNT, "BYE carries no arrays, got 2")


def test_wrong_buffer_size(worker):
    frames = good_frames()
    assert_refused(worker, [frames[0], frames[1][:100]], ErrorCode.BAD_SIZE, "100 bytes",
                   f"needs {HEIGHT * WIDTH}")


def test_wrong_dtypes(worker):
    assert_refused(worker, patched(good_frames(), 40, b"\x4d"), ErrorCode.BAD_DTYPE, "dtype code 77")
    floats = protocol.render_request(5, 1, 1, labels().astype(np.float32), flags=int(Flag.RESET))
    assert_refused(worker, floats, ErrorCode.BAD_DTYPE, "label_ids must be uint8", "float32")
    wide = protocol.render_request(5, 1, 1, labels(), labels().astype(np.int64).astype(np.float32),
                                   flags=int(Flag.RESET))
    assert_refused(worker, wide, ErrorCode.BAD_DTYPE, "instance_ids must be int32")


def test_wrong_shapes(worker):
    cube = protocol.render_request(5, 1, 1, labels()[:, :, None], flags=int(Flag.RESET))
    assert_refused(worker, cube, ErrorCode.BAD_SHAPE, "label_ids must be (H, W)")
    mismatch = protocol.render_request(5, 1, 1, labels(), np.zeros((HEIGHT, WIDTH - 1), np.int32),
                                       flags=int(Flag.RESET))
    assert_refused(worker, mismatch, ErrorCode.BAD_SHAPE, "differs")


def test_absurd_dimensions(worker):
    huge = patched(good_frames(), 44, (100_000).to_bytes(4, "little") * 2)
    assert_refused(worker, huge, ErrorCode.TOO_LARGE, "limits", "100000")
    over_limit = protocol.render_request(5, 1, 1, np.zeros((128, 256), np.uint8), flags=int(Flag.RESET))
    assert_refused(worker, over_limit, ErrorCode.TOO_LARGE, "pixels <= 16384")


def test_label_ids_the_model_does_not_know(worker):
    frames = protocol.render_request(5, 1, 1, np.full((HEIGHT, WIDTH), 200, np.uint8), flags=int(Flag.RESET))
    assert_refused(worker, frames, ErrorCode.BAD_VALUE, "label id 200", "0..34")


def test_garbage_frames(worker):
    rng = np.random.default_rng(3)
    assert_refused(worker, [b""], ErrorCode.BAD_HEADER, "0 bytes")
    assert_refused(worker, [rng.bytes(20)], ErrorCode.BAD_HEADER, "needs at least 40")
    for _ in range(5):
        peer = Peer(worker)
        reply = peer.request([rng.bytes(int(rng.integers(40, 200))) for _ in range(int(rng.integers(1, 4)))])
        assert reply.msg_type == MsgType.ERROR and reply.text
        peer.socket.close(linger=0)
    assert_serves(worker)


def test_garbage_bytes_on_the_raw_tcp_port(worker):
    host, port = worker.removeprefix("tcp://").rsplit(":", 1)
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", np.random.default_rng(4).bytes(4096)):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            try:
                raw.sendall(payload)
                raw.recv(1024)  # libzmq answers with its greeting, then drops the connection
            except OSError:
                pass
    assert_serves(worker)


def test_frames_over_the_size_cap_drop_only_that_connection(worker):
    peer = Peer(worker)
    peer.send([np.zeros(1 << 20, np.uint8)])  # 1 MiB frame, far above the cap: libzmq disconnects
    assert not peer.socket.poll(500), "an oversized frame must not be read, let alone answered"
    peer.socket.close(linger=0)
    assert_serves(worker)


def test_render_without_a_started_session(worker):
    frames = protocol.render_request(0x1234, 1, 1, labels())
    assert_refused(worker, frames, ErrorCode.UNKNOWN_SESSION, "RESET")
    assert_refused(worker, protocol.render_request(0, 1, 1, labels(), flags=int(Flag.RESET)),
                   ErrorCode.BAD_VALUE, "session id 0")


def test_too_many_sessions(worker):
    peers = []
    try:
        for _ in range(5):
            peer = Peer(worker)
            peers.append(peer)
            reply = peer.request(protocol.encode(MsgType.RESET, session_id=peer.session_id, seq=1))
            if reply.msg_type == MsgType.ERROR:
                break
        assert reply.code == ErrorCode.TOO_MANY_SESSIONS and "max 4" in reply.text, reply.text
        peers.pop().socket.close(linger=0)
        peers.pop(0).bye()  # ending one session makes room for another
        assert_serves(worker)
    finally:
        for peer in peers:
            peer.bye()


def test_a_flood_is_refused_while_other_clients_are_served(worker):
    flooder = Peer(worker)
    frame = labels()
    count = 60
    for index in range(count):
        flooder.send(flooder.render_frames(frame, flags=Flag.RESET if index == 0 else 0))
    other = Peer(worker)
    served = other.request(other.render_frames(labels(2)), timeout_s=30)
    assert served.msg_type == MsgType.RENDER_REPLY, served.text
    replies = [flooder.receive(timeout_s=30) for _ in range(count)]
    busy = [reply for reply in replies if reply.msg_type == MsgType.ERROR]
    rendered = [reply for reply in replies if reply.msg_type == MsgType.RENDER_REPLY]
    assert busy and all(reply.code == ErrorCode.BUSY for reply in busy)
    assert "queued" in busy[0].text or "queue is full" in busy[0].text
    assert len(rendered) >= 2 and len(busy) + len(rendered) == count
    other.bye()
    flooder.bye()


def test_sessions_are_separate_and_reset_restarts_a_sequence(worker):
    sequence_a = [labels(10 + index) for index in range(4)]
    sequence_b = [labels(20 + index) for index in range(4)]

    def run_alone(sequence):
        peer = Peer(worker)
        outputs = [protocol.check_render_reply(peer.request(peer.render_frames(lab, flags=Flag.RESET if i == 0 else 0)),
                                               (HEIGHT, WIDTH)).copy() for i, lab in enumerate(sequence)]
        peer.bye()
        return outputs

    alone_a, alone_b = run_alone(sequence_a), run_alone(sequence_b)
    peer_a, peer_b = Peer(worker), Peer(worker)
    for index, (lab_a, lab_b) in enumerate(zip(sequence_a, sequence_b)):
        flags = Flag.RESET if index == 0 else 0
        rgb_a = protocol.check_render_reply(peer_a.request(peer_a.render_frames(lab_a, flags)), (HEIGHT, WIDTH))
        rgb_b = protocol.check_render_reply(peer_b.request(peer_b.render_frames(lab_b, flags)), (HEIGHT, WIDTH))
        # interleaving does not leak one session's history into the other
        np.testing.assert_array_equal(rgb_a, alone_a[index])
        np.testing.assert_array_equal(rgb_b, alone_b[index])
    assert not np.array_equal(alone_a[-1], alone_b[-1])
    reset = peer_a.request(protocol.encode(MsgType.RESET, session_id=peer_a.session_id, seq=99))
    assert reset.msg_type == MsgType.ACK and reset.seq == 99
    again = protocol.check_render_reply(peer_a.request(peer_a.render_frames(sequence_a[0], 0)), (HEIGHT, WIDTH))
    np.testing.assert_array_equal(again, alone_a[0])
    peer_a.bye()
    peer_b.bye()


def test_cli_refuses_a_public_bind_and_a_missing_checkpoint(checkpoint, tmp_path):
    result = subprocess.run([*CLI, "worker", "--checkpoint", str(checkpoint),
                             "--bind", "tcp://0.0.0.0:5999"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--allow-remote" in result.stderr
    result = subprocess.run([sys.executable, "-m", "renderer.worker", "--checkpoint", str(tmp_path / "nope"),
                             "--bind", "tcp://127.0.0.1:*"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "checkpoint not found" in result.stderr


@pytest.mark.slow
def test_worker_stops_cleanly_and_session_expiry_is_named(checkpoint, tmp_path):
    process, endpoint = start_worker(checkpoint, tmp_path / "worker.log", "--session-ttl", "0.5")
    try:
        peer = Peer(endpoint)
        assert peer.request(peer.render_frames(labels())).msg_type == MsgType.RENDER_REPLY
        time.sleep(2.0)  # past the TTL and one sweep
        reply = peer.request(peer.render_frames(labels(), flags=0))
        assert reply.code == ErrorCode.UNKNOWN_SESSION and "expired" in reply.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert "expired" in (tmp_path / "worker.log").read_text()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux CPU affinity (sched_setaffinity)")
def test_worker_pins_itself_to_the_cpus_it_is_given(checkpoint, tmp_path):
    last = max(os.sched_getaffinity(0))
    process, endpoint = start_worker(checkpoint, tmp_path / "worker.log", "--cpus", str(last), "--threads", "1",
                                     cli=True)
    try:
        # Every thread of the worker, those started after pinning (torch, ZeroMQ) included.
        for task in os.listdir(f"/proc/{process.pid}/task"):
            assert os.sched_getaffinity(int(task)) == {last}
        peer = Peer(endpoint)
        facts = json.loads(peer.request(protocol.encode(MsgType.PING, session_id=peer.session_id, seq=1)).text)
        assert facts["cpus"] == str(last) and facts["threads"] == 1
        assert_serves(endpoint)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_worker_refuses_cpus_the_machine_does_not_have(checkpoint):
    count = os.cpu_count() or 1
    result = subprocess.run([*CLI, "worker", "--checkpoint", str(checkpoint), "--bind", "tcp://127.0.0.1:*",
                             "--cpus", str(count + 3)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"this machine has CPUs 0-{count - 1}" in result.stderr
    result = subprocess.run([*CLI, "worker", "--checkpoint", str(checkpoint), "--cpus", "two"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "must look like 1, 2-5 or 0,2-3" in result.stderr


def _host_has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_an_ipv6_loopback_worker_serves_a_render_client(checkpoint, tmp_path) -> None:
    from carla_neural.render_client import RenderClient

    if not _host_has_ipv6_loopback():
        pytest.skip("needs an IPv6 loopback address (::1) on this host")
    process, endpoint = start_worker(checkpoint, tmp_path / "worker.log", "--bind", "tcp://[::1]:*")
    try:
        assert endpoint.startswith("tcp://[::1]:")
        with RenderClient(endpoint) as client:
            assert client.render(1, labels(3)).shape == (HEIGHT, WIDTH, 3)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_worker_serves_the_openvino_engine_like_pytorch(checkpoint, tmp_path, openvino_cache, monkeypatch):
    from renderer.engines import engine_status
    from renderer.loading import load_renderer

    usable, reason = engine_status("openvino", "cpu")
    if not usable:
        pytest.skip(reason)
    monkeypatch.setenv("CARLA_NEURAL_CACHE", str(openvino_cache))
    process, endpoint = start_worker(checkpoint, tmp_path / "worker.log", "--engine", "openvino", "--threads", "1",
                                     cli=True)
    try:
        peer = Peer(endpoint)
        facts = json.loads(peer.request(protocol.encode(MsgType.PING, session_id=peer.session_id, seq=1)).text)
        assert facts["engine"] == "openvino"
        plain = load_renderer(checkpoint, engine="torch", device="cpu")
        # Frame 0 is the single-image start; frames 1-2 run the OpenVINO body on the worker's own history.
        for index in range(3):
            frame = labels(10 + index)
            reply = peer.request(peer.render_frames(frame, flags=Flag.RESET if index == 0 else 0), timeout_s=600)
            assert reply.msg_type == MsgType.RENDER_REPLY, reply.text
            rgb = protocol.check_render_reply(reply, (HEIGHT, WIDTH))
            assert np.abs(rgb.astype(int) - plain.step(frame).astype(int)).max() <= 1
        peer.bye()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
