"""RenderClient and WorkerSupervisor against real worker processes: lock-step output stays complete
when the worker is killed or hung, latest-wins stays interactive, and failures read clearly."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from carla_neural.render_client import RenderClient, WorkerUnavailable
from carla_neural.worker_supervisor import WorkerStartError, WorkerSupervisor
from renderer import protocol
from renderer.protocol import MsgType

HEIGHT, WIDTH = 32, 64
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def supervisor(checkpoint):
    with WorkerSupervisor(checkpoint, device="cpu", env=ENV, ready_timeout_s=90) as running:
        yield running
    assert not running.running


def sequence(count: int, seed: int = 0) -> list[np.ndarray]:
    """A moving label pattern: a band of cars sliding across road and sky."""
    rng = np.random.default_rng(seed)
    base = np.where(np.arange(HEIGHT)[:, None] < HEIGHT // 2, 23, 7).astype(np.uint8).repeat(WIDTH, 1)
    frames = []
    for index in range(count):
        frame = base.copy()
        start = (3 * index) % WIDTH
        frame[HEIGHT // 2:HEIGHT // 2 + 6, start:start + 10] = 26
        frame[rng.integers(0, HEIGHT), :] = rng.integers(0, 34)
        frames.append(frame)
    return frames


def render_all(client: RenderClient, frames: list[np.ndarray], first_id: int = 0,
               after_frame=None) -> list[tuple[int, np.ndarray, int]]:
    """Lock-step run, like the recorder: (frame id, rgb copy, worker generation) per frame."""
    output = []
    for offset, label_ids in enumerate(frames):
        frame_id = first_id + offset
        rgb = client.render(frame_id, label_ids)
        output.append((frame_id, rgb.copy(), client.supervisor.generation))
        if after_frame is not None:
            after_frame(frame_id)
    return output


def render_pipelined(client: RenderClient, frames: list[np.ndarray], after_frame=None,
                     sent: int = 0) -> list[tuple[int, np.ndarray, int]]:
    """Lock-step with 2 frames in flight, as the pipeline runs it, sending from one reused buffer;
    ``sent`` frames were already sent by the caller."""
    output = []
    buffer = np.empty_like(frames[0])
    while len(output) < len(frames):
        while sent < len(frames) and client.in_flight < 2:
            buffer[:] = frames[sent]
            client.send(sent, buffer)  # the client keeps its own copy
            sent += 1
        result = client.receive()
        output.append((result.frame_id, result.rgb.copy(), client.supervisor.generation))
        if after_frame is not None:
            after_frame(result.frame_id)
    return output


def reference(supervisor: WorkerSupervisor, frames: list[np.ndarray]) -> list[np.ndarray]:
    with supervisor.client() as client:
        return [client.render(index, label_ids).copy() for index, label_ids in enumerate(frames)]


def check_recovered_run(supervisor, frames, output, generation_before, history):
    """Every frame id once, in order; frames before the failure match an uninterrupted run; frames
    after it match a sequence started `history` frames before the first one the new worker rendered."""
    assert [frame_id for frame_id, _, _ in output] == list(range(len(frames)))
    assert all(rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8 for _, rgb, _ in output)
    first_new = next(index for index, (_, _, generation) in enumerate(output) if generation > generation_before)
    uninterrupted = reference(supervisor, frames)
    for index in range(first_new):
        np.testing.assert_array_equal(output[index][1], uninterrupted[index])
    start = max(0, first_new - history)
    reprimed = reference(supervisor, frames[start:])
    for index in range(first_new, len(frames)):
        np.testing.assert_array_equal(output[index][1], reprimed[index - start])


@pytest.mark.slow
def test_lock_step_run_survives_sigkill_mid_run(supervisor):
    frames = sequence(14)
    restarts, generation = supervisor.restarts, supervisor.generation
    pid = supervisor.pid
    reached = threading.Event()

    def killer():
        reached.wait(60)
        time.sleep(0.002)  # while frame 6 is on its way or rendering
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=killer)
    thread.start()
    with supervisor.client() as client:
        output = render_all(client, frames, after_frame=lambda frame_id: frame_id == 5 and reached.set())
        history = client.facts["history_frames"]
        assert client.stats["recoveries"] == 1 and client.stats["reprimed_frames"] == history == 2
    thread.join()
    assert supervisor.restarts == restarts + 1 and supervisor.pid != pid
    assert "SIGKILL" in supervisor.last_restart_reason
    check_recovered_run(supervisor, frames, output, generation, history)


def test_pipelined_lock_step_renders_what_one_frame_at_a_time_does(supervisor):
    frames = sequence(8, seed=6)
    with supervisor.client() as client:
        output = render_pipelined(client, frames)
        with pytest.raises(RuntimeError, match="no frame in flight"):
            client.receive()
        client.send(8, frames[0])
        client.send(9, frames[1])
        with pytest.raises(RuntimeError, match=r"receive\(\) one before sending another"):
            client.send(10, frames[2])
        with pytest.raises(RuntimeError, match="not received yet"):
            client.render(10, frames[2])
        assert [client.receive().frame_id for _ in range(2)] == [8, 9]
        # One frame at a time the client always waits for the reply, so its transport is known.
        client.render(10, frames[2])
        assert client.last_result.transport_ms is not None and client.last_result.queued_ms == 0.0
    assert [frame_id for frame_id, _, _ in output] == list(range(8))
    for (_, rgb, _), expected in zip(output, reference(supervisor, frames)):
        np.testing.assert_array_equal(rgb, expected)


@pytest.mark.slow
def test_pipelined_lock_step_survives_sigkill_with_frames_in_flight(supervisor):
    frames = sequence(14, seed=7)
    restarts, generation = supervisor.restarts, supervisor.generation
    pid = supervisor.pid

    def kill_after_5(frame_id):
        if frame_id == 5:  # frame 6 is rendering or queued
            os.kill(pid, signal.SIGKILL)

    with supervisor.client() as client:
        output = render_pipelined(client, frames, after_frame=kill_after_5)
        assert client.stats["recoveries"] == 1 and client.stats["reprimed_frames"] == 2
    assert supervisor.restarts == restarts + 1
    check_recovered_run(supervisor, frames, output, generation, 2)


@pytest.mark.slow
def test_busy_refusals_of_frames_in_flight_are_sent_again_in_order(checkpoint):
    frames = sequence(5, seed=8)
    # A worker that queues one frame per session refuses the second frame in flight (BUSY).
    with WorkerSupervisor(checkpoint, device="cpu", env=ENV, ready_timeout_s=90,
                          worker_args=["--max-pending", "1"]) as strict:
        with strict.client() as client:
            # The worker is held while the first two frames are sent, so that it reads both before it
            # can reply to the first: the second is refused however fast the first renders.
            os.kill(strict.pid, signal.SIGSTOP)
            try:
                client.send(0, frames[0])
                client.send(1, frames[1])
            finally:
                os.kill(strict.pid, signal.SIGCONT)
            output = render_pipelined(client, frames, sent=2)
            assert client.stats["busy_resent"] >= 1 and client.stats["recoveries"] == 0
    assert [frame_id for frame_id, _, _ in output] == list(range(5))
    assert all(rgb.shape == (HEIGHT, WIDTH, 3) for _, rgb, _ in output)


@pytest.mark.slow
def test_hung_worker_is_detected_and_replaced(supervisor):
    frames = sequence(10, seed=1)
    restarts, generation = supervisor.restarts, supervisor.generation
    pid = supervisor.pid

    def hang(frame_id):
        if frame_id == 3:
            os.kill(pid, signal.SIGSTOP)

    with supervisor.client(heartbeat_s=0.5, liveness=4) as client:
        output = render_all(client, frames, after_frame=hang)
    assert supervisor.restarts == restarts + 1 and supervisor.pid != pid
    assert "no reply or heartbeat" in supervisor.last_restart_reason
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the stopped worker was killed, not left behind
    check_recovered_run(supervisor, frames, output, generation, 2)


@pytest.mark.slow
def test_latest_wins_keeps_two_in_flight_drops_stale_and_survives_a_kill(supervisor):
    frames = sequence(40, seed=2)
    seen: list[int] = []
    with supervisor.client() as client:
        for frame_id, label_ids in enumerate(frames):
            client.submit(frame_id, label_ids)
            assert client.in_flight <= 2
            result = client.latest()
            if result is not None and (not seen or result.frame_id != seen[-1]):
                seen.append(result.frame_id)
                assert result.rgb.shape == (HEIGHT, WIDTH, 3) and result.latency_ms >= result.render_ms
            if frame_id == 20:
                os.kill(supervisor.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (result := client.latest(wait_s=0.2)) is None or result.frame_id != len(frames) - 1:
            assert time.monotonic() < deadline, f"last frame never shown; newest {result}"
        seen.append(result.frame_id)
        assert client.stats["recoveries"] == 1
    assert seen == sorted(set(seen)), "a stale frame was shown after a newer one"


def test_two_clients_hold_separate_sessions(supervisor):
    frames_a, frames_b = sequence(5, seed=3), sequence(5, seed=4)
    alone_a, alone_b = reference(supervisor, frames_a), reference(supervisor, frames_b)
    with supervisor.client() as client_a, supervisor.client() as client_b:
        assert client_a.session_id != client_b.session_id
        for index in range(5):
            np.testing.assert_array_equal(client_a.render(index, frames_a[index]), alone_a[index])
            np.testing.assert_array_equal(client_b.render(index, frames_b[index]), alone_b[index])


def test_a_session_lost_on_a_live_worker_is_reprimed_without_restart(supervisor):
    frames = sequence(6, seed=5)
    restarts = supervisor.restarts
    with supervisor.client() as client:
        for index in range(3):
            client.render(index, frames[index])
        intruder = zmq.Context.instance().socket(zmq.DEALER)
        intruder.connect(supervisor.endpoint)
        intruder.send_multipart(protocol.encode(MsgType.BYE, session_id=client.session_id, seq=1))
        assert intruder.poll(10_000) and protocol.decode(intruder.recv_multipart()).msg_type == MsgType.ACK
        intruder.close(linger=0)
        for index in range(3, 6):
            assert client.render(index, frames[index]).shape == (HEIGHT, WIDTH, 3)
        assert client.stats["reprimed_frames"] == 2 and client.stats["resyncs"] == 1
    assert supervisor.restarts == restarts


@pytest.mark.slow
def test_unsupervised_client_reconnects_when_the_worker_comes_back_else_gives_up(checkpoint):
    """A worker someone else runs (another host, a container with a restart policy): the client
    retries on fresh sockets until it answers again and re-primes; if it never does, a clear error."""
    frames = sequence(7, seed=6)
    with WorkerSupervisor(checkpoint, device="cpu", env=ENV) as external:
        with RenderClient(external.endpoint, retries=20, heartbeat_s=0.5) as client:
            for index in range(3):
                client.render(index, frames[index])
            os.kill(external.pid, signal.SIGKILL)
            comeback = threading.Thread(target=external.restart, args=("the test restarts it",))
            comeback.start()
            output = [client.render(index, frames[index]).copy() for index in range(3, 6)]
            comeback.join()
            # Either the client noticed the dead worker and reconnected (a recovery), or ZeroMQ had
            # already reconnected to the restarted worker, which no longer knew the session (a
            # resync): which one depends on how fast the worker comes back. Both re-prime.
            assert client.stats["recoveries"] + client.stats["resyncs"] >= 1
            assert client.stats["reprimed_frames"] == 2
            expected = reference(external, frames[1:6])[2:]
            for rgb, want in zip(output, expected):
                np.testing.assert_array_equal(rgb, want)
            client.retries = 1
            os.kill(external.pid, signal.SIGKILL)
            with pytest.raises(WorkerUnavailable, match="did not come back after 1 retries"):
                client.render(6, frames[6])


def test_bad_input_is_refused_before_sending(supervisor):
    with supervisor.client() as client:
        with pytest.raises(ValueError, match=r"label_ids must be \(H, W\) uint8"):
            client.render(0, np.zeros((HEIGHT, WIDTH), np.int64))
        with pytest.raises(ValueError, match="differs"):
            client.render(0, sequence(1)[0], np.zeros((HEIGHT, 3), np.int32))
        client.render(0, sequence(1)[0], np.full((HEIGHT, WIDTH), 26001, np.uint16))
        with pytest.raises(RuntimeError, match="lockstep mode"):
            client.submit(1, sequence(1)[0])


def test_no_worker_reachable():
    with zmq.Context.instance().socket(zmq.ROUTER) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    client = RenderClient(f"tcp://127.0.0.1:{port}", connect_timeout_s=1.0, heartbeat_s=0.2)
    with pytest.raises(WorkerUnavailable, match="no worker answered at .*`carla-neural worker --checkpoint"):
        client.connect()


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        WorkerSupervisor(tmp_path / "missing").start()


@pytest.mark.slow
def test_worker_crash_at_start_shows_its_output(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    (broken / "model.safetensors").write_bytes(b"")
    supervisor = WorkerSupervisor(broken, device="cpu", env=ENV)
    with pytest.raises(WorkerStartError, match=r"(?s)exited with code 4 before it was ready.*broken/config.json is not a JSON object"):
        supervisor.start()
    supervisor.stop()


@pytest.mark.slow
def test_context_managers_stop_the_worker_even_on_error(checkpoint):
    with pytest.raises(KeyError):
        with WorkerSupervisor(checkpoint, device="cpu", env=ENV) as supervisor:
            pid = supervisor.pid
            log_path = supervisor.log_path
            with supervisor.client() as client:
                client.render(0, sequence(1)[0])
            raise KeyError("boom")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not log_path.exists()
