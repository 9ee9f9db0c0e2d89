"""`carla-neural adapt` as a user runs it: fine-tune, render with the result; a bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2

CLI = str(Path(sys.executable).with_name("carla-neural"))


def carla_neural(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_adapt_writes_a_model_that_render_loads(tiny_checkpoint, two_colour_dataset, two_colour_segmenter,
                                                make_two_colour_run, tmp_path) -> None:
    run = make_two_colour_run(tmp_path / "run")
    out = tmp_path / "adapted"
    result = carla_neural("adapt", "--checkpoint", str(tiny_checkpoint), "--maps", str(run), "--real",
                          str(two_colour_dataset), "--real-hold-out", "seq0001", "--segmenter",
                          str(two_colour_segmenter), "--out", str(out), "--size", "64x32", "--clip-length", "3",
                          "--steps", "2", "--device", "cpu", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "adapting" in result.stderr and "on CPU" in result.stderr and "adapt (cpu)" in result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("adapted steps 0..2 of 2 on cpu: segmenter CE") and str(out / "generator") in summary
    assert [json.loads(line)["step"] for line in (out / "adapt_log.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((out / "generator" / "config.json").read_text())["metadata"]["adapt_steps"] == 2

    rendered = tmp_path / "rendered"
    render = carla_neural("render", "--checkpoint", str(out / "generator"), "--labels",
                          str(run / "frames" / "label_ids"), "--out", str(rendered), "--device", "cpu")
    assert render.returncode == 0, render.stderr
    frames = sorted(rendered.rglob("*.png"))
    assert len(frames) == 4
    assert cv2.imread(str(frames[0])).shape == (32, 64, 3)


def test_adapt_refuses_maps_without_labels_in_one_line(tiny_checkpoint, two_colour_dataset, tmp_path) -> None:
    empty = tmp_path / "empty_run"
    (empty / "frames" / "label_ids").mkdir(parents=True)
    (empty / "run.json").write_text('{"png": []}')
    out = tmp_path / "adapted"
    result = carla_neural("adapt", "--checkpoint", str(tiny_checkpoint), "--maps", str(empty), "--real",
                          str(two_colour_dataset), "--out", str(out), "--size", "64x32", "--device", "cpu")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "label_ids" in lines[0] and "holds no label PNGs" in lines[0] and "--png" in lines[0]
    assert not out.exists()
