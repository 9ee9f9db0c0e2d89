"""`carla-neural train --generator spade`, then `carla-neural render` of its checkpoint, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

CLI = str(Path(sys.executable).with_name("carla-neural"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_train_a_spade_lite_model_then_render_its_checkpoint(tmp_path: Path, two_colour_dataset: Path) -> None:
    out = tmp_path / "run"
    trained = _run("train", "--data", str(two_colour_dataset), "--out", str(out), "--model", "lite",
                   "--generator", "spade", "--size", "64x32", "--steps", "2", "--clip-length", "3",
                   "--max-clip-length", "3", "--no-vgg", "--device", "cpu", "--threads", "1")
    assert trained.returncode == 0, trained.stderr
    assert "trained steps 0..2" in trained.stdout
    checkpoint = out / "generator"
    generator = json.loads((checkpoint / "config.json").read_text())["generator"]
    # --model lite --generator spade is the lite_spade preset: SPADE decoders, narrower widths.
    assert generator["generator"] == "spade" and generator["ngf"] == 6 and generator["spade_hidden"] == 2
    assert generator["single_g"]["generator"] == "spade"
    assert json.loads((out / "train_config.json").read_text())["generator"] == "spade"

    labels = tmp_path / "labels"
    labels.mkdir()
    for t in range(4):
        frame = np.full((32, 64), 7, np.uint8)  # road
        frame[:12] = 23  # sky
        frame[16:28, 10 + 2 * t : 30 + 2 * t] = 26  # a car moving right
        cv2.imwrite(str(labels / f"frame_{t:04d}.png"), frame)
    rendered = _run("render", "--checkpoint", str(checkpoint), "--labels", str(labels),
                    "--out", str(tmp_path / "out"), "--device", "cpu", "--threads", "1")
    assert rendered.returncode == 0, rendered.stderr
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == [f"frame_{t:04d}.png" for t in range(4)]
    last = cv2.imread(str(written[-1]), cv2.IMREAD_UNCHANGED)
    assert last.shape == (32, 64, 3) and last.dtype == np.uint8 and last.std() > 0
    assert "rendered 4 frames" in rendered.stdout

    unknown = _run("train", "--data", str(two_colour_dataset), "--out", str(tmp_path / "bad"),
                   "--generator", "stylegan")
    assert unknown.returncode != 0 and "'stylegan' is not one of 'nvidia', 'spade'" in unknown.stderr
    assert not (tmp_path / "bad").exists()
