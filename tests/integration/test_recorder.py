"""Recorder: real H.264 files decoded with PyAV, PNGs read back, and a real SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from carla_neural.recorder import FrameRecord, Recorder, RecorderConfig, RecorderError, read_frames_jsonl
from carla_neural.sources.encoding import read_flow_png

WIDTH, HEIGHT = 64, 48


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def frame_record(index: int) -> FrameRecord:
    """A frame whose images encode its index (grey level 10 * index) so order can be checked."""
    level = (10 * index) % 250
    rng = np.random.default_rng(index)
    return FrameRecord(
        frame_id=100 + index,
        sim_time=0.05 * index,
        timings_ms={"world": 1.0 + index, "render": 20.0},
        raw=np.full((HEIGHT, WIDTH, 3), level, np.uint8),
        labels=np.full((HEIGHT, WIDTH, 3), (level, 0, 0), np.uint8),
        neural=np.full((HEIGHT, WIDTH, 3), 255 - level, np.uint8),
        label_ids=rng.integers(0, 34, (HEIGHT, WIDTH), dtype=np.uint8),
        instance_ids=rng.integers(0, 33999, (HEIGHT, WIDTH)).astype(np.int32),
        flow_px=rng.uniform(-30, 30, (HEIGHT, WIDTH, 2)).astype(np.float32),
    )


def test_run_folder_has_every_stream_and_reads_back(tmp_path: Path) -> None:
    config = RecorderConfig(fps=20, png=("raw", "neural", "label_ids", "instance_ids", "flow"))
    records = [frame_record(i) for i in range(6)]
    with Recorder(tmp_path, config, run_info={"source": "test", "size": [WIDTH, HEIGHT]}) as recorder:
        for record in records:
            recorder.write(record)
    for name in ("raw", "labels", "neural", "side_by_side"):
        frames = decode_frames(tmp_path / f"{name}.mp4")
        assert len(frames) == 6, name
        expected_width = 3 * WIDTH if name == "side_by_side" else WIDTH
        assert frames[0].shape == (HEIGHT, expected_width, 3)
    raw = decode_frames(tmp_path / "raw.mp4")
    levels = [float(frame.mean()) for frame in raw]
    assert np.allclose(levels, [10 * i for i in range(6)], atol=3)

    lines = read_frames_jsonl(tmp_path / "frames.jsonl")
    assert [line["frame_id"] for line in lines] == [100 + i for i in range(6)]
    assert lines[2]["sim_time"] == pytest.approx(0.1)
    assert lines[2]["timings_ms"]["world"] == 3.0 and "record" in lines[2]["timings_ms"]

    run = json.loads((tmp_path / "run.json").read_text())
    assert run["source"] == "test" and run["fps"] == 20 and "side_by_side.mp4" in run["videos"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["timings_ms"]["world"]["max"] == 6.0
    assert summary["video_frames"]["neural.mp4"] == 6

    record = records[3]
    stem = "000103.png"
    assert (cv2.imread(str(tmp_path / "frames/label_ids" / stem), cv2.IMREAD_UNCHANGED) == record.label_ids).all()
    instance = cv2.imread(str(tmp_path / "frames/instance_ids" / stem), cv2.IMREAD_UNCHANGED)
    assert instance.dtype == np.uint16 and (instance == record.instance_ids).all()
    flow_px, valid = read_flow_png(tmp_path / "frames/flow" / stem)
    assert valid.all() and np.abs(flow_px - record.flow_px).max() <= 1 / 64
    raw_png = cv2.cvtColor(cv2.imread(str(tmp_path / "frames/raw" / stem)), cv2.COLOR_BGR2RGB)
    assert (raw_png == record.raw).all()


def test_odd_sizes_are_padded_not_refused(tmp_path: Path) -> None:
    with Recorder(tmp_path, RecorderConfig(videos=("neural",), side_by_side=False)) as recorder:
        for _ in range(3):
            recorder.write(FrameRecord(0, 0.0, neural=np.zeros((33, 47, 3), np.uint8)))
    assert decode_frames(tmp_path / "neural.mp4")[0].shape == (34, 48, 3)


def test_bad_images_and_missing_streams_are_clear_errors(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, RecorderConfig(videos=("raw", "neural"), side_by_side=False))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        recorder.write(FrameRecord(0, 0.0, raw=np.zeros((8, 8), np.uint8)))
    recorder.write(FrameRecord(1, 0.0, raw=np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(RecorderError, match="no 'neural' image"):
        recorder.close()
    with pytest.raises(ValueError, match="unknown video streams"):
        RecorderConfig(videos=("depth",))


KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from carla_neural.recorder import FrameRecord, Recorder, RecorderConfig
    recorder = Recorder(sys.argv[1], RecorderConfig(png=("raw", "label_ids")))
    index = 0
    while True:  # until killed
        level = (10 * index) % 250
        recorder.write(FrameRecord(
            frame_id=index, sim_time=0.05 * index, timings_ms={"render": 1.0},
            raw=np.full((48, 64, 3), level, np.uint8),
            labels=np.full((48, 64, 3), 3, np.uint8),
            neural=np.full((48, 64, 3), 255 - level, np.uint8),
            label_ids=np.full((48, 64), index % 34, np.uint8),
        ))
        index += 1
        time.sleep(0.03)
    """
)


def test_sigkill_leaves_every_listed_frame_decodable(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(tmp_path)], env=env)
    try:
        jsonl = tmp_path / "frames.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 8:
                break
            assert child.poll() is None, "the recording process died on its own"
            time.sleep(0.05)
        else:
            pytest.fail("the recording process wrote fewer than 8 frames in 60 s")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    lines = read_frames_jsonl(tmp_path / "frames.jsonl")
    listed = len(lines)
    assert listed >= 8 and [line["frame_id"] for line in lines] == list(range(listed))
    assert not (tmp_path / "summary.json").exists()  # the run really was cut short
    for name in ("raw", "labels", "neural", "side_by_side"):
        frames = decode_frames(tmp_path / f"{name}.mp4")
        # Every listed frame is there; at most the one frame in flight beyond them.
        assert listed <= len(frames) <= listed + 1, (name, listed, len(frames))
    raw_levels = [float(frame.mean()) for frame in decode_frames(tmp_path / "raw.mp4")[:listed]]
    assert np.allclose(raw_levels, [(10 * i) % 250 for i in range(listed)], atol=3)
    for index in range(listed):
        label_ids = cv2.imread(str(tmp_path / f"frames/label_ids/{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert label_ids is not None and (label_ids == index % 34).all()
