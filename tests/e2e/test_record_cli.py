"""`carla-neural record` as a user runs it: built-in world, a tiny random checkpoint, a real worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from carla_neural.recorder import read_frames_jsonl
from carla_neural.sources.encoding import read_flow_png

# The console script installed next to this interpreter, as a user runs it.
CLI = [str(Path(sys.executable).with_name("carla-neural"))]
CITYSCAPES_LABEL_IDS = set(range(34))

TINY_SCENARIO = """
name: tiny_rain
weather: HardRainNight
traffic: {vehicles: 4, walkers: 4, seed: 5}
duration: {frames: 50}
cameras: {width: 64, height: 32, fov: 90}
rendering: {checkpoint: bundled, engine: torch}
"""


@pytest.fixture()
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_rain.yaml"
    path.write_text(TINY_SCENARIO)
    return path


def environment() -> dict[str, str]:
    return {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "OMP_NUM_THREADS": "1"}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=environment())


def video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_record_writes_every_stream_that_compare_reads(tmp_path: Path, scenario_file: Path,
                                                       tiny_checkpoint: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("record", str(scenario_file), "--out", str(run), "--world", "builtin",
                     "--frames", "3", "--checkpoint", str(tiny_checkpoint))
    assert result.returncode == 0, result.stderr
    assert "recorded 3 frames of tiny_rain" in result.stdout and str(run) in result.stdout

    info = json.loads((run / "run.json").read_text())
    assert info["scenario"] == "tiny_rain" and info["size"] == [64, 32]
    assert info["checkpoint"] == str(tiny_checkpoint) and info["engine"] == "torch"
    assert info["source"].startswith("builtin world") and "HardRainNight" in info["source"]
    assert info["tag_scheme"] == "0.9.14" and info["fps"] == 20.0

    lines = read_frames_jsonl(run / "frames.jsonl")
    frame_ids = [line["frame_id"] for line in lines]
    assert len(frame_ids) == 3 and frame_ids == sorted(frame_ids)
    assert all({"world", "remap", "render"} <= set(line["timings_ms"]) for line in lines)

    for video in ("raw", "labels", "neural", "side_by_side"):
        assert video_frames(run / f"{video}.mp4") == 3, video
    for frame_id in frame_ids:
        stem = f"{frame_id:06d}.png"
        label_ids = cv2.imread(str(run / "frames/label_ids" / stem), cv2.IMREAD_UNCHANGED)
        assert label_ids.shape == (32, 64) and label_ids.dtype == np.uint8
        assert set(np.unique(label_ids)) <= CITYSCAPES_LABEL_IDS
        assert 7 in label_ids  # the ego drives on a road
        instance_ids = cv2.imread(str(run / "frames/instance_ids" / stem), cv2.IMREAD_UNCHANGED)
        assert instance_ids.shape == (32, 64) and instance_ids.dtype == np.uint16
        flow_px, valid = read_flow_png(run / "frames/flow" / stem)
        assert flow_px.shape == (32, 64, 2) and valid.all()
        for kind in ("raw", "neural"):
            rgb = cv2.imread(str(run / "frames" / kind / stem), cv2.IMREAD_COLOR)
            assert rgb.shape == (32, 64, 3)
    # The ego moves on autopilot, so the ground-truth flow is not zero everywhere.
    assert np.abs(read_flow_png(run / "frames/flow" / f"{frame_ids[-1]:06d}.png")[0]).max() > 0.1

    summary = json.loads((run / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["scenario"] == "tiny_rain"
    assert summary["pipeline"]["mode"] == "lockstep"


@pytest.mark.slow
def test_a_builtin_scenario_by_name(tmp_path: Path, tiny_checkpoint: Path) -> None:
    run = tmp_path / "highway"
    result = run_cli("record", "highway", "--out", str(run), "--world", "builtin", "--frames", "2",
                     "--no-png", "--checkpoint", str(tiny_checkpoint))
    assert result.returncode == 0, result.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["scenario"] == "highway" and info["size"] == [512, 256]
    assert "highway" in info["source"] and info["png"] == []
    assert video_frames(run / "neural.mp4") == 2
    assert not (run / "frames").exists()


def test_bad_scenario_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncameras: {mount: dashboard}\n")
    result = run_cli("record", str(bad), "--out", str(tmp_path / "run"), "--world", "builtin", timeout=60)
    assert result.returncode == 1
    assert "cameras.mount" in result.stderr and "'hood'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_no_carla_server_fails_fast_with_the_fix(tmp_path: Path, scenario_file: Path) -> None:
    pytest.importorskip("carla", reason="needs the carla client wheel")
    # The default --world is carla: a closed port is found by a TCP probe, not the client's 10 s timeout.
    result = run_cli("record", str(scenario_file), "--out", str(tmp_path / "run"), "--port", "1", timeout=60)
    assert result.returncode == 1
    assert "no CARLA server at 127.0.0.1:1 (connection refused). `--world builtin` runs without" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_keeps_what_was_recorded(tmp_path: Path, scenario_file: Path, tiny_checkpoint: Path,
                                           signal_number: int) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(
        [*CLI, "record", str(scenario_file), "--out", str(run), "--world", "builtin",
         "--checkpoint", str(tiny_checkpoint)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
    )
    try:
        deadline = time.monotonic() + 90
        jsonl = run / "frames.jsonl"
        while time.monotonic() < deadline and process.poll() is None:
            if jsonl.is_file() and len(jsonl.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.communicate()[1]
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    lines = read_frames_jsonl(run / "frames.jsonl")
    assert 3 <= len(lines) < 50
    summary = json.loads((run / "summary.json").read_text())
    assert summary["frames"] >= len(lines)
    assert video_frames(run / "neural.mp4") >= len(lines)
