"""Bad files given to the CLI as a user gives them: one line naming the file and the field, exit
code 1 or 2, no traceback, and nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

CLI = str(Path(sys.executable).with_name("carla-neural"))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "SDL_VIDEODRIVER": "dummy",
                               "SDL_AUDIODRIVER": "dummy", "PYTHONPATH": str(Path(__file__).parents[2])})


def labels_folder(root: Path, frames: int = 3) -> Path:
    folder = root / "labels"
    folder.mkdir()
    for t in range(frames):
        labels = np.full((32, 64), 7, np.uint8)
        labels[:10] = 23
        cv2.imwrite(str(folder / f"f{t:03d}.png"), labels)
    return folder


@pytest.fixture()
def lying_checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    document = json.loads((folder / "config.json").read_text())
    document["generator"]["use_instance"] = "no"
    (folder / "config.json").write_text(json.dumps(document))
    return folder


def test_render_with_a_bad_checkpoint_writes_nothing(tmp_path: Path, lying_checkpoint: Path) -> None:
    out = tmp_path / "out"
    result = run("render", "--checkpoint", str(lying_checkpoint), "--labels", str(labels_folder(tmp_path)),
                 "--out", str(out), "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{lying_checkpoint / 'config.json'}: field 'generator.use_instance' = 'no'" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_render_checks_every_label_before_the_first_frame(tmp_path: Path, tiny_checkpoint: Path) -> None:
    labels = labels_folder(tmp_path)
    (labels / "f002.png").write_bytes((labels / "f002.png").read_bytes()[:40])  # truncated, last in order
    (labels / "notes.txt").write_text("not a label map")
    out = tmp_path / "out"
    result = run("render", "--checkpoint", str(tiny_checkpoint), "--labels", str(labels), "--out", str(out),
                 "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot read label image {labels / 'f002.png'}" in result.stderr
    assert "nothing was rendered" in result.stderr
    assert f"skipped 1 file(s) that are not label images ({labels / 'notes.txt'})" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_worker_names_the_bad_field(tmp_path: Path, lying_checkpoint: Path) -> None:
    result = run("worker", "--checkpoint", str(lying_checkpoint), "--bind", "tcp://127.0.0.1:*", "--device", "cpu",
                 cwd=tmp_path)
    assert result.returncode == 4
    assert "field 'generator.use_instance' = 'no'" in result.stderr and str(lying_checkpoint) in result.stderr
    assert "AttributeError" not in result.stderr and "Traceback" not in result.stderr


def test_record_refuses_a_bad_scenario_before_writing(tmp_path: Path) -> None:
    scenario = tmp_path / "fast.yaml"
    scenario.write_text("name: fast\nbuiltin: {cruise_speed_mps: fast}\n")
    out = tmp_path / "run"
    result = run("record", str(scenario), "--world", "builtin", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 1
    assert str(scenario) in result.stderr and "builtin: cruise_speed_mps" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_evaluate_takes_bundled_and_says_fid_was_skipped(tmp_path: Path) -> None:
    from renderer.checkpoint import is_our_checkpoint
    from renderer.loading import bundled_checkpoint

    if not is_our_checkpoint(bundled_checkpoint()):
        pytest.skip("needs the bundled lite model (renderer/weights/lite, `make model`)")
    result = run("evaluate", "--checkpoint", "bundled", "--size", "64x32", "--sequences", "1", "--frames", "4",
                 "--no-fid", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FID/KID skipped (--no-fid)" in result.stdout and "nan" not in result.stdout
