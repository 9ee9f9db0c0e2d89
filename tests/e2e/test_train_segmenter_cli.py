"""`carla-neural train-segmenter` as a user runs it: summary line, files, stop and resume, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def carla_neural(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `carla-neural` entry point of this venv."""
    script = Path(sys.executable).parent / "carla-neural"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_trains_stops_resumes_and_reports(two_colour_dataset, tmp_path) -> None:
    out = tmp_path / "run"
    common = ("train-segmenter", "--data", str(two_colour_dataset), "--out", str(out), "--val-sequences", "seq0001",
              "--steps", "30", "--batch-size", "4", "--crop", "32x32", "--size", "64x32", "--lr", "0.01",
              "--val-every", "10", "--class-weights", "inverse-sqrt")
    stopped = carla_neural(*common, "--stop-at", "15")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped at step 15 of 30" in stopped.stdout
    state = json.loads((out / "checkpoints" / "latest" / "trainer_state.json").read_text())
    assert state["step"] == 15
    finished = carla_neural(*common)
    assert finished.returncode == 0, finished.stderr
    summary = finished.stdout.strip().splitlines()[-1]
    assert summary.startswith("train-segmenter: 30 steps on 3 frames")
    assert "(1 threads)" in summary and "of seq0001" in summary and str(out / "segmenter") in summary
    miou = float(summary.split("val mIoU ")[1].split()[0])
    assert miou > 0.8
    assert "segmenter" in finished.stderr  # the progress bar
    config = json.loads((out / "segmenter" / "config.json").read_text())
    assert config["format"] == "carla-neural/segmenter"
    assert config["metadata"]["steps"] == 30 and config["metadata"]["val"]["miou"] == json.loads(
        (out / "val_metrics.json").read_text())["miou"]


def test_bad_options_fail_in_one_line_before_writing(two_colour_dataset, tmp_path) -> None:
    out = tmp_path / "run"
    unknown = carla_neural("train-segmenter", "--data", str(two_colour_dataset), "--out", str(out),
                           "--val-sequences", "seq0042")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "has no sequence seq0042; it holds seq0000, seq0001" in unknown.stderr
    crop = carla_neural("train-segmenter", "--data", str(two_colour_dataset), "--out", str(out), "--crop", "30x30")
    assert crop.returncode == 2 and "crop must be a multiple of 16" in crop.stderr
    assert not out.exists()
