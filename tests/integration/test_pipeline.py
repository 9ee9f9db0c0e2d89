"""The pipeline end to end: built-in world -> remap -> a real worker process -> display + recorder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import numpy as np
import pygame
import pytest

from carla_neural.backends import ClientBackend, InProcessBackend, Rendered
from carla_neural.display import Display
from carla_neural.display.live import LiveView
from carla_neural.pipeline import Pipeline, PipelineConfig, Presented
from carla_neural.recorder import Recorder, RecorderConfig, read_frames_jsonl
from carla_neural.sources.world import BuiltinWorld, WorldConfig
from carla_neural.worker_supervisor import WorkerSupervisor
from renderer.cpus import torch_threads
from renderer.loading import load_renderer

WIDTH, HEIGHT = 128, 64


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def supervisor(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with WorkerSupervisor(checkpoint, device="cpu", log_path=log_path) as running:
        running.start()
        yield running


@pytest.fixture
def display():
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    window = Display((WIDTH, HEIGHT), headless=True)
    pygame.event.clear()
    yield window
    window.close()


def world(seed: int = 3) -> BuiltinWorld:
    return BuiltinWorld(WorldConfig(width=WIDTH, height=HEIGHT, seed=seed, vehicles=6, walkers=6))


def decode_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.slow
def test_lockstep_through_a_worker_records_every_frame_in_order(
        supervisor: WorkerSupervisor, checkpoint: Path, display: Display, tmp_path: Path) -> None:
    presented: list[Presented] = []
    received: dict[int, Rendered] = {}

    class Watched(ClientBackend):
        """The client's own figures per frame, to check what reaches frames.jsonl."""

        def receive(self) -> Rendered:
            result = super().receive()
            received[result.frame_id] = result
            return result

    client = supervisor.client()
    try:
        with world() as source:
            recorder = Recorder(tmp_path, RecorderConfig(png=("label_ids",)), run_info={"source": "builtin"})
            pipeline = Pipeline(source, Watched(client), LiveView(display, source), recorder,
                                PipelineConfig(mode="lockstep"))
            summary = pipeline.run(6, on_frame=presented.append)
            recorded = recorder.close({"pipeline": summary})
        worker_threads = int(client.facts["threads"])
    finally:
        client.close()

    assert summary["frames"] == 6 and recorded["frames"] == 6
    ids = [item.frame.frame_id for item in presented]
    assert ids == sorted(ids) and len(set(ids)) == 6
    lines = read_frames_jsonl(tmp_path / "frames.jsonl")
    assert [line["frame_id"] for line in lines] == ids
    assert lines[-1]["ego"]["autopilot"] and lines[-1]["ego"]["speed_mps"] >= 0.0
    for line in lines[1:]:
        assert {"world", "remap", "wait", "render", "display", "record", "frame"} <= set(line["timings_ms"])
    # Transport where the main thread waited for the reply (else its arrival time is unknown): the
    # client's figure, never more than its round trip less the worker's render time.
    assert sorted(received) == ids
    for line in lines:
        result = received[line["frame_id"]]
        if result.transport_ms is None:
            assert "transport" not in line["timings_ms"], line
        else:
            assert line["timings_ms"]["transport"] == pytest.approx(result.transport_ms, abs=1e-3)
            assert result.worker_ms is not None
            assert result.transport_ms <= result.round_trip_ms - result.worker_ms + 1e-6
    for name in ("raw", "labels", "neural", "side_by_side"):
        assert decode_count(tmp_path / f"{name}.mp4") == 6, name
    stages = summary["stages_ms"]
    assert stages["render"]["count"] == 6 and "pipeline_overhead_pct" in summary

    # The worker rendered each frame in sequence: an in-process renderer fed the same label
    # maps in the same order, with the worker's thread count (another count changes the float
    # order, and the generator feeds its own output back), gives the same images.
    reference = load_renderer(str(checkpoint), device="cpu")
    remapper = pipeline.remapper("0.9.14")
    with world() as replay, torch_threads(worker_threads):
        for item in presented:
            frame = replay.tick()
            expected = reference.step(remapper.label_ids(frame.semantic_bgra), remapper.instance_ids(frame.instance_bgra))
            assert item.neural_rgb is not None
            assert np.abs(item.neural_rgb.astype(int) - expected).max() <= 2, item.frame.frame_id


