"""`make model` and `evaluate` as a user runs them: `train-bundled` end to end at a tiny size, then
`evaluate` on what it wrote, and the renderer loading it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLI = str(Path(sys.executable).parent / "carla-neural")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_train_bundled_then_evaluate_then_render(tmp_path) -> None:
    out = tmp_path / "weights"
    trained = _run("train-bundled", "--work", str(tmp_path / "work"), "--out", str(out), "--sequences", "1",
                   "--frames", "16", "--size", "64x32", "--steps", "2", "--long-steps", "1", "--eval-sequences", "1",
                   "--eval-frames", "6", "--no-fid", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert f"-> {out}" in trained.stdout

    figures = json.loads((out / "figures.json").read_text())
    assert figures["steps"] == 2 and figures["data"]["size"] == [64, 32]
    # Both models were trained for the same clips; lite spent the first one frame by frame, and both
    # then trained one long clip.
    assert figures["training"]["frame_steps"] == 1 and figures["training"]["long_steps"] == 1
    for kind in ("lite", "baseline"):
        last_stage = json.loads((tmp_path / "work" / kind / "train_config.json").read_text())
        assert last_stage["steps"] == 3 and last_stage["clip_length"] == 16
        assert len((tmp_path / "work" / kind / "train_log.jsonl").read_text().splitlines()) == 3
    for kind in ("lite", "baseline"):
        assert np.isfinite(figures[kind]["psnr_db"]) and figures[kind]["frames"] == 4
        assert figures[kind]["warping_error"] > 0
    assert figures["warping_error_ratio"] == pytest.approx(
        figures["lite"]["warping_error"] / figures["baseline"]["warping_error"])
    readme = (out / "README.md").read_text()
    assert "frame by frame" in readme and "warping error ratio" in readme
    shipped = json.loads((out / "config.json").read_text())
    assert shipped["metadata"]["working_size"] == [64, 32] and shipped["metadata"]["temporal"] is True

    report = tmp_path / "eval.json"
    evaluated = _run("evaluate", "--checkpoint", str(out), "--size", "64x32", "--sequences", "1", "--frames", "6",
                     "--no-fid", "--json", str(report), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "PSNR" in evaluated.stdout and "warping error" in evaluated.stdout
    measured = json.loads(report.read_text())["models"][str(out)]
    # The same held-out sequences and model: the same figures as train-bundled wrote.
    assert measured["psnr_db"] == pytest.approx(figures["lite"]["psnr_db"], abs=1e-6)
    assert measured["warping_error"] == pytest.approx(figures["lite"]["warping_error"], rel=1e-6)

    from renderer.loading import load_renderer

    renderer = load_renderer(str(out), size=(128, 64))
    labels = np.full((64, 128), 7, np.uint8)
    frame = renderer.step(labels)
    assert frame.shape == (64, 128, 3) and frame.dtype == np.uint8


def test_evaluate_rejects_a_bad_size(tmp_path, tiny_checkpoint) -> None:
    result = _run("evaluate", "--checkpoint", str(tiny_checkpoint), "--size", "64by32", "--no-fid", cwd=tmp_path)
    assert result.returncode != 0 and "WIDTHxHEIGHT" in result.stderr


def test_train_bundled_refuses_long_clips_longer_than_the_data(tmp_path) -> None:
    result = _run("train-bundled", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "weights"),
                  "--sequences", "1", "--frames", "8", "--size", "64x32", "--steps", "5", "--only", "lite", cwd=tmp_path)
    assert result.returncode != 0 and "--long-steps 0" in result.stderr
