"""`carla-neural evaluate` as a user runs it: on held-out sequences of a dataset with photos (NVIDIA's
layout, JPEG), several models against the same references, and `--checkpoint bundled`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

CLI = str(Path(sys.executable).parent / "carla-neural")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def _layout(root: Path) -> Path:
    """Two sequences of 6 frames, 128x64: a car that drives right over a road under a sky."""
    rng = np.random.default_rng(3)
    for seq in ("seq0000", "seq0001"):
        for kind in ("train_A", "train_B", "train_inst"):
            (root / kind / seq).mkdir(parents=True)
        texture = cv2.GaussianBlur(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8), (0, 0), 1.5)
        for frame in range(6):
            labels = np.full((64, 128), 7, np.uint8)
            labels[:20] = 23
            labels[30:50, 20 + 4 * frame:52 + 4 * frame] = 26
            photo = np.where((labels == 26)[..., None], texture, texture // 3 + 80).astype(np.uint8)
            name = f"x_{frame:06d}"
            cv2.imwrite(str(root / "train_A" / seq / f"{name}.png"), labels)
            cv2.imwrite(str(root / "train_inst" / seq / f"{name}.png"), np.where(labels == 26, 1, 255).astype(np.uint8))
            cv2.imwrite(str(root / "train_B" / seq / f"{name}.jpg"), photo)
    return root


def test_evaluate_named_real_sequences_for_two_models(tmp_path, tiny_checkpoint) -> None:
    data = _layout(tmp_path / "data")
    report = tmp_path / "eval.json"
    result = _run("evaluate", "--checkpoint", str(tiny_checkpoint), "--checkpoint", "bundled", "--data", str(data),
                  "--sequences", "seq0001", "--size", "64x32", "--no-fid", "--json", str(report), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(report.read_text())
    assert figures["sequences"] == ["seq0001"] and figures["size"] == [64, 32]
    tiny, bundled = figures["models"][str(tiny_checkpoint)], figures["models"]["bundled"]
    for model in (tiny, bundled):
        assert model["frames"] == 4 and model["sequences"] == 1  # 6 frames, the first 2 not scored
        assert np.isfinite(model["psnr_db"]) and model["warping_error"] > 0
    # Both models are measured against the same real frames and their own motion.
    assert tiny["reference_warping_error"] == bundled["reference_warping_error"] > 0
    assert tiny["psnr_db"] != bundled["psnr_db"]
    # Segmentation consistency: the bundled segmenter on each model's frames and, once, on the photos.
    assert figures["segmenter"] == "bundled"
    for model in (tiny, bundled):
        assert model["segmentation"]["frames"] == 4 and 0 <= model["segmentation"]["miou"] <= 1
    assert tiny["reference_segmentation"] == bundled["reference_segmentation"]
    assert tiny["reference_segmentation"]["frames"] == 4
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{tiny_checkpoint}: PSNR") and lines[1].startswith("bundled: PSNR")
    assert "FID/KID skipped (--no-fid)" in lines[0] and "seg mIoU" in lines[0] and "real frames" in lines[0]


def test_evaluate_names_a_missing_sequence(tmp_path, tiny_checkpoint) -> None:
    data = _layout(tmp_path / "data")
    result = _run("evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--sequences", "seq0009",
                  "--no-fid", cwd=tmp_path)
    assert result.returncode != 0
    assert "seq0009" in result.stderr and "seq0000" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_refuses_a_folder_that_is_not_a_checkpoint(tmp_path) -> None:
    result = _run("evaluate", "--checkpoint", str(tmp_path), "--no-fid", cwd=tmp_path)
    assert result.returncode != 0 and "is not one of our checkpoints" in result.stderr
    assert "Traceback" not in result.stderr


def test_pictures_of_a_real_sequence_and_of_the_built_in_world(tmp_path, tiny_checkpoint) -> None:
    from carla_neural.pictures import GAP_PX, HEADER_PX
    from carla_neural.remap import colorize_label_ids
    from renderer.resize import resize_nearest

    data = _layout(tmp_path / "data")
    real = tmp_path / "real.png"
    result = _run("pictures", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--sequence", "seq0001",
                  "--frames", "1,5", "--size", "64x32", "--out", str(real), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"-> {real}" in result.stdout
    image = cv2.cvtColor(cv2.imread(str(real)), cv2.COLOR_BGR2RGB)
    row_h = HEADER_PX + 32
    assert image.shape == (2 * row_h + GAP_PX, 3 * 64 + 2 * GAP_PX, 3)
    # Row 2 is frame 5: its label panel is the coloured label map, its photo panel the resized photo.
    top = row_h + GAP_PX + HEADER_PX
    labels = cv2.imread(str(data / "train_A" / "seq0001" / "x_000005.png"), cv2.IMREAD_UNCHANGED)
    labels = resize_nearest(labels, 64, 32)
    assert np.array_equal(image[top:top + 32, :64], colorize_label_ids(labels))
    photo = cv2.cvtColor(cv2.imread(str(data / "train_B" / "seq0001" / "x_000005.jpg")), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (64, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(image[top:top + 32, 2 * (64 + GAP_PX):], photo)

    world = tmp_path / "world.png"
    result = _run("pictures", "--checkpoint", str(tiny_checkpoint), "--frames", "2", "--size", "64x32",
                  "--out", str(world), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert cv2.imread(str(world)).shape == (row_h, 3 * 64 + 2 * GAP_PX, 3)

    # Before and after side by side: one neural column per checkpoint, the same frames; the
    # transform goes only where asked (here for both), the label panel shows the maps before it.
    pair = tmp_path / "pair.png"
    result = _run("pictures", "--checkpoint", str(tiny_checkpoint), "--checkpoint", str(tiny_checkpoint),
                  "--adapt-labels", "--mount", "hood", "--frames", "2", "--size", "64x32", "--out", str(pair),
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    image = cv2.imread(str(pair))
    assert image.shape == (row_h, 4 * 64 + 3 * GAP_PX, 3)
    first, second = (image[HEADER_PX:, k * (64 + GAP_PX):k * (64 + GAP_PX) + 64] for k in (2, 3))
    assert np.array_equal(first, second)  # the same model on the same frames
    assert "hood mount" in result.stdout
    bad_mount = _run("pictures", "--checkpoint", str(tiny_checkpoint), "--mount", "bonnet", "--frames", "2",
                     "--size", "64x32", "--out", str(tmp_path / "y.png"), cwd=tmp_path)
    assert bad_mount.returncode == 1 and "--mount bonnet" in bad_mount.stderr and not (tmp_path / "y.png").exists()

    bad = _run("pictures", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--frames", "9",
               "--size", "64x32", "--out", str(tmp_path / "x.png"), cwd=tmp_path)
    assert bad.returncode != 0 and "6 frames" in bad.stderr and not (tmp_path / "x.png").exists()