def test_overlapped_and_serial_lockstep_render_the_same_frames(checkpoint: Path) -> None:
    outputs = {}
    # Serial; then 1, 2 and 4 frames in flight with a render thread.
    for overlap, in_flight in ((False, 1), (True, 1), (True, 2), (True, 4)):
        frames: list[tuple[int, np.ndarray]] = []
        backend = InProcessBackend(load_renderer(str(checkpoint), device="cpu"))
        with world(seed=5) as source:
            Pipeline(source, backend, config=PipelineConfig(overlap=overlap, in_flight=in_flight)).run(
                5, on_frame=lambda item: frames.append((item.frame.frame_id, item.neural_rgb)))
        backend.close()
        outputs[overlap, in_flight] = frames
    serial = outputs.pop((False, 1))
    assert len(serial) == 5
    for frames in outputs.values():
        assert [frame_id for frame_id, _ in frames] == [frame_id for frame_id, _ in serial]
        for (_, overlapped), (_, expected) in zip(frames, serial):
            assert np.array_equal(overlapped, expected)


def test_frames_in_flight_are_bounded_by_what_the_worker_queues() -> None:
    with pytest.raises(ValueError, match="in_flight must be 1..4"):
        PipelineConfig(in_flight=5)


def test_latest_wins_never_shows_a_frame_from_the_future(supervisor: WorkerSupervisor, display: Display) -> None:
    shown: list[tuple[int, np.ndarray | None]] = []
    client = supervisor.client()
    try:
        with world() as source:
            pipeline = Pipeline(source, ClientBackend(client), LiveView(display, source),
                                config=PipelineConfig(mode="latest"))

            def on_frame(item: Presented) -> None:
                shown.append((item.frame.frame_id, item.neural_rgb))

            summary = pipeline.run(12, on_frame=on_frame)
            # Wait (on the worker's replies, however slow the machine) until the last frame
            # submitted is rendered; then one more frame shows a rendered image.
            last_submitted = shown[-1][0]
            deadline = time.monotonic() + 300
            while (result := client.latest(wait_s=0.5)) is None or result.frame_id < last_submitted:
                assert time.monotonic() < deadline, f"frame {last_submitted} never came back; newest {result}"
            pipeline.run(1, on_frame=on_frame)
    finally:
        client.close()
    assert summary["mode"] == "latest" and summary["frames"] == 12
    assert shown[-1][1] is not None and shown[-1][1].shape == (HEIGHT, WIDTH, 3)
    assert client.last_result is not None and client.last_result.frame_id <= shown[-1][0]


def test_keys_drive_the_world(checkpoint: Path, display: Display) -> None:
    backend = InProcessBackend(load_renderer(str(checkpoint), device="cpu"))
    egos = []
    with world() as source:
        pipeline = Pipeline(source, backend, LiveView(display, source), config=PipelineConfig(overlap=False))
        pipeline.run(1)
        for key in (pygame.K_p, pygame.K_w):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0))
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_p, mod=0))
        pipeline.run(4, on_frame=lambda item: egos.append(item.frame.ego))
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_ESCAPE, mod=0))
        last_run: list[Presented] = []
        summary = pipeline.run(50, on_frame=last_run.append)
    assert len(last_run) == 1 and summary["frames"] == 6  # Esc stopped after the frame in hand
    assert egos[-1] is not None and not egos[-1].autopilot
    assert egos[-1].control.throttle > 0.0


