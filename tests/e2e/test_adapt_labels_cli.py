"""`record`, `demo` and `drive` with the label transform (--adapt-labels), as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from carla_neural.label_transform import CALIBRATED_CONFIG
from carla_neural.recorder import read_frames_jsonl
from carla_neural.remap import colorize_label_ids

CLI = [str(Path(sys.executable).with_name("carla-neural"))]
GROUND = 6  # a labelId the real maps never hold: the transform maps it to sidewalk
GROUND_RGB = colorize_label_ids(np.array([[GROUND]], np.uint8))[0, 0]

# Seed 5 of the built-in world puts a verge of "ground" in view from the first frame.
SCENARIO = """
name: tiny_ground
traffic: {vehicles: 2, walkers: 2, seed: 5}
duration: {frames: 50}
cameras: {width: 128, height: 64, fov: 90}
"""


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted(folder.glob("*.png"))]


def near(image_rgb: np.ndarray, colour: np.ndarray, tolerance: int = 30) -> int:
    return int((np.abs(image_rgb.astype(int) - colour.astype(int)).max(axis=2) <= tolerance).sum())


@pytest.fixture()
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_ground.yaml"
    path.write_text(SCENARIO)
    return path


def test_record_renders_the_transformed_maps_and_keeps_the_simulators(tmp_path: Path, scenario_file: Path,
                                                                      tiny_checkpoint: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("record", str(scenario_file), "--world", "builtin", "--frames", "3", "--out", str(run),
                     "--checkpoint", str(tiny_checkpoint), "--adapt-labels")
    assert result.returncode == 0, result.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["label_transform"]["enabled"] is True
    assert info["label_transform"]["config"] == json.loads(CALIBRATED_CONFIG.read_text())["config"]
    lines = read_frames_jsonl(run / "frames.jsonl")
    assert len(lines) == 3 and all(line["timings_ms"]["adapt"] > 0 for line in lines)
    assert json.loads((run / "summary.json").read_text())["pipeline"]["stages_ms"]["adapt"]["count"] == 3
    # The label PNGs stay the simulator's ground truth, ground included.
    labels = read_pngs(run / "frames" / "label_ids")
    assert all((label_ids == GROUND).sum() > 100 for label_ids in labels)
    # The renderer got the transformed maps: rendering the recorded maps through the transform
    # (in-process, one thread like the worker) gives the recorded neural frames exactly; without
    # it, other frames.
    rendered = {}
    for flag in ("--adapt-labels", "--no-adapt-labels"):
        out = tmp_path / flag.strip("-")
        again = run_cli("render", "--checkpoint", str(tiny_checkpoint), "--labels", str(run / "frames" / "label_ids"),
                        "--instances", str(run / "frames" / "instance_ids"), "--out", str(out), "--threads", "1",
                        flag)
        assert again.returncode == 0, again.stderr
        rendered[flag] = read_pngs(out)
    neural = read_pngs(run / "frames" / "neural")
    assert all(np.abs(a.astype(int) - b).max() <= 2 for a, b in zip(neural, rendered["--adapt-labels"]))
    assert any(np.abs(a.astype(int) - b).max() > 2 for a, b in zip(neural, rendered["--no-adapt-labels"]))
    # The labels video shows what the renderer was given: no ground colour (H.264 blurs edges, so
    # count pixels near it against those of the recorded maps).
    with av.open(str(run / "labels.mp4")) as container:
        video = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(video) == 3
    for label_ids, shown in zip(labels, video):
        assert near(shown, GROUND_RGB) < near(colorize_label_ids(label_ids), GROUND_RGB, 0) / 10


def test_demo_with_the_transform(tmp_path: Path, tiny_checkpoint: Path) -> None:
    config = tmp_path / "median_only.json"
    config.write_text(json.dumps({"median_kernel": 3}))
    out = tmp_path / "demo"
    result = run_cli("demo", "--frames", "2", "--size", "64x32", "--headless", "--checkpoint", str(tiny_checkpoint),
                     "--out", str(out), "--transform-config", str(config))
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "run.json").read_text())["label_transform"]
    # A config file alone turns the transform on; run.json holds every setting, defaults included.
    assert info["enabled"] is True and info["config_file"] == str(config)
    assert info["config"]["median_kernel"] == 3 and info["config"]["jitter_px"] == 0.0
    assert all("adapt" in line["timings_ms"] for line in read_frames_jsonl(out / "frames.jsonl"))


@pytest.mark.parametrize("command", ["record", "demo", "drive"])
def test_a_bad_transform_config_is_one_line_and_nothing_is_written(tmp_path: Path, scenario_file: Path,
                                                                  tiny_checkpoint: Path, command: str) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"median_kernel": 4}))
    out = tmp_path / "out"
    arguments = {
        "record": ["record", str(scenario_file), "--world", "builtin", "--out", str(out)],
        "demo": ["demo", "--headless", "--out", str(out)],
        "drive": ["drive", "--world", "builtin", "--headless", "--frames", "1"],
    }[command]
    result = run_cli(*arguments, "--checkpoint", str(tiny_checkpoint), "--transform-config", str(config))
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert error_lines == [f"Error: label transform config {config}: field 'median_kernel': "
                           "Value error, must be 0 (off), 3 or 5 pixels (wider medians are slow in OpenCV), got 4"]
    assert not out.exists()


def test_a_scenario_naming_a_missing_config_fails_before_writing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    scenario = tmp_path / "missing.yaml"
    scenario.write_text(SCENARIO + f"rendering: {{adapt_labels: true, transform_config: {tmp_path / 'nope.json'}}}\n")
    out = tmp_path / "out"
    result = run_cli("record", str(scenario), "--world", "builtin", "--out", str(out),
                     "--checkpoint", str(tiny_checkpoint))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"label transform config {tmp_path / 'nope.json'} does not exist" in result.stderr
    assert not out.exists()