def test_unknown_tags_are_reported_in_the_summary(checkpoint: Path) -> None:
    backend = InProcessBackend(load_renderer(str(checkpoint), device="cpu"))
    with world() as source:
        # Reading the 0.9.14 world with the 0.9.13 table: tags 23..28 do not exist there.
        pipeline = Pipeline(source, backend, config=PipelineConfig(tag_scheme="0.9.13", unknown_tags="unlabeled",
                                                                    overlap=False))
        summary = pipeline.run(2)
    assert summary["unknown_tags_px"] and all(int(tag) > 22 for tag in summary["unknown_tags_px"])


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_no_frame_missing(checkpoint: Path, display: Display, tmp_path: Path) -> None:
    import signal

    with WorkerSupervisor(checkpoint, device="cpu", log_path=tmp_path / "worker.log") as own:
        own.start()
        first_pid = own.pid
        client = own.client()
        try:
            with world() as source:
                recorder = Recorder(tmp_path / "run", RecorderConfig(videos=("neural",), side_by_side=False))
                pipeline = Pipeline(source, ClientBackend(client), LiveView(display, source), recorder)

                def kill_on_third(item: Presented) -> None:
                    if own.pid == first_pid and pipeline.frames_presented == 3:
                        os.kill(first_pid, signal.SIGKILL)

                summary = pipeline.run(7, on_frame=kill_on_third)
                recorder.close()
        finally:
            client.close()
        assert own.restarts >= 1 and own.pid != first_pid
    assert summary["frames"] == 7
    lines = read_frames_jsonl(tmp_path / "run" / "frames.jsonl")
    ids = [line["frame_id"] for line in lines]
    assert len(ids) == 7 and ids == list(range(ids[0], ids[0] + 7))
    assert decode_count(tmp_path / "run" / "neural.mp4") == 7


def test_overhead_is_the_share_of_frame_time_outside_the_renderer() -> None:
    from carla_neural.pipeline import overhead

    figures = overhead([(190.0, 180.0), (210.0, 180.0)])
    assert figures["pipeline_overhead_pct"] == 10.0
    assert figures["frame_ms_mean"] == 200.0 and figures["render_ms_mean"] == 180.0
    assert overhead([]) == {}


def test_overhead_leaves_out_the_first_frame_which_has_no_period(checkpoint: Path) -> None:
    backend = InProcessBackend(load_renderer(str(checkpoint), device="cpu"))
    timings: list[dict[str, float]] = []
    with world() as source:
        pipeline = Pipeline(source, backend)
        pipeline.run(3, on_frame=lambda presented: timings.append(dict(presented.frame.timings_ms)))
        summary = pipeline.run(3, on_frame=lambda presented: timings.append(dict(presented.frame.timings_ms)))
    assert summary["stages_ms"]["render"]["count"] == 6 and summary["stages_ms"]["frame"]["count"] == 4
    paired = [frame for frame in timings if "frame" in frame]
    assert len(paired) == 4 and "frame" not in timings[0] and "frame" not in timings[3]
    assert summary["render_ms_mean"] == pytest.approx(sum(frame["render"] for frame in paired) / 4, abs=1e-3)
    assert summary["frame_ms_mean"] == pytest.approx(sum(frame["frame"] for frame in paired) / 4, abs=1e-3)


def test_max_fps_caps_the_frame_rate(checkpoint: Path) -> None:
    backend = InProcessBackend(load_renderer(str(checkpoint), device="cpu"))
    with world() as source:
        summary = Pipeline(source, backend, config=PipelineConfig(overlap=False, max_fps=10.0)).run(4)
    assert summary["stages_ms"]["frame"]["median"] >= 99.0


def test_a_labels_only_source_without_weather_or_mounts_runs(checkpoint: Path, display: Display,
                                                            tmp_path: Path) -> None:
    from carla_neural.sources.base import Frame, Source

    class LabelsOnly(Source):
        """What a replay of label maps gives: semantic images, nothing else."""

        def __init__(self) -> None:
            self.frame_id = 0

        def tick(self) -> Frame:
            self.frame_id += 1
            semantic = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
            semantic[..., 2] = 11  # sky
            semantic[HEIGHT // 2:, :, 2] = 1  # road
            return Frame(self.frame_id, 0.05 * self.frame_id, semantic)

    for key in (pygame.K_TAB, pygame.K_c, pygame.K_p):
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=0))
    backend = InProcessBackend(load_renderer(str(checkpoint), device="cpu"))
    recorder = Recorder(tmp_path, RecorderConfig(videos=("labels", "neural")))
    labels_only = LabelsOnly()
    summary = Pipeline(labels_only, backend, LiveView(display, labels_only), recorder).run(3)
    recorder.close()
    assert summary["frames"] == 3
    assert decode_count(tmp_path / "side_by_side.mp4") == 3  # labels | neural only
